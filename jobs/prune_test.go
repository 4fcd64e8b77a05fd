package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
)

func TestPruneLogWorker_Work(t *testing.T) {
	t.Parallel()
	b := synctesting.Start(t, synctesting.Options{NoWorker: true, Jobs: jobs.Options{LogRetention: 48 * time.Hour}})

	// More old rows than one batch deletes, of every status, and recent rows
	// just inside the retention.
	b.Exec(t, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, action, status, created_at)
		SELECT 'event', gen_random_uuid(), 'create', (ARRAY['success', 'failed', 'skipped'])[1 + g % 3],
		       now() - interval '49 hours' - g * interval '1 second'
		FROM generate_series(1, 12001) g`)
	b.Exec(t, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, action, status, created_at)
		SELECT 'ticket', gen_random_uuid(), 'update', (ARRAY['success', 'failed', 'skipped'])[1 + g % 3],
		       now() - interval '47 hours' + g * interval '1 hour'
		FROM generate_series(1, 6) g`)

	// The prune runs when the worker starts, not only hourly: workers
	// redeployed more often than hourly would otherwise never prune.
	b.StartWorker(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var done int
		require.NoError(t, b.Pool.QueryRow(context.Background(),
			`SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'`, jobs.PruneLogArgs{}.Kind()).Scan(&done))
		if done > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the prune job never completed")
		time.Sleep(20 * time.Millisecond)
	}

	var old, recent int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `
		SELECT count(*) FILTER (WHERE entity_type = 'event'), count(*) FILTER (WHERE entity_type = 'ticket')
		FROM stripe_sync_log`).Scan(&old, &recent))
	require.Zero(t, old, "every row older than the retention is gone, over several batches")
	require.Equal(t, 6, recent, "rows inside the retention are kept")
}
