package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

func TestPresence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.URL(t)
	reader := testdb.Pool(t, url)

	workers := func(t *testing.T) []outbox.WorkerSession {
		t.Helper()
		ws, err := outbox.Workers(ctx, reader)
		require.NoError(t, err)
		return ws
	}
	require.Empty(t, workers(t))

	// A River client that is not a syncctl worker wins River's leader
	// election on the same tables; it must not count as a worker.
	foreign, err := river.NewClient(riverpgxv5.New(testdb.Pool(t, url)), &river.Config{
		Schema: testdb.Schema, Queues: map[string]river.QueueConfig{"someone_else": {MaxWorkers: 1}},
		Workers: foreignWorkers(),
	})
	require.NoError(t, err)
	require.NoError(t, foreign.Start(ctx))
	t.Cleanup(func() { _ = foreign.Stop(context.Background()) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		l, err := outbox.RiverLeader(ctx, reader)
		require.NoError(t, err)
		if l != nil && l.ExpiresAt.After(time.Now()) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the foreign client never became leader")
		time.Sleep(20 * time.Millisecond)
	}
	require.Empty(t, workers(t), "River's leader is not one of ours")

	errs := make(chan error, 10)
	first, err := outbox.Announce(ctx, testdb.Pool(t, url), outbox.PresenceOptions{
		CheckEvery: 20 * time.Millisecond, OnError: func(err error) { errs <- err },
	})
	require.NoError(t, err)
	t.Cleanup(first.Close)
	second, err := outbox.Announce(ctx, testdb.Pool(t, url), outbox.PresenceOptions{})
	require.NoError(t, err)
	ws := workers(t)
	require.Len(t, ws, 2)
	require.NotNil(t, ws[0].ConnectedAt, "the same role sees its own sessions' start")

	t.Run("CloseLeavesAtOnce", func(t *testing.T) {
		second.Close()
		second.Close() // idempotent
		require.Len(t, workers(t), 1)
	})

	t.Run("LostSessionComesBack", func(t *testing.T) {
		pid := workers(t)[0].PID
		var ok bool
		require.NoError(t, reader.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok))
		require.True(t, ok)
		deadline := time.Now().Add(20 * time.Second)
		for {
			ws := workers(t)
			if len(ws) == 1 && ws[0].PID != pid {
				break
			}
			require.True(t, time.Now().Before(deadline), "the presence was not re-established: %v", ws)
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case err := <-errs:
			require.Error(t, err, "a lost session may be reported before it is replaced")
		default:
		}
	})

	t.Run("CloseAfterReconnect", func(t *testing.T) {
		first.Close()
		require.Empty(t, workers(t))
	})
}

type foreignArgs struct{}

func (foreignArgs) Kind() string { return "someone_else_noop" }

func foreignWorkers() *river.Workers {
	w := river.NewWorkers()
	river.AddWorker(w, river.WorkFunc(func(context.Context, *river.Job[foreignArgs]) error { return nil }))
	return w
}

func TestSummarizeQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	ready, err := b.client.Insert(ctx, outbox.EventArgs{EventID: eventID(1)}, nil)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET scheduled_at = now() - interval '1 minute' WHERE id = $1`, ready.Job.ID)
	require.NoError(t, err)
	_, err = b.client.Insert(ctx, outbox.EventArgs{EventID: eventID(2)}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)

	s, err := outbox.SummarizeQueue(ctx, b.pool)
	require.NoError(t, err)
	require.Len(t, s.ByState, 8, "every state River knows")
	require.Equal(t, 1, s.ByState["available"])
	require.Equal(t, 1, s.ByState["scheduled"])
	require.Equal(t, 0, s.ByState["running"])
	// Bounded by the database's clock on both sides, not by how long this
	// test took: at least the minute it was set back, at most its age read
	// afterwards.
	var ageAfter float64
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT extract(epoch FROM now() - scheduled_at)::float8 FROM river_job WHERE id = $1`,
		ready.Job.ID).Scan(&ageAfter))
	require.GreaterOrEqual(t, s.OldestReady, time.Minute, "the job ready for a minute, not the one scheduled for later")
	require.LessOrEqual(t, s.OldestReady.Seconds(), ageAfter)
}
