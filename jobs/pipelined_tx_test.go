package jobs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

type pipelinedCompleteArgs struct{}

func (pipelinedCompleteArgs) Kind() string { return "test_pipelined_complete" }

// pipelinedCompleteWorker completes its job the way runRound does: BEGIN
// queued on a pipelinedTx, river.JobCompleteTx inside it, then COMMIT with
// the unlock. It reports JobCompleteTx's error on done.
type pipelinedCompleteWorker struct {
	river.WorkerDefaults[pipelinedCompleteArgs]
	deps *Deps
	done chan error
}

func (w *pipelinedCompleteWorker) Work(ctx context.Context, job *river.Job[pipelinedCompleteArgs]) error {
	conn, err := w.deps.Pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx := &pipelinedTx{conn: conn.Conn()}
	batch := &pgx.Batch{}
	batch.Queue("begin")
	if err := conn.SendBatch(ctx, batch).Close(); err != nil {
		return err
	}
	tx.open = true

	_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, pgx.Tx(tx), job)
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
	} else {
		err = tx.commitAndUnlock(ctx)
	}
	w.done <- err
	if err != nil {
		return river.JobCancel(err)
	}
	return nil
}

// TestPipelinedTx_JobCompleteTxDoesNotNestTransaction guards the assumption
// pipelinedTx rests on: river.JobCompleteTx runs its statements on the
// transaction it is given and never opens a nested one (pipelinedTx.Begin
// refuses with errNestedTx). If a River upgrade changes that, every sync job
// fails to complete; this test says so by name before a worker does. The fix
// is then to support savepoints in pipelinedTx or to go back to pgx's Tx.
func TestPipelinedTx_JobCompleteTxDoesNotNestTransaction(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	deps := &Deps{Pool: testdb.New(t), Schema: outbox.DefaultSchema}
	worker := &pipelinedCompleteWorker{deps: deps, done: make(chan error, 1)}
	workers := river.NewWorkers()
	river.AddWorker(workers, worker)
	client, err := river.NewClient(riverpgxv5.New(deps.Pool), &river.Config{
		Schema:            deps.Schema,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:           workers,
		FetchCooldown:     50 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		TestOnly:          true,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	})

	inserted, err := client.Insert(ctx, pipelinedCompleteArgs{}, nil)
	require.NoError(t, err)

	select {
	case err := <-worker.done:
		if errors.Is(err, errNestedTx) {
			t.Fatalf("river.JobCompleteTx now nests a transaction (pipelinedTx.Begin was called): "+
				"pipelinedTx can no longer carry a sync round's completion; support savepoints or use pgx's Tx: %v", err)
		}
		require.NoError(t, err, "river.JobCompleteTx on a pipelinedTx")
	case <-time.After(30 * time.Second):
		t.Fatal("the job was not worked within 30s")
	}

	job, err := client.JobGet(ctx, inserted.Job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, job.State, "completed in the pipelined transaction")
}

func TestPipelinedTx_Begin(t *testing.T) {
	t.Parallel()

	_, err := (&pipelinedTx{}).Begin(context.Background())
	require.ErrorIs(t, err, errNestedTx)
}
