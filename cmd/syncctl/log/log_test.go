package synclog

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	event  = "0e000000-0000-4000-8000-000000000001"
	ticket = "07000000-0000-4000-8000-000000000001"
)

func TestNewCmdLog(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name      string
		args      []string
		want      *Options
		wantUsage string
	}{
		{name: "Defaults", args: nil, want: &Options{Limit: 50}},
		{name: "Everything", args: []string{"--entity", "0E000000000040008000000000000001", "--status", "failed", "--since", "90m", "--limit", "5", "--json"},
			want: &Options{EntityID: event, Status: "failed", Since: now.Add(-90 * time.Minute), Limit: 5, JSON: true}},
		{name: "SinceDays", args: []string{"--since", "7d"}, want: &Options{Since: now.Add(-7 * 24 * time.Hour), Limit: 50}},
		{name: "SinceRFC3339", args: []string{"--since", "2026-02-28T09:30:00+11:00"},
			want: &Options{Since: time.Date(2026, 2, 28, 9, 30, 0, 0, time.FixedZone("", 11*3600)), Limit: 50}},
		{name: "UnknownStatus", args: []string{"--status", "error"}, wantUsage: `unknown status "error" (want success, failed or skipped)`},
		{name: "MalformedEntity", args: []string{"--entity", "42"}, wantUsage: `malformed id "42"`},
		{name: "BadSince", args: []string{"--since", "yesterday"}, wantUsage: `invalid --since "yesterday"`},
		{name: "NegativeSince", args: []string{"--since", "-1h"}, wantUsage: `invalid --since "-1h"`},
		{name: "BadLimit", args: []string{"--limit", "-3"}, wantUsage: "invalid --limit -3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _ := cmdutil.Test(false)
			f := cmdutil.NewFactory(io, func(string) string { return "" })
			f.Clock = func() time.Time { return now }
			var got *Options
			cmd := NewCmdLog(f, func(_ context.Context, o *Options) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.wantUsage != "" {
				require.ErrorContains(t, err, tt.wantUsage)
				require.Equal(t, 2, cmdutil.ExitCode(err))
				return
			}
			require.NoError(t, err)
			got.Factory = nil
			require.True(t, tt.want.Since.Equal(got.Since), "since: want %s, got %s", tt.want.Since, got.Since)
			got.Since = tt.want.Since
			require.Equal(t, tt.want, got)
		})
	}
}

