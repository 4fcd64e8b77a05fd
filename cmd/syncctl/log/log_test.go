package synclog

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	event  = "0e000000-0000-4000-8000-000000000001"
	ticket = "07000000-0000-4000-8000-000000000001"
)

func TestNewCmdLog(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdLog, Now: now}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Defaults", Args: nil, Want: &Options{Limit: 50}},
		{Name: "Everything", Args: []string{"--entity", "0E000000000040008000000000000001", "--status", "failed", "--since", "90m", "--limit", "5", "--json"},
			Want: &Options{EntityID: event, Status: "failed", Since: now.Add(-90 * time.Minute), Limit: 5, JSON: true}},
		{Name: "SinceDays", Args: []string{"--since", "7d"}, Want: &Options{Since: now.Add(-7 * 24 * time.Hour), Limit: 50}},
		{Name: "SinceRFC3339", Args: []string{"--since", "2026-02-28T09:30:00+11:00"},
			Want: &Options{Since: time.Date(2026, 2, 28, 9, 30, 0, 0, time.FixedZone("", 11*3600)), Limit: 50}},
		{Name: "UnknownStatus", Args: []string{"--status", "error"}, WantUsage: `unknown status "error" (want success, failed or skipped)`},
		{Name: "MalformedEntity", Args: []string{"--entity", "42"}, WantUsage: `malformed id "42"`},
		{Name: "BadSince", Args: []string{"--since", "yesterday"}, WantUsage: `invalid --since "yesterday"`},
		{Name: "NegativeSince", Args: []string{"--since", "-1h"}, WantUsage: `invalid --since "-1h"`},
		{Name: "BadLimit", Args: []string{"--limit", "-3"}, WantUsage: "invalid --limit -3"},
	})
}

// seed writes four log rows: an event created, then failing twice, then a
// ticket skipped, at known times before now.
func seed(t *testing.T) cmdtest.Command[Options] {
	t.Helper()
	db := cmdtest.NewDB(t)
	db.Exec(t, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, stripe_object_id, connected_account_id, action, status,
			error_message, created_at, synced_at, job_id, attempt, duration_ms) VALUES
		('event', $1, 'prod_1', 'acct_1', 'create', 'success', NULL, $3, $3, 11, 1, 120),
		('event', $1, 'prod_1', 'acct_1', 'update', 'failed', E'stripe update_product: 500: An unknown error occurred while the emulator was failing\nmore', $4, $4, 12, 1, 30),
		('event', $1, 'prod_1', 'acct_1', 'update', 'failed', 'stripe update_product: 401: Invalid API Key provided', $5, $5, 12, 2, 25),
		('ticket', $2, NULL, NULL, 'sync', 'skipped', 'organisation has no connected account', $6, $6, NULL, NULL, NULL)`,
		event, ticket, now.Add(-3*24*time.Hour), now.Add(-2*time.Hour), now.Add(-90*time.Second), now.Add(-5*time.Second))
	return cmdtest.Command[Options]{NewCmd: NewCmdLog, DatabaseURL: db.URL, Now: now}
}

func TestLogRun(t *testing.T) {
	t.Parallel()
	cmd := seed(t)

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		out, errOut := cmd.MustRun(t, true)
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
		out, _ := cmd.MustRun(t, false)
		require.Equal(t, ""+
			"2026-03-01T11:59:55Z  ticket  07000000-0000-4000-8000-000000000001  sync    skipped  -   -  -      -       organisation has no connected account\n"+
			"2026-03-01T11:58:30Z  event   0e000000-0000-4000-8000-000000000001  update  failed   12  2  25ms   prod_1  stripe update_product: 401: Invalid API Key provided\n"+
			"2026-03-01T10:00:00Z  event   0e000000-0000-4000-8000-000000000001  update  failed   12  1  30ms   prod_1  stripe update_product: 500: An unknown error occurred while the emulator was failing\n"+
			"2026-02-26T12:00:00Z  event   0e000000-0000-4000-8000-000000000001  create  success  11  1  120ms  prod_1  -\n", out)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		cmd.RowsCases(t, []cmdtest.RowsCase{ // Want is the WHEN column
			{Name: "Entity", Args: []string{"--entity", ticket}, Want: "2026-03-01T11:59:55Z\n"},
			{Name: "Status", Args: []string{"--status", "failed"}, Want: "2026-03-01T11:58:30Z\n2026-03-01T10:00:00Z\n"},
			{Name: "Since", Args: []string{"--since", "2h"}, Want: "2026-03-01T11:59:55Z\n2026-03-01T11:58:30Z\n2026-03-01T10:00:00Z\n"},
			{Name: "SinceTime", Args: []string{"--since", "2026-03-01T10:00:01Z"}, Want: "2026-03-01T11:59:55Z\n2026-03-01T11:58:30Z\n"},
			{Name: "EntityStatusLimit", Args: []string{"--entity", event, "--status", "failed", "--limit", "1"}, Want: "2026-03-01T11:58:30Z\n"},
		})
	})

	t.Run("EmptyIsSuccess", func(t *testing.T) {
		t.Parallel()
		out, errOut := cmd.MustRun(t, true, "--since", "1s")
		require.Empty(t, out)
		require.Equal(t, "no sync log rows match\n", errOut)
		out, errOut = cmd.MustRun(t, false, "--since", "1s")
		require.Empty(t, out)
		require.Empty(t, errOut)
		out, _ = cmd.MustRun(t, false, "--since", "1s", "--json")
		require.JSONEq(t, `{"entries": []}`, out)
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		out, _ := cmd.MustRun(t, false, "--json")
		var doc struct {
			Entries []map[string]any `json:"entries"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Entries, 4)
		for _, e := range doc.Entries {
			require.ElementsMatch(t, []string{"id", "created_at", "entity_type", "entity_id", "action", "status",
				"stripe_object_id", "connected_account_id", "error_message", "job_id", "attempt", "duration_ms"}, cmdtest.Keys(e))
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
