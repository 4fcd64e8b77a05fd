package jobs

import (
	"context"
	"errors"
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
// is still reachable (or, when the organisation has no account any more,
// archives it).
type OrgWorker struct {
	river.WorkerDefaults[outbox.OrgArgs]
	deps *Deps
}

// Work enqueues the organisation's catalogue (see enqueueBulk: never
// waiting on a lock while holding one, so the host's transactions never
// deadlock with it), then completes the job in a transaction that checks,
// under the organisation's state row lock, that no account change committed
// since the catalogue was read; if one did (it deduplicated into this
// running job), it enqueues again.
func (w *OrgWorker) Work(ctx context.Context, job *river.Job[outbox.OrgArgs]) error {
	id, err := outbox.ParseID(job.Args.OrganisationID)
	if err != nil {
		return river.JobCancel(err)
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	for round := 1; ; round++ {
		var version int64
		if err := w.deps.Pool.QueryRow(ctx, `
			SELECT coalesce((SELECT wanted_version FROM stripe_sync_state WHERE entity_type = 'org' AND entity_id = $1), 0)`,
			id).Scan(&version); err != nil {
			return fmt.Errorf("read organisation %s: %w", id, err)
		}
		entities, err := w.catalogue(ctx, id)
		if err != nil {
			return err
		}
		// Committed before the fan-out, so no entity job of the fan-out
		// still finds the account marked unreachable.
		if err := pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
			return clearUnreachable(ctx, tx, id, w.deps.Logger)
		}); err != nil {
			return err
		}
		if _, err := enqueueBulk(ctx, w.deps.Pool, client, entities, false); err != nil {
			if errors.Is(err, errBulkBusy) && snoozes(job.Metadata) < MaxSnoozes {
				return river.JobSnooze(time.Second)
			}
			return err
		}
		done := false
		err = pgx.BeginFunc(ctx, w.deps.Pool, func(tx pgx.Tx) error {
			// Waiting here holds nothing else, so it cannot close a cycle.
			var wanted int64
			err := tx.QueryRow(ctx, `
				SELECT wanted_version FROM stripe_sync_state WHERE entity_type = 'org' AND entity_id = $1 FOR UPDATE`,
				id).Scan(&wanted)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("lock organisation %s: %w", id, err)
			}
			if wanted > version {
				return nil // moved again meanwhile: enqueue again
			}
			if _, err := tx.Exec(ctx, `UPDATE stripe_sync_state SET handled_version = wanted_version WHERE entity_type = 'org' AND entity_id = $1`, id); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO stripe_sync_log (entity_type, entity_id, action, status, error_message, job_id, attempt)
				VALUES ('org', $1, 'sync', 'success', $2, $3, $4)`,
				id, fmt.Sprintf("enqueued %d events and tickets", len(entities)), job.ID, job.Attempt); err != nil {
				return err
			}
			if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
				return err
			}
			done = true
			return nil
		})
		if err != nil || done {
			return err
		}
		if round >= maxRoundsPerAttempt {
			if snoozes(job.Metadata) >= MaxSnoozes {
				return fmt.Errorf("organisation %s changed during %d consecutive fan-outs; retrying with backoff", id, MaxSnoozes)
			}
			return river.JobSnooze(0)
		}
	}
}

// catalogue lists the organisation's events and tickets.
func (w *OrgWorker) catalogue(ctx context.Context, id string) ([]outbox.Entity, error) {
	rows, err := w.deps.Pool.Query(ctx, `
		SELECT 'event', e.event_id::text FROM events e WHERE e.organisation_id = $1
		UNION ALL
		SELECT 'ticket', t.id::text FROM event_tickets t JOIN events e USING (event_id) WHERE e.organisation_id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("list organisation %s: %w", id, err)
	}
	entities, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outbox.Entity, error) {
		var e outbox.Entity
		var kind string
		err := row.Scan(&kind, &e.ID)
		e.Kind = outbox.Kind(kind)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("list organisation %s: %w", id, err)
	}
	return entities, nil
}

// NextRetry caps the backoff as EventWorker's does.
func (w *OrgWorker) NextRetry(job *river.Job[outbox.OrgArgs]) time.Time {
	return nextRetry(job.Attempt)
}
