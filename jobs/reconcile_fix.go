package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// FixResult counts what Fix did.
type FixResult struct {
	// Enqueued counts new sync jobs; Deduplicated counts entities whose job
	// was already waiting.
	Enqueued     int
	Deduplicated int
	// Archived counts extra objects Fix archived itself.
	Archived int
	// Skipped counts findings Fix cannot repair: invalid rows, which need
	// the row fixed.
	Skipped int
}

// Fix repairs findings. A missing or drifted object is the job's to fix: Fix
// marks the entity in doubt (stripe_sync_state.in_doubt), so its job does not
// take Stripe for in step but reconciles from Stripe's side, and enqueues
// the job through outbox.Enqueue, in the same transaction (batches of
// bulkBatch, see enqueueBulk). An extra object (and a ticket's second
// active Price) is archived here, under the entity's lock, unless by then
// the sync records it as the entity's object, in which case the entity's
// job is enqueued instead. Extras are archived before any job is enqueued,
// so a job never adopts one through its lookup key.
//
// client may be an insert-only River client: a worker runs the jobs.
// Archives committed before an error stay done.
func (r *Reconciler) Fix(ctx context.Context, client *river.Client[pgx.Tx], findings []Finding) (FixResult, error) {
	var res FixResult
	var requeue []outbox.Entity
	for _, f := range findings {
		switch f.Problem {
		case ProblemMissing, ProblemDrift:
			requeue = append(requeue, outbox.Entity{Kind: f.Kind, ID: f.EntityID})
		case ProblemExtra, ProblemMultipleActive:
			archived, err := r.archiveExtra(ctx, f)
			if err != nil {
				return res, err
			}
			if archived {
				res.Archived++
			} else {
				requeue = append(requeue, outbox.Entity{Kind: f.Kind, ID: f.EntityID})
			}
		default:
			res.Skipped++
		}
	}
	if len(requeue) == 0 {
		return res, nil
	}
	// enqueueBulk marks each entity in doubt, so its job compares with
	// Stripe instead of trusting what it last pushed, and never waits on a
	// lock while holding one, so the host's transactions cannot deadlock
	// with it.
	results, err := enqueueBulk(ctx, r.Pool, client, requeue, true)
	for _, result := range results {
		if result.Duplicate {
			res.Deduplicated++
		} else {
			res.Enqueued++
		}
	}
	if err != nil {
		return res, fmt.Errorf("enqueue repairs: %w", err)
	}
	return res, nil
}

// archiveExtra archives an extra object under its entity's lock, so no job
// of the entity is writing meanwhile, unless the sync records the object as
// the entity's by then (archived is false: the entity's job must decide).
func (r *Reconciler) archiveExtra(ctx context.Context, f Finding) (bool, error) {
	archived := false
	err := pgx.BeginFunc(ctx, r.Pool, func(tx pgx.Tx) error {
		if id, err := outbox.ParseID(f.EntityID); err == nil {
			if err := lock(ctx, tx, f.Kind, id); err != nil {
				return err
			}
			var recorded bool
			if err := tx.QueryRow(ctx, `
				SELECT EXISTS (SELECT 1 FROM stripe_sync_state
					WHERE entity_type = $1 AND entity_id = $2 AND connected_account_id = $3 AND stripe_object_id = $4
					  AND fingerprint IS DISTINCT FROM $5)`,
				string(f.Kind), id, f.Account, f.ObjectID, fingerprintArchived).Scan(&recorded); err != nil {
				return fmt.Errorf("read %s %s: %w", f.Kind, id, err)
			}
			if recorded {
				return nil
			}
		}
		// No idempotency key: archiving is idempotent, and a replayed
		// answer would hide an object re-activated since.
		call := stripeclient.Call{Account: f.Account}
		var err error
		if f.Kind == outbox.KindEvent {
			_, err = r.Stripe.ArchiveProduct(ctx, call, f.ObjectID)
		} else {
			_, err = r.Stripe.ArchivePrice(ctx, call, f.ObjectID)
		}
		if err != nil && !stripeclient.IsClass(err, stripeclient.ClassNotFound) {
			return fmt.Errorf("archive %s: %w", f.ObjectID, err)
		}
		archived = true
		return nil
	})
	return archived, err
}
