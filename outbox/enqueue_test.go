package outbox_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

const orgID = "0a000000-0000-4000-8000-0000000000aa"

type testBundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := testdb.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: outbox.DefaultSchema})
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(),
		`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', 'acct_test')`, orgID)
	require.NoError(t, err)
	return &testBundle{pool: pool, client: client}
}

func eventID(n int) string { return fmt.Sprintf("0e000000-0000-4000-8000-%012d", n) }

func jobRows(t *testing.T, pool *pgxpool.Pool, kind string) []*rivertype.JobRow {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT id, args, kind, max_attempts, priority, queue, state, tags, metadata FROM river_job WHERE kind = $1 ORDER BY id`, kind)
	require.NoError(t, err)
	defer rows.Close()
	var jobs []*rivertype.JobRow
	for rows.Next() {
		j := &rivertype.JobRow{}
		var state string
		require.NoError(t, rows.Scan(&j.ID, &j.EncodedArgs, &j.Kind, &j.MaxAttempts, &j.Priority, &j.Queue, &state, &j.Tags, &j.Metadata))
		j.State = rivertype.JobState(state)
		jobs = append(jobs, j)
	}
	require.NoError(t, rows.Err())
	return jobs
}

func TestTrigger_insert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RolledBackInsertLeavesNoJob", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		tx, err := bundle.pool.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'Rolled back')`, eventID(1), orgID)
		require.NoError(t, err)
		require.Len(t, jobRowsTx(t, tx, "stripe_sync_event"), 1, "the trigger must insert inside the transaction")
		require.NoError(t, tx.Rollback(ctx))
		require.Empty(t, jobRows(t, bundle.pool, "stripe_sync_event"))
	})

	t.Run("CommittedInsertLeavesOneJobNamingTheEvent", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bundle.pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'Committed')`, eventID(2), orgID)
		require.NoError(t, err)
		jobs := jobRows(t, bundle.pool, "stripe_sync_event")
		require.Len(t, jobs, 1)
		require.JSONEq(t, fmt.Sprintf(`{"event_id": %q}`, eventID(2)), string(jobs[0].EncodedArgs))
		require.Equal(t, rivertype.JobStateAvailable, jobs[0].State)
		require.Equal(t, outbox.Queue, jobs[0].Queue)
	})

	t.Run("HundredUpdatesLeaveOneWaitingJob", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bundle.pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'v0')`, eventID(3), orgID)
		require.NoError(t, err)
		for i := 1; i <= 100; i++ {
			_, err := bundle.pool.Exec(ctx, `UPDATE events SET title = $2 WHERE event_id = $1`, eventID(3), fmt.Sprintf("v%d", i))
			require.NoError(t, err)
		}
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_event"), 1)

		var wanted int64
		require.NoError(t, bundle.pool.QueryRow(ctx,
			`SELECT wanted_version FROM stripe_sync_state WHERE entity_type = 'event' AND entity_id = $1`, eventID(3)).Scan(&wanted))
		require.Equal(t, int64(101), wanted, "every committed change is recorded")

		results := enqueue(t, bundle, outbox.Entity{Kind: outbox.KindEvent, ID: eventID(3)})
		require.True(t, results[0].Duplicate)
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_event"), 1)
	})

	t.Run("WorkerWriteBackDoesNotEnqueue", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		_, err := bundle.pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'x')`, eventID(4), orgID)
		require.NoError(t, err)
		_, err = bundle.pool.Exec(ctx, `DELETE FROM river_job`)
		require.NoError(t, err)
		_, err = bundle.pool.Exec(ctx, `UPDATE events SET stripe_product_id = 'prod_x' WHERE event_id = $1`, eventID(4))
		require.NoError(t, err)
		_, err = bundle.pool.Exec(ctx, `UPDATE events SET title = 'x' WHERE event_id = $1`, eventID(4))
		require.NoError(t, err)
		require.Empty(t, jobRows(t, bundle.pool, "stripe_sync_event"), "neither the write-back nor a no-change update may enqueue")

		_, err = bundle.pool.Exec(ctx, `DELETE FROM events WHERE event_id = $1`, eventID(4))
		require.NoError(t, err)
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_event"), 1, "a delete enqueues")
	})

	t.Run("NoOpTicketAndOrgUpdatesDoNotEnqueue", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ticket := "07000000-0000-4000-8000-000000000001"
		exec := func(sql string, args ...any) {
			t.Helper()
			_, err := bundle.pool.Exec(ctx, sql, args...)
			require.NoError(t, err)
		}
		exec(`INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'x')`, eventID(5), orgID)
		exec(`INSERT INTO event_tickets (id, event_id, name, price, eligibility_criteria)
			VALUES ($1, $2, 'Adult', 10, '{"a": 1, "b": 2}')`, ticket, eventID(5))
		exec(`DELETE FROM river_job`)
		exec(`DELETE FROM stripe_sync_state`)

		// The same values written differently, the worker's write-back, and
		// columns Stripe never sees: none of them is a change.
		exec(`UPDATE event_tickets SET price = 10.00, name = 'Adult', eligibility_criteria = '{"b": 2, "a": 1}',
			stripe_price_id = 'price_x' WHERE id = $1`, ticket)
		exec(`UPDATE organisations SET name = 'Renamed', stripe_onbehalfof = 'acct_test' WHERE organisation_id = $1`, orgID)
		require.Empty(t, jobRows(t, bundle.pool, "stripe_sync_ticket"))
		require.Empty(t, jobRows(t, bundle.pool, "stripe_sync_org"))
		require.Empty(t, wantedVersions(t, bundle.pool), "a no-op update records no change")

		exec(`UPDATE event_tickets SET price = 10.01 WHERE id = $1`, ticket)
		exec(`UPDATE organisations SET stripe_onbehalfof = 'acct_new' WHERE organisation_id = $1`, orgID)
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_ticket"), 1)
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_org"), 1)
	})

	t.Run("NotifiesRiverOnlyWhenAJobIsInserted", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		listener, err := bundle.pool.Acquire(ctx)
		require.NoError(t, err)
		defer listener.Release()
		_, err = listener.Exec(ctx, `LISTEN "stripe_sync.river_insert"`)
		require.NoError(t, err)
		next := func() string {
			t.Helper()
			waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			n, err := listener.Conn().WaitForNotification(waitCtx)
			require.NoError(t, err)
			return n.Payload
		}

		_, err = bundle.pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'v0')`, eventID(6), orgID)
		require.NoError(t, err)
		require.JSONEq(t, `{"queue": "stripe_sync"}`, next(), "a new job wakes River's producers")

		for i := 1; i <= 3; i++ {
			_, err := bundle.pool.Exec(ctx, `UPDATE events SET title = $2 WHERE event_id = $1`, eventID(6), fmt.Sprintf("v%d", i))
			require.NoError(t, err)
		}
		// Notifications arrive in commit order, so if the updates had sent
		// one it would come before this marker.
		_, err = bundle.pool.Exec(ctx, `SELECT pg_notify('stripe_sync.river_insert', 'marker')`)
		require.NoError(t, err)
		require.Equal(t, "marker", next(), "updates whose job already waits must not notify")
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_event"), 1)
	})
}

