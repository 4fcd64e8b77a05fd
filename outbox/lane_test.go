package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/outbox"
)

func TestLane(t *testing.T) {
	t.Parallel()
	require.Equal(t, "live", outbox.Lane(outbox.PriorityLive))
	require.Equal(t, "bulk", outbox.Lane(outbox.PriorityBulk))
	require.Less(t, outbox.PriorityLive, outbox.PriorityBulk, "River works the lowest number first")
}

// jobLane is an entity's jobs as (id, priority, state).
type jobLane struct {
	ID       int64
	Priority int
	State    string
}

func entityJobs(t *testing.T, bundle *testBundle, kind outbox.Kind, id string) []jobLane {
	t.Helper()
	rows, err := bundle.pool.Query(context.Background(), `
		SELECT id, priority, state::text FROM river_job
		WHERE kind = $1 AND args->>($2::text) = $3 ORDER BY id`, kind.JobKind(), idField(kind), id)
	require.NoError(t, err)
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[jobLane])
	require.NoError(t, err)
	return jobs
}

func enqueueBulk(t *testing.T, bundle *testBundle, entities ...outbox.Entity) []outbox.Result {
	t.Helper()
	var results []outbox.Result
	require.NoError(t, pgx.BeginFunc(context.Background(), bundle.pool, func(tx pgx.Tx) error {
		var err error
		results, err = outbox.EnqueueBulk(context.Background(), bundle.client, tx, entities...)
		return err
	}))
	return results
}

// insertEventsQuietly inserts events as if they predated the install: the
// jobs their insert enqueued are deleted.
func insertEventsQuietly(t *testing.T, bundle *testBundle, ids ...string) {
	t.Helper()
	ctx := context.Background()
	_, err := bundle.pool.Exec(ctx, `
		INSERT INTO events (event_id, organisation_id, title) SELECT id, $2, 'Quiet' FROM unnest($1::uuid[]) id`, ids, orgID)
	require.NoError(t, err)
	_, err = bundle.pool.Exec(ctx, `DELETE FROM river_job`)
	require.NoError(t, err)
}

