package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/outbox"
)

// OrgWorker follows an organisation's change of connected account: it
// enqueues every event and ticket of the organisation, in bulk and
// deduplicated against waiting jobs. Each of those jobs then creates its
// object on the new account and archives the old one where the old account
// is still reachable.
type OrgWorker struct {
	river.WorkerDefaults[outbox.OrgArgs]
	deps *Deps
}

// Work enqueues the organisation's catalogue and completes with the enqueue,
// in one transaction.
func (w *OrgWorker) Work(ctx context.Context, job *river.Job[outbox.OrgArgs]) error {
	id, err := outbox.ParseID(job.Args.OrganisationID)
	if err != nil {
		return river.JobCancel(err)
	}
	return pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
		// Holding the organisation's state row until the job completes makes
		// an account change that commits meanwhile wait for the completion,
		// so its own job is inserted rather than deduplicated into this one.
		// Under that lock the change this job acts on is wanted_version:
		// marking it handled keeps the resync job from re-enqueueing the
		// whole catalogue every interval.
		if _, err := tx.Exec(ctx, `UPDATE stripe_sync_state SET handled_version = wanted_version WHERE entity_type = 'org' AND entity_id = $1`, id); err != nil {
			return fmt.Errorf("lock organisation %s: %w", id, err)
		}
		rows, err := tx.Query(ctx, `
			SELECT 'event', e.event_id::text FROM events e WHERE e.organisation_id = $1
			UNION ALL
			SELECT 'ticket', t.id::text FROM event_tickets t JOIN events e USING (event_id) WHERE e.organisation_id = $1`, id)
		if err != nil {
			return fmt.Errorf("list organisation %s: %w", id, err)
		}
		entities, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outbox.Entity, error) {
			var e outbox.Entity
			var kind string
			err := row.Scan(&kind, &e.ID)
			e.Kind = outbox.Kind(kind)
			return e, err
		})
		if err != nil {
			return fmt.Errorf("list organisation %s: %w", id, err)
		}
		if err := clearUnreachable(ctx, tx, id, w.deps.Logger); err != nil {
			return err
		}
		// The bulk lane: a catalogue moving account must not hold up live edits.
		if _, err := outbox.EnqueueBulk(ctx, river.ClientFromContext[pgx.Tx](ctx), tx, entities...); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO stripe_sync_log (entity_type, entity_id, action, status, error_message, job_id, attempt)
			VALUES ('org', $1, 'sync', 'success', $2, $3, $4)`,
			id, fmt.Sprintf("enqueued %d events and tickets", len(entities)), job.ID, job.Attempt)
		if err != nil {
			return err
		}
		_, err = river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	})
}

// NextRetry caps the backoff as EventWorker's does.
func (w *OrgWorker) NextRetry(job *river.Job[outbox.OrgArgs]) time.Time {
	return nextRetry(job.Attempt)
}
