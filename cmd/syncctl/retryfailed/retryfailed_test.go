package retryfailed

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/outbox"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	event1 = "0e000000-0000-4000-8000-000000000001"
	event2 = "0e000000-0000-4000-8000-000000000002"
	ticket = "07000000-0000-4000-8000-000000000001"
	org    = "0a000000-0000-4000-8000-000000000001"
)

func TestNewCmdRetryFailed(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdRetryFailed, Now: now}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Defaults", Args: nil, Want: &Options{Limit: 100}},
		{Name: "Everything", Args: []string{"--kind", "ticket", "--since", "24h", "--entity", "{07000000-0000-4000-8000-000000000001}",
			"--limit", "10", "--dry-run", "--include-cancelled", "--json"},
			Want: &Options{Kind: outbox.KindTicket, Since: now.Add(-24 * time.Hour), EntityID: ticket, Limit: 10, DryRun: true, IncludeCancelled: true, JSON: true}},
		{Name: "SinceRFC3339", Args: []string{"--since", "2026-02-28T00:00:00Z"}, Want: &Options{Since: time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), Limit: 100}},
		{Name: "UnknownKind", Args: []string{"--kind", "stripe_sync_resync"}, WantUsage: `unknown kind "stripe_sync_resync"`},
		{Name: "BadSince", Args: []string{"--since", "24 hours"}, WantUsage: `invalid --since "24 hours"`},
		{Name: "MalformedEntity", Args: []string{"--entity", "evt_1"}, WantUsage: `malformed id "evt_1"`},
		{Name: "BadLimit", Args: []string{"--limit", "0"}, WantUsage: "invalid --limit 0"},
	})
}

type testBundle struct {
	*cmdtest.DB
	cmd cmdtest.Command[Options]
}

// setup makes four failed jobs: 101, an event discarded two hours ago; 102,
// a ticket cancelled 30 minutes ago; 103, an organisation discarded ten
// minutes ago; and 104, an event discarded an hour ago that needs no retry,
// as job 105 for the same event is waiting.
func setup(t *testing.T) *testBundle {
	t.Helper()
	db := cmdtest.NewDB(t)
	b := &testBundle{DB: db, cmd: cmdtest.Command[Options]{NewCmd: NewCmdRetryFailed, DatabaseURL: db.URL, Now: now}}

	b.Exec(t, `ALTER SEQUENCE river_job_id_seq RESTART WITH 101`)
	b.Enqueue(t, outbox.Entity{Kind: outbox.KindEvent, ID: event1}, outbox.Entity{Kind: outbox.KindTicket, ID: ticket},
		outbox.Entity{Kind: outbox.KindOrg, ID: org}, outbox.Entity{Kind: outbox.KindEvent, ID: event2})
	fail := func(id int64, state string, attempt int, ago time.Duration, msg string) {
		at := now.Add(-ago)
		b.Exec(t, `UPDATE river_job SET state = $2, attempt = $3, max_attempts = greatest(max_attempts, $3), attempted_at = $4::timestamptz,
				finalized_at = $4, created_at = $4::timestamptz - interval '1 hour',
				errors = ARRAY[jsonb_build_object('at', $4::timestamptz, 'attempt', $3::int, 'error', $5::text, 'trace', '')]
			WHERE id = $1`, id, state, attempt, at, msg)
	}
	fail(101, "discarded", 25, 2*time.Hour, "stripe update_product: 500: An unknown error occurred (injected by the Stripe emulator).")
	fail(102, "cancelled", 1, 30*time.Minute, "stripe create_price: 400 parameter_invalid_integer: Invalid integer: -100")
	fail(103, "discarded", 25, 10*time.Minute, "stripe update_product: 401: Invalid API Key provided")
	fail(104, "discarded", 25, time.Hour, "stripe update_product: 500: boom")
	b.Enqueue(t, outbox.Entity{Kind: outbox.KindEvent, ID: event2})
	return b
}

// jobs returns "id state attempt/max" for every job, so a test can see
// exactly what changed.
func (b *testBundle) jobs(t *testing.T) string {
	t.Helper()
	rows, err := b.Pool.Query(context.Background(), `
		SELECT id || ' ' || state || ' ' || attempt || '/' || max_attempts || ' ' || (finalized_at IS NOT NULL)
		FROM river_job ORDER BY id`)
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return strings.Join(lines, "\n")
}

const untouched = "" +
	"101 discarded 25/25 true\n" +
	"102 cancelled 1/25 true\n" +
	"103 discarded 25/25 true\n" +
	"104 discarded 25/25 true\n" +
	"105 available 0/25 false"