// seed writes four log rows: an event created, then failing twice, then a
// ticket skipped, at known times before now.
func seed(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	url := testdb.URL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, stripe_object_id, connected_account_id, action, status,
			error_message, created_at, synced_at, job_id, attempt, duration_ms) VALUES
		('event', $1, 'prod_1', 'acct_1', 'create', 'success', NULL, $3, $3, 11, 1, 120),
		('event', $1, 'prod_1', 'acct_1', 'update', 'failed', E'stripe update_product: 500: An unknown error occurred while the emulator was failing\nmore', $4, $4, 12, 1, 30),
		('event', $1, 'prod_1', 'acct_1', 'update', 'failed', 'stripe update_product: 401: Invalid API Key provided', $5, $5, 12, 2, 25),
		('ticket', $2, NULL, NULL, 'sync', 'skipped', 'organisation has no connected account', $6, $6, NULL, NULL, NULL)`,
		event, ticket, now.Add(-3*24*time.Hour), now.Add(-2*time.Hour), now.Add(-90*time.Second), now.Add(-5*time.Second))
	require.NoError(t, err)
	return url
}

func run(t *testing.T, url string, terminal bool, args ...string) (string, string) {
	t.Helper()
	io, out, errOut := cmdutil.Test(terminal)
	f := cmdutil.NewFactory(io, func(string) string { return "" })
	f.DatabaseURL = url
	f.Clock = func() time.Time { return now }
	t.Cleanup(f.Close)
	cmd := NewCmdLog(f, nil)
	cmd.SetArgs(args)
	require.NoError(t, cmd.Execute())
	return out.String(), errOut.String()
}

func TestLogRun(t *testing.T) {
	t.Parallel()
	url := seed(t)

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		out, errOut := run(t, url, true)
		require.Empty(t, errOut)
		require.Equal(t, ""+
			"WHEN       TYPE    ENTITY                                ACTION  STATUS   JOB  ATTEMPT  DURATION  STRIPE OBJECT  ERROR\n"+
			"5s ago     ticket  07000000-0000-4000-8000-000000000001  sync    skipped  -    -        -         -              organisation has no connected account\n"+
			"1m30s ago  event   0e000000-0000-4000-8000-000000000001  update  failed   12   2        25ms      prod_1         stripe update_product: 401: Invalid API Key provided\n"+
			"2h0m ago   event   0e000000-0000-4000-8000-000000000001  update  failed   12   1        30ms      prod_1         stripe update_product: 500: An unknown error occurred whi...\n"+
			"3d0h ago   event   0e000000-0000-4000-8000-000000000001  create  success  11   1        120ms     prod_1         -\n", out)
	})

	t.Run("Plain", func(t *testing.T) {
		t.Parallel()
		out, _ := run(t, url, false)
		require.Equal(t, ""+
			"2026-03-01T11:59:55Z  ticket  07000000-0000-4000-8000-000000000001  sync    skipped  -   -  -      -       organisation has no connected account\n"+
			"2026-03-01T11:58:30Z  event   0e000000-0000-4000-8000-000000000001  update  failed   12  2  25ms   prod_1  stripe update_product: 401: Invalid API Key provided\n"+
			"2026-03-01T10:00:00Z  event   0e000000-0000-4000-8000-000000000001  update  failed   12  1  30ms   prod_1  stripe update_product: 500: An unknown error occurred while the emulator was failing\n"+
			"2026-02-26T12:00:00Z  event   0e000000-0000-4000-8000-000000000001  create  success  11  1  120ms  prod_1  -\n", out)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name string
			args []string
			want string // the WHEN column
		}{
			{name: "Entity", args: []string{"--entity", ticket}, want: "2026-03-01T11:59:55Z\n"},
			{name: "Status", args: []string{"--status", "failed"}, want: "2026-03-01T11:58:30Z\n2026-03-01T10:00:00Z\n"},
			{name: "Since", args: []string{"--since", "2h"}, want: "2026-03-01T11:59:55Z\n2026-03-01T11:58:30Z\n2026-03-01T10:00:00Z\n"},
			{name: "SinceTime", args: []string{"--since", "2026-03-01T10:00:01Z"}, want: "2026-03-01T11:59:55Z\n2026-03-01T11:58:30Z\n"},
			{name: "EntityStatusLimit", args: []string{"--entity", event, "--status", "failed", "--limit", "1"}, want: "2026-03-01T11:58:30Z\n"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				out, _ := run(t, url, false, tt.args...)
				require.Equal(t, tt.want, firstColumn(out))
			})
		}
	})

	t.Run("EmptyIsSuccess", func(t *testing.T) {
		t.Parallel()
		out, errOut := run(t, url, true, "--since", "1s")
		require.Empty(t, out)
		require.Equal(t, "no sync log rows match\n", errOut)
		out, errOut = run(t, url, false, "--since", "1s")
		require.Empty(t, out)
		require.Empty(t, errOut)
		out, _ = run(t, url, false, "--since", "1s", "--json")
		require.JSONEq(t, `{"entries": []}`, out)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		out, _ := run(t, url, false, "--json")
		var doc struct {
			Entries []map[string]any `json:"entries"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Entries, 4)
		for _, e := range doc.Entries {
			require.ElementsMatch(t, []string{"id", "created_at", "entity_type", "entity_id", "action", "status",
				"stripe_object_id", "connected_account_id", "error_message", "job_id", "attempt", "duration_ms"}, keys(e))
		}
		second := doc.Entries[1]
		require.NotEmpty(t, second["id"])
		delete(second, "id")
		require.Equal(t, map[string]any{
			"created_at": "2026-03-01T11:58:30Z", "entity_type": "event", "entity_id": event, "action": "update",
			"status": "failed", "stripe_object_id": "prod_1", "connected_account_id": "acct_1",
			"error_message": "stripe update_product: 401: Invalid API Key provided", "job_id": 12.0, "attempt": 2.0,
			"duration_ms": 25.0,
		}, second)
		require.Nil(t, doc.Entries[0]["job_id"])
	})
}

func firstColumn(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 {
			b.WriteString(fields[0] + "\n")
		}
	}
	return b.String()
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
