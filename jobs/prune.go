package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
)

// pruneInterval is how often the prune job runs. It also runs when a worker
// becomes River's leader, so workers redeployed more often than this still
// prune.
const pruneInterval = time.Hour

// pruneBatch bounds one DELETE, so the log's row locks and WAL come in small
// pieces and the sync's own inserts never queue behind a long statement.
const pruneBatch = 5000

// PruneLogArgs is the periodic job that deletes stripe_sync_log rows older
// than Options.LogRetention.
type PruneLogArgs struct{}

// Kind implements river.JobArgs.
func (PruneLogArgs) Kind() string { return "stripe_sync_prune_log" }

// InsertOpts implements river.JobArgsWithInsertOpts: one prune waits at a
// time, however many workers share the queue.
func (PruneLogArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       outbox.Queue,
		MaxAttempts: 3,
		UniqueOpts:  river.UniqueOpts{ByState: outbox.UniqueStates},
	}
}

// PruneLogWorker deletes old stripe_sync_log rows in batches of pruneBatch.
// Each batch commits on its own, so a prune cut short (by the job timeout or
// a shutdown) keeps what it deleted and the next run goes on from there.
type PruneLogWorker struct {
	river.WorkerDefaults[PruneLogArgs]
	deps      *Deps
	retention time.Duration
}

// Work deletes every log row created more than the retention ago, by the
// database's clock. Returns the database's error, after which River retries.
func (w *PruneLogWorker) Work(ctx context.Context, _ *river.Job[PruneLogArgs]) error {
	total := int64(0)
	for {
		// status = ANY(...) lets the (status, created_at) index find the old
		// rows: the CHECK constraint allows no other status.
		tag, err := w.deps.Pool.Exec(ctx, `
			DELETE FROM stripe_sync_log WHERE id IN (
				SELECT id FROM stripe_sync_log
				WHERE status = ANY ($1) AND created_at < now() - make_interval(secs => $2)
				LIMIT $3)`,
			[]string{StatusSuccess, StatusFailed, StatusSkipped}, w.retention.Seconds(), pruneBatch)
		if err != nil {
			return fmt.Errorf("prune sync log after %d rows: %w", total, err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneBatch {
			break
		}
	}
	if total > 0 {
		w.deps.Logger.Info("pruned the sync log", slog.Int64("rows", total), slog.Duration("retention", w.retention))
	}
	return nil
}
