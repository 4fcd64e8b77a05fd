package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
)

// PruneWebhookArgs is the periodic job that deletes received Stripe event
// ids and scheduled reconcile runs older than Options.LogRetention, as
// PruneLogArgs does for the sync log. Stripe redelivers an event for up to
// three days, far inside any sensible retention, so a pruned id cannot come
// back.
type PruneWebhookArgs struct{}

// Kind implements river.JobArgs.
func (PruneWebhookArgs) Kind() string { return "stripe_sync_prune_webhooks" }

// InsertOpts implements river.JobArgsWithInsertOpts: one waits at a time.
func (PruneWebhookArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: outbox.Queue, MaxAttempts: 3, UniqueOpts: river.UniqueOpts{ByState: outbox.UniqueStates}}
}

// PruneWebhookWorker deletes old event ids and reconcile runs in batches.
type PruneWebhookWorker struct {
	river.WorkerDefaults[PruneWebhookArgs]
	deps      *Deps
	retention time.Duration
}

// Work deletes, by the database's clock. Returns the database's error, after
// which River retries.
func (w *PruneWebhookWorker) Work(ctx context.Context, _ *river.Job[PruneWebhookArgs]) error {
	for _, q := range []string{
		`DELETE FROM stripe_sync_webhook_event WHERE event_id IN (
			SELECT event_id FROM stripe_sync_webhook_event WHERE received_at < now() - make_interval(secs => $1) LIMIT $2)`,
		`DELETE FROM stripe_sync_reconcile_run WHERE id IN (
			SELECT id FROM stripe_sync_reconcile_run WHERE finished_at < now() - make_interval(secs => $1) LIMIT $2)`,
	} {
		for {
			tag, err := w.deps.Pool.Exec(ctx, q, w.retention.Seconds(), pruneBatch)
			if err != nil {
				return fmt.Errorf("prune webhook events: %w", err)
			}
			if tag.RowsAffected() < pruneBatch {
				break
			}
		}
	}
	return nil
}

// driftWorkers adds the workers of issue 13's drift handling (webhook
// events, the scheduled reconcile, their pruning) and returns their periodic
// jobs.
func driftWorkers(workers *river.Workers, deps *Deps, opts Options) []*river.PeriodicJob {
	river.AddWorker(workers, &WebhookWorker{deps: deps})
	river.AddWorker(workers, &ReconcileWorker{deps: deps})
	river.AddWorker(workers, &ReconcileAccountWorker{deps: deps})
	river.AddWorker(workers, &PruneWebhookWorker{deps: deps, retention: opts.LogRetention})
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(pruneInterval),
			func() (river.JobArgs, *river.InsertOpts) { return PruneWebhookArgs{}, nil },
			&river.PeriodicJobOpts{ID: "stripe_sync_prune_webhooks", RunOnStart: true}),
	}
	if opts.ReconcileEvery > 0 {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(opts.ReconcileEvery),
			func() (river.JobArgs, *river.InsertOpts) { return ReconcileArgs{}, nil },
			&river.PeriodicJobOpts{ID: "stripe_sync_reconcile"}))
	}
	return periodic
}