func TestEnqueueBulk_lift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("TriggerLiftsTheWaitingBulkJob", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		insertEventsQuietly(t, bundle, eventID(1))
		results := enqueueBulk(t, bundle, outbox.Entity{Kind: outbox.KindEvent, ID: eventID(1)})
		require.False(t, results[0].Duplicate)
		require.Equal(t, []jobLane{{results[0].JobID, outbox.PriorityBulk, "available"}}, entityJobs(t, bundle, outbox.KindEvent, eventID(1)))

		_, err := bundle.pool.Exec(ctx, `UPDATE events SET title = 'Edited' WHERE event_id = $1`, eventID(1))
		require.NoError(t, err)
		require.Equal(t, []jobLane{{results[0].JobID, outbox.PriorityLive, "available"}}, entityJobs(t, bundle, outbox.KindEvent, eventID(1)),
			"the same job, now in the live lane: still the only job for the entity")
	})

	t.Run("SetBasedTriggerLiftsOnlyItsEntities", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		insertEventsQuietly(t, bundle, eventID(1), eventID(2), eventID(3))
		enqueueBulk(t, bundle,
			outbox.Entity{Kind: outbox.KindEvent, ID: eventID(1)},
			outbox.Entity{Kind: outbox.KindEvent, ID: eventID(2)},
			outbox.Entity{Kind: outbox.KindEvent, ID: eventID(3)})
		_, err := bundle.pool.Exec(ctx, `UPDATE events SET title = 'Edited' WHERE event_id = ANY($1::uuid[])`, []string{eventID(1), eventID(3)})
		require.NoError(t, err)
		for n, want := range map[int]int{1: outbox.PriorityLive, 2: outbox.PriorityBulk, 3: outbox.PriorityLive} {
			jobs := entityJobs(t, bundle, outbox.KindEvent, eventID(n))
			require.Len(t, jobs, 1)
			require.Equal(t, want, jobs[0].Priority, "event %d", n)
		}
	})

	t.Run("EnqueueLiftsTheWaitingBulkJob", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		bulk := enqueueBulk(t, bundle, outbox.Entity{Kind: outbox.KindTicket, ID: eventID(7)})
		live := enqueue(t, bundle, outbox.Entity{Kind: outbox.KindTicket, ID: eventID(7)})
		require.True(t, live[0].Duplicate)
		require.Equal(t, bulk[0].JobID, live[0].JobID)
		require.Equal(t, []jobLane{{bulk[0].JobID, outbox.PriorityLive, "available"}}, entityJobs(t, bundle, outbox.KindTicket, eventID(7)))
	})

	t.Run("BulkNeverLowersALiveJob", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		live := enqueue(t, bundle, outbox.Entity{Kind: outbox.KindOrg, ID: orgID})
		bulk := enqueueBulk(t, bundle, outbox.Entity{Kind: outbox.KindOrg, ID: orgID})
		require.True(t, bulk[0].Duplicate)
		require.Equal(t, []jobLane{{live[0].JobID, outbox.PriorityLive, "available"}}, entityJobs(t, bundle, outbox.KindOrg, orgID))
	})

	t.Run("RunningJobIsLeftAlone", func(t *testing.T) {
		t.Parallel()
		bundle := setup(t)
		insertEventsQuietly(t, bundle, eventID(1))
		results := enqueueBulk(t, bundle, outbox.Entity{Kind: outbox.KindEvent, ID: eventID(1)})
		_, err := bundle.pool.Exec(ctx, `UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() WHERE id = $1`, results[0].JobID)
		require.NoError(t, err)
		_, err = bundle.pool.Exec(ctx, `UPDATE events SET title = 'Edited' WHERE event_id = $1`, eventID(1))
		require.NoError(t, err)
		require.Equal(t, []jobLane{{results[0].JobID, outbox.PriorityBulk, "running"}}, entityJobs(t, bundle, outbox.KindEvent, eventID(1)),
			"a running job reads the current row and re-runs on the recorded change: no second job, no lift")
	})
}

// TestEnqueueBulk_editDuringBacklogIsWorkedNext drains a backlog of bulk
// jobs with a real River client working one job at a time, and edits an
// entity near the end of the backlog while the first job runs: the edit's
// job is the next one worked.
func TestEnqueueBulk_editDuringBacklogIsWorkedNext(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	bundle := setup(t)

	const backlog = 20
	var entities []outbox.Entity
	var ids []string
	for n := 1; n <= backlog; n++ {
		ids = append(ids, eventID(n))
		entities = append(entities, outbox.Entity{Kind: outbox.KindEvent, ID: eventID(n)})
	}
	insertEventsQuietly(t, bundle, ids...)
	enqueueBulk(t, bundle, entities...)

	started := make(chan string, backlog)
	release := make(chan struct{})
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[outbox.EventArgs]) error {
		started <- job.Args.EventID
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	client, err := river.NewClient(riverpgxv5.New(bundle.pool), &river.Config{
		Schema:            outbox.DefaultSchema,
		Queues:            map[string]river.QueueConfig{outbox.Queue: {MaxWorkers: 1}},
		Workers:           workers,
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		TestOnly:          true,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		close(release)
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(stopCtx))
	})

	next := func() string {
		t.Helper()
		select {
		case id := <-started:
			return id
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no job started")
			return ""
		}
	}
	require.Equal(t, eventID(1), next(), "the backlog drains in order")

	edited := eventID(backlog - 1)
	_, err = bundle.pool.Exec(ctx, `UPDATE events SET title = 'Edited during the backlog' WHERE event_id = $1`, edited)
	require.NoError(t, err)
	release <- struct{}{}
	require.Equal(t, edited, next(), "the edit overtakes %d waiting bulk jobs", backlog-2)
	require.Len(t, entityJobs(t, bundle, outbox.KindEvent, edited), 1, "the lifted job is still the only job for its entity")
	release <- struct{}{}
	require.Equal(t, eventID(2), next(), "then the bulk lane resumes where it was")
}