func TestRetryFailedRun(t *testing.T) {
	t.Parallel()

	t.Run("DryRunTerminalChangesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		out, errOut := b.cmd.MustRun(t, true, "--dry-run", "--include-cancelled")
		require.Equal(t, ""+
			"ID   KIND    ENTITY                                WAS        ATTEMPT  FAILED     RESULT       LAST ERROR\n"+
			"103  org     0a000000-0000-4000-8000-000000000001  discarded  25/25    10m0s ago  would retry  stripe update_product: 401: Invalid API Key pro...\n"+
			"102  ticket  07000000-0000-4000-8000-000000000001  cancelled  1/25     30m0s ago  would retry  stripe create_price: 400 parameter_invalid_inte...\n"+
			"101  event   0e000000-0000-4000-8000-000000000001  discarded  25/25    2h0m ago   would retry  stripe update_product: 500: An unknown error oc...\n", out)
		require.Equal(t, "dry run: would retry 3 jobs; nothing changed\n", errOut)
		require.Equal(t, untouched, b.jobs(t))
	})

	t.Run("RetryPlain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		out, errOut := b.cmd.MustRun(t, false)
		require.Equal(t, ""+
			"103  org    0a000000-0000-4000-8000-000000000001  discarded  25/25  2026-03-01T11:50:00Z  retried  stripe update_product: 401: Invalid API Key provided\n"+
			"101  event  0e000000-0000-4000-8000-000000000001  discarded  25/25  2026-03-01T10:00:00Z  retried  stripe update_product: 500: An unknown error occurred (injected by the Stripe emulator).\n", out)
		require.Equal(t, "retried 2 jobs\n", errOut)
		// River gives a job out of attempts one more.
		require.Equal(t, ""+
			"101 available 25/26 false\n"+
			"102 cancelled 1/25 true\n"+
			"103 available 25/26 false\n"+
			"104 discarded 25/25 true\n"+
			"105 available 0/25 false", b.jobs(t))

		out, errOut = b.cmd.MustRun(t, false)
		require.Empty(t, out, "nothing left to retry")
		require.Equal(t, "retried 0 jobs\n", errOut)
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.cmd.RowsCases(t, []cmdtest.RowsCase{
			{Name: "DiscardedOnly", Args: []string{"--dry-run"}, Want: "103\n101\n"},
			{Name: "Kind", Args: []string{"--kind", "event", "--dry-run"}, Want: "101\n"},
			{Name: "CancelledKind", Args: []string{"--kind", "ticket", "--include-cancelled", "--dry-run"}, Want: "102\n"},
			{Name: "Since", Args: []string{"--since", "1h", "--include-cancelled", "--dry-run"}, Want: "103\n102\n"},
			{Name: "Entity", Args: []string{"--entity", org, "--dry-run"}, Want: "103\n"},
			{Name: "EntityWithWaitingJob", Args: []string{"--entity", event2, "--dry-run"}, Want: ""},
			{Name: "Limit", Args: []string{"--limit", "1", "--dry-run"}, Want: "103\n"},
		})
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		out, errOut := b.cmd.MustRun(t, true, "--json", "--dry-run", "--kind", "ticket", "--include-cancelled")
		require.Empty(t, errOut)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Equal(t, map[string]any{
			"dry_run": true,
			"jobs": []any{map[string]any{
				"id": 102.0, "kind": "ticket", "entity_id": ticket, "state": "cancelled", "attempt": 1.0, "max_attempts": 25.0,
				"finalized_at": "2026-03-01T11:30:00Z", "result": "would_retry",
				"last_error": "stripe create_price: 400 parameter_invalid_integer: Invalid integer: -100",
			}},
		}, doc)

		out, _ = b.cmd.MustRun(t, false, "--json", "--kind", "ticket", "--include-cancelled")
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Equal(t, false, doc["dry_run"])
		require.Equal(t, "retried", doc["jobs"].([]any)[0].(map[string]any)["result"])

		out, _ = b.cmd.MustRun(t, false, "--json", "--kind", "ticket", "--include-cancelled")
		require.JSONEq(t, `{"dry_run": false, "jobs": []}`, out)
	})
}

// TestRetry_jobInsertedMeanwhile covers the race FailedJobs cannot see: a
// job for the entity inserted after the selection. The retry must skip that
// job in its savepoint, leaving the transaction usable for the others.
func TestRetry_jobInsertedMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	tx, err := b.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck

	result, err := retry(ctx, b.River, tx, 104) // 105 waits for the same event
	require.NoError(t, err)
	require.Equal(t, ResultSkipped, result)
	result, err = retry(ctx, b.River, tx, 101)
	require.NoError(t, err)
	require.Equal(t, ResultRetried, result)
	require.NoError(t, tx.Commit(ctx))
	require.Equal(t, ""+
		"101 available 25/26 false\n"+
		"102 cancelled 1/25 true\n"+
		"103 discarded 25/25 true\n"+
		"104 discarded 25/25 true\n"+
		"105 available 0/25 false", b.jobs(t))
}
