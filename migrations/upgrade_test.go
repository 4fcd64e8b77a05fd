package migrations_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/migrations"
	"github.com/lodgetix/stripe-sync/outbox"
)

type countingEventWorker struct {
	river.WorkerDefaults[outbox.EventArgs]
	worked chan string
}

func (w *countingEventWorker) Work(_ context.Context, job *river.Job[outbox.EventArgs]) error {
	w.worked <- job.Args.EventID
	return nil
}

// TestUp_movesAnEarlierInstallOutOfPublic builds a database the way main
// did before the sync schema (everything in public, jobs waiting, sync state
// and log rows), runs Up, and checks that everything was moved, not copied:
// same rows, nothing left in public, the waiting jobs then worked by a
// River client on the schema, and the triggers enqueueing there.
func TestUp_movesAnEarlierInstallOutOfPublic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, url := testdb.EmptyURL(t)
	require.NoError(t, migrations.InstallHostSchema(ctx, db))
	require.NoError(t, migrations.LegacyUp(ctx, url))

	const (
		org     = "0a000000-0000-4000-8000-000000000001"
		waiting = "0e000000-0000-4000-8000-000000000001"
		synced  = "0e000000-0000-4000-8000-000000000002"
		later   = "0e000000-0000-4000-8000-000000000003"
	)
	for _, stmt := range []string{
		`INSERT INTO organisations VALUES ('` + org + `', 'Org', 'acct_1')`,
		`INSERT INTO events (event_id, organisation_id, title) VALUES ('` + waiting + `', '` + org + `', 'Waiting'), ('` + synced + `', '` + org + `', 'Synced')`,
		// The second event's job ran and was logged before the upgrade.
		`UPDATE public.river_job SET state = 'completed', finalized_at = now() WHERE args->>'event_id' = '` + synced + `'`,
		`INSERT INTO public.stripe_sync_log (entity_type, entity_id, action, status) VALUES ('event', '` + synced + `', 'create', 'success')`,
		`UPDATE public.stripe_sync_state SET handled_version = wanted_version, stripe_object_id = 'prod_x' WHERE entity_id = '` + synced + `'`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	before := snapshot(t, db, "public")
	require.Equal(t, 2, before["river_job"])
	require.Equal(t, 2, before["stripe_sync_state"])

	res, err := migrations.Up(ctx, url, migrations.Options{})
	require.NoError(t, err)
	require.Contains(t, res.Moved, "public.river_job")
	require.Contains(t, res.Moved, "public.stripe_sync_state")
	require.Contains(t, res.Moved, "public.stripe_sync_migrations")
	require.Empty(t, res.River, "River's migrations were already applied, in public, and moved")
	require.Equal(t, "005_own_schema.sql", res.Project[0], "001-004 were applied in public; 005 and later run now")

	require.Equal(t, before, snapshot(t, db, "stripe_sync"), "every row moved, none copied or lost")
	var leftovers int
	require.NoError(t, db.QueryRowContext(ctx, `
		SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace
		  AND (relname LIKE 'river%' OR relname LIKE 'stripe\_sync%')`).Scan(&leftovers))
	require.Zero(t, leftovers)

	// The triggers now enqueue into the schema: one new job for a new event.
	_, err = db.ExecContext(ctx, `INSERT INTO events (event_id, organisation_id, title) VALUES ($1, $2, 'Later')`, later, org)
	require.NoError(t, err)

	pool := testdb.Pool(t, url)
	workers := river.NewWorkers()
	worker := &countingEventWorker{worked: make(chan string, 10)}
	river.AddWorker(workers, worker)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema: outbox.DefaultSchema, Queues: map[string]river.QueueConfig{outbox.Queue: {MaxWorkers: 2}}, Workers: workers,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { _ = client.Stop(context.Background()) })
	got := map[string]bool{}
	for len(got) < 2 {
		select {
		case id := <-worker.worked:
			got[id] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("jobs worked after the move: %v; want the waiting one and the new one", got)
		}
	}
	require.Equal(t, map[string]bool{waiting: true, later: true}, got)

	second, err := migrations.Up(ctx, url, migrations.Options{})
	require.NoError(t, err)
	require.Empty(t, second.Moved)
	require.Empty(t, second.Project)
}

// snapshot counts the rows of the tables an install keeps, in schema.
func snapshot(t *testing.T, db *sql.DB, schema string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"river_job", "river_migration", "stripe_sync_state", "stripe_sync_log", "stripe_sync_migrations"} {
		var n int
		require.NoError(t, db.QueryRowContext(context.Background(), `SELECT count(*) FROM `+schema+`.`+table).Scan(&n), table)
		out[table] = n
	}
	// Goose records the migrations it applies: 005 and later are new.
	var added int
	require.NoError(t, db.QueryRowContext(context.Background(),
		`SELECT count(*) FROM `+schema+`.stripe_sync_migrations WHERE version_id >= 5`).Scan(&added))
	out["stripe_sync_migrations"] -= added
	return out
}

// The schema is named in two places that must agree: where migrate installs
// River's tables and where every River client of the product looks for them.
func TestDefaultSchema_matchesOutbox(t *testing.T) {
	t.Parallel()
	require.Equal(t, outbox.DefaultSchema, migrations.DefaultSchema)
}