func jobRowsTx(t *testing.T, tx pgx.Tx, kind string) []int64 {
	t.Helper()
	rows, err := tx.Query(context.Background(), `SELECT id FROM river_job WHERE kind = $1`, kind)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return ids
}

func TestEnqueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RecordsEachEntityOnceAndDeduplicates", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		ticket := "07000000-0000-4000-8000-000000000001"
		event := outbox.Entity{Kind: outbox.KindEvent, ID: eventID(1)}
		entities := []outbox.Entity{event, {Kind: outbox.KindTicket, ID: ticket}, event}

		results := enqueue(t, bundle, entities...)
		require.Len(t, results, 2, "a repeated entity is enqueued once")
		require.False(t, results[0].Duplicate)
		require.False(t, results[1].Duplicate)
		require.Equal(t, map[string]int64{"event": 1, "ticket": 1}, wantedVersions(t, bundle.pool))

		results = enqueue(t, bundle, entities...)
		require.True(t, results[0].Duplicate)
		require.True(t, results[1].Duplicate)
		require.Equal(t, map[string]int64{"event": 2, "ticket": 2}, wantedVersions(t, bundle.pool),
			"a duplicate still records the change, so a running job syncs again")
	})

	t.Run("TouchManyRecordsARepeatedEntityOnce", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		// Callers other than Enqueue may pass repeats; one statement cannot
		// upsert a row twice, so the function must fold them.
		_, err := bundle.pool.Exec(ctx, `SELECT stripe_sync_touch_many($1::text[], $2::uuid[])`,
			[]string{"event", "event", "ticket"}, []string{eventID(1), eventID(1), eventID(1)})
		require.NoError(t, err)
		require.Equal(t, map[string]int64{"event": 1, "ticket": 1}, wantedVersions(t, bundle.pool))
	})

	t.Run("RolledBackEnqueueLeavesNothing", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		tx, err := bundle.pool.Begin(ctx)
		require.NoError(t, err)
		_, err = outbox.Enqueue(ctx, bundle.client, tx, outbox.Entity{Kind: outbox.KindEvent, ID: eventID(1)})
		require.NoError(t, err)
		require.NoError(t, tx.Rollback(ctx))
		require.Empty(t, jobRows(t, bundle.pool, "stripe_sync_event"))
		require.Empty(t, wantedVersions(t, bundle.pool))
	})
}

