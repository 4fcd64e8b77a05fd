package list

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestNewCmdList(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name      string
		args      []string
		want      *Options
		wantUsage string
	}{
		{name: "Defaults", args: nil, want: &Options{Limit: 50}},
		{name: "StatesKindLimitJSON", args: []string{"--state", "retryable,Discarded", "--state", "running", "--kind", "stripe_sync_ticket", "--limit", "7", "--json"},
			want: &Options{States: []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateDiscarded, rivertype.JobStateRunning}, Kind: outbox.KindTicket, Limit: 7, JSON: true}},
		{name: "UnknownState", args: []string{"--state", "failed"}, wantUsage: `unknown state "failed" (want available, cancelled, completed, discarded, pending, retryable, running, scheduled)`},
		{name: "UnknownKind", args: []string{"--kind", "venue"}, wantUsage: `unknown kind "venue"`},
		{name: "ZeroLimit", args: []string{"--limit", "0"}, wantUsage: "invalid --limit 0"},
		{name: "HugeLimit", args: []string{"--limit", "10001"}, wantUsage: "invalid --limit 10001"},
		{name: "StrayArgument", args: []string{"discarded"}, wantUsage: `unknown command "discarded"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _ := cmdutil.Test(false)
			var got *Options
			cmd := NewCmdList(cmdutil.NewFactory(io, func(string) string { return "" }), func(_ context.Context, o *Options) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.wantUsage != "" {
				require.ErrorContains(t, err, tt.wantUsage)
				if tt.name != "StrayArgument" { // cobra's own arity error is mapped to 2 by root.Main
					require.Equal(t, 2, cmdutil.ExitCode(err))
				}
				return
			}
			require.NoError(t, err)
			got.Factory = nil
			require.Equal(t, tt.want, got)
		})
	}
}

// now is the clock every run test reads; job times are set relative to it.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	event1 = "0e000000-0000-4000-8000-000000000001"
	event2 = "0e000000-0000-4000-8000-000000000002"
	ticket = "07000000-0000-4000-8000-000000000001"
	org    = "0a000000-0000-4000-8000-000000000001"
)

// seed inserts four sync jobs with ids 101 to 104 in known states and times
// (oldest first), plus a resync job that the listing must leave out.
func seed(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	url := testdb.URL(t)
	pool, err := pgxpool.New(ctx, url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	require.NoError(t, err)

	exec := func(sql string, args ...any) {
		t.Helper()
		_, err := pool.Exec(ctx, sql, args...)
		require.NoError(t, err)
	}
	exec(`ALTER SEQUENCE river_job_id_seq RESTART WITH 101`)
	for _, e := range []outbox.Entity{{Kind: outbox.KindOrg, ID: org}, {Kind: outbox.KindEvent, ID: event1}, {Kind: outbox.KindTicket, ID: ticket}, {Kind: outbox.KindEvent, ID: event2}} {
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Enqueue(ctx, client, tx, e)
			return err
		}))
	}
	exec(`INSERT INTO river_job (kind, args, queue, state) VALUES ('stripe_sync_resync', '{}', 'stripe_sync', 'available')`)

	errJSON := `jsonb_build_object('at', $2::timestamptz, 'attempt', $3::int, 'error', $4::text, 'trace', '')`
	// 101: an organisation out of attempts a day and a bit ago.
	exec(`UPDATE river_job SET state = 'discarded', attempt = 25, created_at = $1, scheduled_at = $1, attempted_at = $2,
		finalized_at = $2, errors = ARRAY[`+errJSON+`] WHERE id = 101`,
		now.Add(-27*time.Hour), now.Add(-26*time.Hour), 25, "stripe update_product: 401: Invalid API Key provided")
	// 102: an event synced two hours ago.
	exec(`UPDATE river_job SET state = 'completed', attempt = 1, created_at = $1, scheduled_at = $1, attempted_at = $1,
		finalized_at = $1 WHERE id = 102`, now.Add(-2*time.Hour))
	// 103: a ticket waiting 40 s for its third attempt, with a long
	// multi-line error.
	exec(`UPDATE river_job SET state = 'retryable', attempt = 2, created_at = $1, scheduled_at = $5, attempted_at = $2,
		errors = ARRAY[jsonb_build_object('at', $1::timestamptz, 'attempt', 1, 'error', 'first failure', 'trace', ''), `+errJSON+`] WHERE id = 103`,
		now.Add(-10*time.Minute), now.Add(-time.Minute), 2,
		"stripe create_price: 500: An unknown error occurred while talking to the emulator, which was told to fail\nsecond line",
		now.Add(40*time.Second))
	// 104: an event ready for 3m12s.
	exec(`UPDATE river_job SET created_at = $1, scheduled_at = $1 WHERE id = 104`, now.Add(-3*time.Minute-12*time.Second))
	return url
}

func run(t *testing.T, url string, terminal bool, args ...string) (string, string) {
	t.Helper()
	io, out, errOut := cmdutil.Test(terminal)
	f := cmdutil.NewFactory(io, func(string) string { return "" })
	f.DatabaseURL = url
	f.Clock = func() time.Time { return now }
	t.Cleanup(f.Close)
	cmd := NewCmdList(f, nil)
	cmd.SetArgs(args)
	require.NoError(t, cmd.Execute())
	return out.String(), errOut.String()
}

func TestListRun(t *testing.T) {
	t.Parallel()
	url := seed(t)

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		out, errOut := run(t, url, true)
		require.Equal(t, ""+
			"ID   KIND    ENTITY                                STATE      ATTEMPT  WHEN       LAST ERROR\n"+
			"104  event   0e000000-0000-4000-8000-000000000002  available  0/25     3m12s ago  -\n"+
			"103  ticket  07000000-0000-4000-8000-000000000001  retryable  2/25     in 40s     stripe create_price: 500: An unknown error occurred while...\n"+
			"102  event   0e000000-0000-4000-8000-000000000001  completed  1/25     2h0m ago   -\n"+
			"101  org     0a000000-0000-4000-8000-000000000001  discarded  25/25    1d3h ago   stripe update_product: 401: Invalid API Key provided\n", out)
		require.Empty(t, errOut)
	})

	t.Run("PlainHasNoHeaderAbsoluteTimesAndWholeFirstLines", func(t *testing.T) {
		t.Parallel()
		out, _ := run(t, url, false)
		require.Equal(t, ""+
			"104  event   0e000000-0000-4000-8000-000000000002  available  0/25   2026-03-01T11:56:48Z  -\n"+
			"103  ticket  07000000-0000-4000-8000-000000000001  retryable  2/25   2026-03-01T12:00:40Z  stripe create_price: 500: An unknown error occurred while talking to the emulator, which was told to fail\n"+
			"102  event   0e000000-0000-4000-8000-000000000001  completed  1/25   2026-03-01T10:00:00Z  -\n"+
			"101  org     0a000000-0000-4000-8000-000000000001  discarded  25/25  2026-02-28T09:00:00Z  stripe update_product: 401: Invalid API Key provided\n", out)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name string
			args []string
			want string
		}{
			{name: "State", args: []string{"--state", "discarded,retryable"}, want: "103\n101\n"},
			{name: "Kind", args: []string{"--kind", "event"}, want: "104\n102\n"},
			{name: "StateAndKind", args: []string{"--state", "completed", "--kind", "ticket"}, want: ""},
			{name: "Limit", args: []string{"--limit", "2"}, want: "104\n103\n"},
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
		out, errOut := run(t, url, true, "--state", "pending")
		require.Empty(t, out)
		require.Equal(t, "no jobs match\n", errOut)
		out, errOut = run(t, url, false, "--state", "pending")
		require.Empty(t, out)
		require.Empty(t, errOut)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		out, _ := run(t, url, true, "--json", "--limit", "2")
		var doc struct {
			Jobs []map[string]any `json:"jobs"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Jobs, 2)
		for _, j := range doc.Jobs {
			require.ElementsMatch(t, []string{"id", "kind", "entity_id", "state", "attempt", "max_attempts",
				"created_at", "scheduled_at", "attempted_at", "finalized_at", "last_error"}, keys(j))
		}
		require.Equal(t, map[string]any{
			"id": 103.0, "kind": "ticket", "entity_id": ticket, "state": "retryable", "attempt": 2.0, "max_attempts": 25.0,
			"created_at": "2026-03-01T11:50:00Z", "scheduled_at": "2026-03-01T12:00:40Z", "attempted_at": "2026-03-01T11:59:00Z",
			"finalized_at": nil,
			"last_error":   "stripe create_price: 500: An unknown error occurred while talking to the emulator, which was told to fail\nsecond line",
		}, doc.Jobs[1])
		require.Nil(t, doc.Jobs[0]["last_error"])
	})

	t.Run("JSONEmptyIsAnEmptyList", func(t *testing.T) {
		t.Parallel()
		out, _ := run(t, url, false, "--json", "--state", "pending")
		require.JSONEq(t, `{"jobs": []}`, out)
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
