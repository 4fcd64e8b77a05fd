package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// Entity names one thing to sync.
type Entity struct {
	Kind Kind
	// ID is the entity's UUID in canonical form (see ParseID).
	ID string
}

// Result is what Enqueue did for one entity.
type Result struct {
	Entity Entity
	JobID  int64
	// Duplicate is true when a job for the entity was already waiting or
	// running, and this enqueue collapsed into it.
	Duplicate bool
}

// Enqueue inserts one sync job per entity inside tx, in the live lane
// (PriorityLive), through River's own client (so River computes the unique
// keys), after recording the change the way the triggers do
// (stripe_sync_touch_many: one statement for the whole set), so a job
// already running for an entity re-runs instead of missing it. Nothing is
// visible until tx commits; a rollback leaves no job.
//
// An entity whose job already waits in the bulk lane keeps that one job,
// lifted to the live lane (Duplicate is true). Repeated entities are enqueued
// once; results follow the first occurrence of each. client may be an
// insert-only River client (no workers). Returns an *InvalidIDError, before
// writing anything, if an id is not a UUID.
func Enqueue(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, entities ...Entity) ([]Result, error) {
	return enqueue(ctx, client, tx, PriorityLive, entities)
}

// EnqueueBulk is Enqueue in the bulk lane (PriorityBulk), for work that
// must not hold up live changes: backfill, reconcile --fix, an
// organisation's account move, resync. An entity whose job already waits
// keeps it in whatever lane it is: a bulk enqueue never lowers a live job.
func EnqueueBulk(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, entities ...Entity) ([]Result, error) {
	return enqueue(ctx, client, tx, PriorityBulk, entities)
}

func enqueue(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, priority int, entities []Entity) ([]Result, error) {
	unique, err := canonical(entities)
	if err != nil || len(unique) == 0 {
		return nil, err
	}
	params := make([]river.InsertManyParams, len(unique))
	types := make([]string, len(unique))
	ids := make([]string, len(unique))
	opts := insertOpts()
	opts.Priority = priority
	for i, e := range unique {
		params[i] = river.InsertManyParams{Args: e.Kind.Args(e.ID), InsertOpts: &opts}
		types[i] = string(e.Kind)
		ids[i] = e.ID
	}

	if _, err := tx.Exec(ctx, `SELECT stripe_sync_touch_many($1::text[], $2::uuid[])`, types, ids); err != nil {
		return nil, fmt.Errorf("record change: %w", err)
	}
	inserted, err := client.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, fmt.Errorf("insert jobs: %w", err)
	}

	results := make([]Result, len(unique))
	var lift []int64
	for i, res := range inserted {
		results[i] = Result{Entity: unique[i], JobID: res.Job.ID, Duplicate: res.UniqueSkippedAsDuplicate}
		if res.UniqueSkippedAsDuplicate && res.Job.Priority > priority {
			lift = append(lift, res.Job.ID)
		}
	}
	if len(lift) > 0 {
		if err := liftTx(ctx, tx, priority, lift); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// liftTx moves the waiting jobs among ids up to priority. A job that started
// meanwhile is left alone: it is reading the entity's current row anyway.
func liftTx(ctx context.Context, tx pgx.Tx, priority int, ids []int64) error {
	_, err := tx.Exec(ctx, `
		UPDATE river_job SET priority = $1
		WHERE id = ANY($2::bigint[]) AND priority > $1
		  AND state IN ('available', 'scheduled', 'retryable', 'pending')`, priority, ids)
	if err != nil {
		return fmt.Errorf("lift jobs to priority %d: %w", priority, err)
	}
	return nil
}

// canonical parses every id and drops repeats: one statement cannot insert
// the same unique job twice.
func canonical(entities []Entity) ([]Entity, error) {
	seen := make(map[Entity]bool, len(entities))
	unique := make([]Entity, 0, len(entities))
	for _, e := range entities {
		id, err := ParseID(e.ID)
		if err != nil {
			return nil, err
		}
		e.ID = id
		if !seen[e] {
			seen[e] = true
			unique = append(unique, e)
		}
	}
	return unique, nil
}