// wantedVersions returns wanted_version by entity type, for tests that touch
// one entity of each type.
func wantedVersions(t *testing.T, pool *pgxpool.Pool) map[string]int64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT entity_type, wanted_version FROM stripe_sync_state`)
	require.NoError(t, err)
	out := map[string]int64{}
	var typ string
	var version int64
	_, err = pgx.ForEachRow(rows, []any{&typ, &version}, func() error {
		out[typ] = version
		return nil
	})
	require.NoError(t, err)
	return out
}

func enqueue(t *testing.T, bundle *testBundle, entities ...outbox.Entity) []outbox.Result {
	t.Helper()
	ctx := context.Background()
	tx, err := bundle.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	results, err := outbox.Enqueue(ctx, bundle.client, tx, entities...)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	return results
}

// TestTrigger_matchesRiver pins the SQL enqueue paths to River's own
// insert: the triggers (fired by the host's own statements), the SQL
// function jobs and the 4-argument stripe_sync_enqueue call, and the bulk
// lane's stripe_sync_enqueue_many (backfill). If a River upgrade changes how
// it computes unique keys or bitmasks, raw inserts would stop collapsing into
// River's, and this fails.
func TestTrigger_matchesRiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	for _, kind := range outbox.Kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			bundle := setup(t)
			id := "5e5e5e5e-0000-4000-8000-00000000abcd"
			exec := func(sql string, args ...any) {
				t.Helper()
				_, err := bundle.pool.Exec(ctx, sql, args...)
				require.NoError(t, err)
			}
			// The entity's row, for the trigger to fire on; its own insert's
			// jobs are not what is compared.
			parent := eventID(77)
			exec(`INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'Parent')`, parent, orgID)
			fire := func() {
				t.Helper()
				switch kind {
				case outbox.KindEvent:
					exec(`INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'Pinned') ON CONFLICT (event_id) DO UPDATE SET title = events.title || '!'`, id, orgID)
				case outbox.KindTicket:
					exec(`INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Pinned', 1) ON CONFLICT (id) DO UPDATE SET price = event_tickets.price + 1`, id, parent)
				case outbox.KindOrg:
					exec(`INSERT INTO organisations (organisation_id, name) VALUES ($1, 'Pinned') ON CONFLICT DO NOTHING`, id)
					exec(`UPDATE organisations SET stripe_onbehalfof = coalesce(stripe_onbehalfof, 'acct_') || 'x' WHERE organisation_id = $1`, id)
				}
			}
			onlyJob := func() int64 {
				t.Helper()
				var ids []int64
				rows, err := bundle.pool.Query(ctx, `SELECT id FROM river_job WHERE kind = $1`, kind.JobKind())
				require.NoError(t, err)
				ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
				require.NoError(t, err)
				require.Len(t, ids, 1, "one job for the entity")
				return ids[0]
			}
			clear := func() { exec(`DELETE FROM river_job`) }

			// River's row for the entity, in each lane.
			clear()
			results := enqueue(t, bundle, outbox.Entity{Kind: kind, ID: id})
			require.False(t, results[0].Duplicate)
			live := rawJob(t, bundle.pool, results[0].JobID)
			clear()
			results = enqueueBulk(t, bundle, outbox.Entity{Kind: kind, ID: id})
			bulk := rawJob(t, bundle.pool, results[0].JobID)
			require.EqualValues(t, outbox.PriorityBulk, bulk["priority"])

			// Each SQL path must collapse into River's job rather than insert
			// a second, and with River's row gone, insert a row equal to it
			// in every column River reads; River's client must then see it
			// as a duplicate.
			for _, path := range []struct {
				name string
				want map[string]any
				run  func()
			}{
				{"Trigger", live, fire},
				{"EnqueueFunction", live, func() {
					exec(`SELECT stripe_sync_enqueue($1, $2, $3, $4)`, kind.JobKind(), string(kind), idField(kind), id)
				}},
				{"EnqueueManyBulk", bulk, func() {
					exec(`SELECT stripe_sync_enqueue_many($1, ARRAY[$2::uuid], $3)`, string(kind), id, outbox.PriorityBulk)
				}},
			} {
				clear()
				results = enqueue(t, bundle, outbox.Entity{Kind: kind, ID: id})
				path.run()
				require.Equal(t, results[0].JobID, onlyJob(), "%s: must deduplicate against River's job", path.name)

				clear()
				path.run()
				got := rawJob(t, bundle.pool, onlyJob())
				want := maps.Clone(path.want)
				got["id"], want["id"] = nil, nil
				require.Equal(t, want, got, path.name)

				results = enqueueBulk(t, bundle, outbox.Entity{Kind: kind, ID: id})
				require.True(t, results[0].Duplicate, path.name)
			}
		})
	}
}

