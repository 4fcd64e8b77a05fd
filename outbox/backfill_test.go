package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

const otherOrgID = "0a000000-0000-4000-8000-0000000000bb"

// seedCatalogue inserts events numbered from..to of org, each with three
// tickets, then removes the jobs and state the triggers made, as if the rows
// predated the install.
func seedCatalogue(tb testing.TB, pool *pgxpool.Pool, org string, from, to int) {
	tb.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `
		INSERT INTO events (event_id, organisation_id, title)
		SELECT ('0e000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, $1, 'Event ' || g
		FROM generate_series($2::int, $3::int) g`, org, from, to)
	require.NoError(tb, err)
	_, err = pool.Exec(ctx, `
		INSERT INTO event_tickets (id, event_id, name, price)
		SELECT ('07000000-0000-4000-8000-' || lpad((g * 10 + k)::text, 12, '0'))::uuid,
		       ('0e000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'Ticket ' || k, 10 * k
		FROM generate_series($1::int, $2::int) g, generate_series(1, 3) k`, from, to)
	require.NoError(tb, err)
	_, err = pool.Exec(ctx, `DELETE FROM river_job; DELETE FROM stripe_sync_state`)
	require.NoError(tb, err)
}

// queued returns how many sync jobs wait per kind, failing if any entity
// has two.
func queued(tb testing.TB, pool *pgxpool.Pool) map[string]int {
	tb.Helper()
	var jobs, entities int
	require.NoError(tb, pool.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT (kind, args)) FROM river_job`).Scan(&jobs, &entities))
	require.Equal(tb, entities, jobs, "one job per entity")
	rows, err := pool.Query(context.Background(), `SELECT kind, count(*) FROM river_job GROUP BY kind`)
	require.NoError(tb, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		require.NoError(tb, rows.Scan(&kind, &n))
		out[kind] = n
	}
	require.NoError(tb, rows.Err())
	return out
}

func TestBackfill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("BatchesEnqueueEachEntityOnceAlsoWhenRunTwice", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		seedCatalogue(t, bundle.pool, orgID, 1, 25)

		var progress [][2]int
		res, err := outbox.Backfill(ctx, bundle.pool, outbox.BackfillOptions{
			BatchSize: 10,
			Progress:  func(done, total int) { progress = append(progress, [2]int{done, total}) },
		})
		require.NoError(t, err)
		require.Equal(t, outbox.BackfillResult{Events: 25, Tickets: 75, Enqueued: 100}, res)
		require.Equal(t, map[string]int{"stripe_sync_event": 25, "stripe_sync_ticket": 75}, queued(t, bundle.pool))
		require.Equal(t, [][2]int{
			{10, 100}, {20, 100}, {25, 100}, // events: two full batches and the rest
			{35, 100}, {45, 100}, {55, 100}, {65, 100}, {75, 100}, {85, 100}, {95, 100}, {100, 100},
		}, progress)

		res, err = outbox.Backfill(ctx, bundle.pool, outbox.BackfillOptions{BatchSize: 10})
		require.NoError(t, err)
		require.Equal(t, outbox.BackfillResult{Events: 25, Tickets: 75, Deduplicated: 100}, res)
		require.Equal(t, map[string]int{"stripe_sync_event": 25, "stripe_sync_ticket": 75}, queued(t, bundle.pool))

		var wanted int64
		require.NoError(t, bundle.pool.QueryRow(ctx,
			`SELECT min(wanted_version) FROM stripe_sync_state WHERE entity_type = 'ticket'`).Scan(&wanted))
		require.Equal(t, int64(2), wanted, "each run records a change, so a running job would sync again")
	})

	t.Run("UnsyncedSkipsEntitiesSyncedToTheCurrentAccount", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		seedCatalogue(t, bundle.pool, orgID, 1, 3)
		_, err := bundle.pool.Exec(ctx, `
			INSERT INTO stripe_sync_state (entity_type, entity_id, connected_account_id, stripe_object_id) VALUES
				('event', $1, 'acct_test', 'prod_1'),  -- synced
				('event', $2, 'acct_old', 'prod_2'),   -- synced to the organisation's previous account
				('event', $3, 'acct_test', NULL),      -- recorded, never pushed
				('ticket', '07000000-0000-4000-8000-000000000011', 'acct_test', 'price_11')`,
			eventID(1), eventID(2), eventID(3))
		require.NoError(t, err)

		res, err := outbox.Backfill(ctx, bundle.pool, outbox.BackfillOptions{Unsynced: true})
		require.NoError(t, err)
		require.Equal(t, outbox.BackfillResult{Events: 2, Tickets: 8, Enqueued: 10}, res)
		jobs := jobRows(t, bundle.pool, "stripe_sync_event")
		require.Len(t, jobs, 2)
		require.JSONEq(t, fmt.Sprintf(`{"event_id": %q}`, eventID(2)), string(jobs[0].EncodedArgs))
		require.JSONEq(t, fmt.Sprintf(`{"event_id": %q}`, eventID(3)), string(jobs[1].EncodedArgs))
		for _, j := range jobRows(t, bundle.pool, "stripe_sync_ticket") {
			require.NotContains(t, string(j.EncodedArgs), "07000000-0000-4000-8000-000000000011")
		}
	})

	t.Run("OrgLimits", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bundle.pool.Exec(ctx,
			`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Other', 'acct_other')`, otherOrgID)
		require.NoError(t, err)
		seedCatalogue(t, bundle.pool, orgID, 1, 2)
		seedCatalogue(t, bundle.pool, otherOrgID, 3, 7)

		res, err := outbox.Backfill(ctx, bundle.pool, outbox.BackfillOptions{Org: "0A000000000040008000" + "0000000000BB"})
		require.NoError(t, err)
		require.Equal(t, outbox.BackfillResult{Events: 5, Tickets: 15, Enqueued: 20}, res)
		require.Equal(t, map[string]int{"stripe_sync_event": 5, "stripe_sync_ticket": 15}, queued(t, bundle.pool))
	})

	t.Run("MalformedOrg", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := outbox.Backfill(ctx, bundle.pool, outbox.BackfillOptions{Org: "acme"})
		var invalid *outbox.InvalidIDError
		require.ErrorAs(t, err, &invalid)
		require.Equal(t, "acme", invalid.ID)
	})

	t.Run("NothingToDo", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		called := false
		res, err := outbox.Backfill(ctx, bundle.pool, outbox.BackfillOptions{Progress: func(int, int) { called = true }})
		require.NoError(t, err)
		require.Equal(t, outbox.BackfillResult{}, res)
		require.False(t, called)
	})
}

// BenchmarkBackfill measures enqueueing 100,000 entities (25,000 events with
// three tickets each) in default batches. It is a figure for the operator's
// runbook, not an assertion: run it once with
//
//	go test ./outbox -run '^$' -bench Backfill -benchtime 1x
func BenchmarkBackfill(b *testing.B) {
	ctx := context.Background()
	pool := testdb.New(b)
	_, err := pool.Exec(ctx, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', 'acct_test')`, orgID)
	require.NoError(b, err)
	seedCatalogue(b, pool, orgID, 1, 25000)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		_, err := pool.Exec(ctx, `DELETE FROM river_job`)
		require.NoError(b, err)
		b.StartTimer()
		start := time.Now()
		res, err := outbox.Backfill(ctx, pool, outbox.BackfillOptions{})
		require.NoError(b, err)
		require.Equal(b, 100000, res.Enqueued)
		b.Logf("backfill of %d entities took %s", res.Events+res.Tickets, time.Since(start).Round(time.Millisecond))
	}
}