func idField(k outbox.Kind) string {
	switch k {
	case outbox.KindEvent:
		return "event_id"
	case outbox.KindTicket:
		return "ticket_id"
	}
	return "organisation_id"
}

func rawJob(t *testing.T, pool *pgxpool.Pool, id int64) map[string]any {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT id, args, kind, max_attempts, metadata, priority, queue, state::text, tags,
		       encode(unique_key, 'hex') AS unique_key, unique_states::text AS unique_states
		FROM river_job WHERE id = $1`, id)
	require.NoError(t, err)
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToMap)
	require.NoError(t, err)
	return row
}

// The triggers run as their owner (SECURITY DEFINER), so the host
// application's roles, Supabase's service_role and a signed-in member as
// authenticated under row security, keep writing the host tables as before,
// and their writes enqueue, while none of them can reach the sync schema.
func TestTrigger_hostRolesEnqueueWithoutReachingTheQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const member = "0b000000-0000-4000-8000-000000000001"

	for n, tc := range []struct {
		name  string
		setup []string
	}{
		{name: "ServiceRole", setup: []string{`SET LOCAL ROLE service_role`}},
		{name: "SignedInMemberUnderRowSecurity", setup: []string{
			`SET LOCAL ROLE authenticated`,
			`SELECT set_config('request.jwt.claim.sub', '` + member + `', true)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bundle := setup(t)
			_, err := bundle.pool.Exec(ctx, `INSERT INTO organisation_members VALUES ($1, $2)`, orgID, member)
			require.NoError(t, err)

			tx, err := bundle.pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			for _, stmt := range tc.setup {
				_, err = tx.Exec(ctx, stmt)
				require.NoError(t, err)
			}
			_, err = tx.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'As the app')`, eventID(90+n), orgID)
			require.NoError(t, err, "the host role's insert must not need any grant in the sync schema")
			_, err = tx.Exec(ctx, `UPDATE events SET title = 'Edited' WHERE event_id = $1`, eventID(90+n))
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `SAVEPOINT probe`)
			require.NoError(t, err)
			_, err = tx.Exec(ctx, `SELECT count(*) FROM stripe_sync.river_job`)
			require.ErrorContains(t, err, "permission denied", "the role really cannot reach River's tables")
			_, err = tx.Exec(ctx, `ROLLBACK TO SAVEPOINT probe`)
			require.NoError(t, err)
			require.NoError(t, tx.Commit(ctx))

			jobs := jobRows(t, bundle.pool, "stripe_sync_event")
			require.Len(t, jobs, 1)
			require.JSONEq(t, `{"event_id":"`+eventID(90+n)+`"}`, string(jobs[0].EncodedArgs))
		})
	}
}

// TestTrigger_setBased covers statements that change many rows at once: the
// statement-level triggers enqueue every changed entity, once, and nothing
// for rows whose Stripe-visible columns are unchanged.
func TestTrigger_setBased(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ticketID := func(n int) string { return fmt.Sprintf("07000000-0000-4000-8000-%012d", n) }

	// seed inserts an event with n tickets, in two statements, and empties
	// the queue and the recorded changes.
	seed := func(t *testing.T, bundle *testBundle, n int) {
		t.Helper()
		_, err := bundle.pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'Many')`, eventID(1), orgID)
		require.NoError(t, err)
		_, err = bundle.pool.Exec(ctx, `
			INSERT INTO event_tickets (id, event_id, name, price)
			SELECT ('07000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, $1, 'Tier ' || g, g
			FROM generate_series(1, $2::int) g`, eventID(1), n)
		require.NoError(t, err)
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_ticket"), n, "one statement inserting n tickets enqueues n jobs")
		_, err = bundle.pool.Exec(ctx, `DELETE FROM river_job; DELETE FROM stripe_sync_state`)
		require.NoError(t, err)
	}
	ticketJobs := func(t *testing.T, bundle *testBundle) []string {
		t.Helper()
		rows, err := bundle.pool.Query(ctx, `SELECT args->>'ticket_id' FROM river_job WHERE kind = 'stripe_sync_ticket' ORDER BY 1`)
		require.NoError(t, err)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return ids
	}

	t.Run("UpdateEnqueuesOnlyRowsThatChanged", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		seed(t, bundle, 10)
		// Tickets 1-10: even ones get a new price, odd ones the same value
		// written again, and every one the worker's write-back.
		_, err := bundle.pool.Exec(ctx, `
			UPDATE event_tickets SET price = CASE WHEN price::int % 2 = 0 THEN price + 1 ELSE price END,
			       stripe_price_id = 'price_' || price::int`)
		require.NoError(t, err)
		require.Equal(t, []string{ticketID(2), ticketID(4), ticketID(6), ticketID(8), ticketID(10)}, ticketJobs(t, bundle))
		var changed int
		require.NoError(t, bundle.pool.QueryRow(ctx, `SELECT count(*) FROM stripe_sync_state WHERE entity_type = 'ticket'`).Scan(&changed))
		require.Equal(t, 5, changed, "unchanged rows record no change")

		_, err = bundle.pool.Exec(ctx, `UPDATE event_tickets SET price = price + 1`)
		require.NoError(t, err)
		require.Len(t, ticketJobs(t, bundle), 10, "rows whose job already waits collapse into it")
		require.NoError(t, bundle.pool.QueryRow(ctx,
			`SELECT sum(wanted_version) FROM stripe_sync_state WHERE entity_type = 'ticket'`).Scan(&changed))
		require.Equal(t, 15, changed, "every committed change is recorded")
	})

	t.Run("IdChangeEnqueuesOldAndNew", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		seed(t, bundle, 1)
		_, err := bundle.pool.Exec(ctx, `UPDATE event_tickets SET id = $2 WHERE id = $1`, ticketID(1), ticketID(99))
		require.NoError(t, err)
		require.Equal(t, []string{ticketID(1), ticketID(99)}, ticketJobs(t, bundle))
	})

	t.Run("DeleteCascadesToTickets", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		seed(t, bundle, 5)
		_, err := bundle.pool.Exec(ctx, `DELETE FROM events WHERE event_id = $1`, eventID(1))
		require.NoError(t, err)
		require.Len(t, jobRows(t, bundle.pool, "stripe_sync_event"), 1)
		require.Len(t, ticketJobs(t, bundle), 5)
	})

	t.Run("OneStatementNotifiesOnce", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		listener, err := bundle.pool.Acquire(ctx)
		require.NoError(t, err)
		defer listener.Release()
		_, err = listener.Exec(ctx, `LISTEN "stripe_sync.river_insert"`)
		require.NoError(t, err)
		seed(t, bundle, 20)
		_, err = bundle.pool.Exec(ctx, `UPDATE event_tickets SET name = name || '!'`)
		require.NoError(t, err)
		_, err = bundle.pool.Exec(ctx, `SELECT pg_notify('stripe_sync.river_insert', 'marker')`)
		require.NoError(t, err)
		var payloads []string
		for {
			waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n, err := listener.Conn().WaitForNotification(waitCtx)
			cancel()
			require.NoError(t, err)
			if n.Payload == "marker" {
				break
			}
			payloads = append(payloads, n.Payload)
		}
		// The event insert, the tickets' insert, the update: one each.
		require.Len(t, payloads, 3)
	})
}
