package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
)

// ResyncArgs is the periodic job that re-enqueues entities whose latest
// committed change no job has handled.
type ResyncArgs struct{}

func (ResyncArgs) Kind() string { return "stripe_sync_resync" }

func (ResyncArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       outbox.Queue,
		MaxAttempts: 3,
		UniqueOpts:  river.UniqueOpts{ByState: outbox.UniqueStates},
	}
}

// ResyncWorker catches the one change a job's end can miss: a change that
// commits after a failing job's last transaction but before River finalises
// the job (cancelled or discarded, asynchronously, after Work returns)
// collapses into that still-running job and is never seen. Such an entity
// has wanted_version past handled_version, no waiting job, and a last job
// that started before the change; this re-enqueues it. Successful jobs never
// need it: they complete in the transaction that checks the version.
//
// A job an operator cancelled, or one River discarded without our code
// recording it (a timeout), started after the entity's last change, so it is
// left alone: retry-failed is the way back for those.
type ResyncWorker struct {
	river.WorkerDefaults[ResyncArgs]
	deps *Deps
}

// Work enqueues every unhandled entity; River's uniqueness drops those whose
// job is still waiting or running.
func (w *ResyncWorker) Work(ctx context.Context, job *river.Job[ResyncArgs]) error {
	// The kinds, their job kinds and the args key holding the id come from
	// outbox's contract, so this query cannot drift from what Enqueue writes.
	entityTypes := make([]string, len(outbox.Kinds))
	for i, k := range outbox.Kinds {
		entityTypes[i] = string(k)
	}
	rows, err := w.deps.Pool.Query(ctx, `
		SELECT s.entity_type, s.entity_id::text
		FROM stripe_sync_state s
		JOIN unnest($1::text[], $2::text[], $3::text[]) AS c(entity_type, job_kind, id_field)
		  ON c.entity_type = s.entity_type
		CROSS JOIN LATERAL (
			SELECT j.state, j.attempted_at FROM river_job j
			WHERE j.kind = c.job_kind
			  AND j.args @> jsonb_build_object(c.id_field, s.entity_id::text)
			ORDER BY j.id DESC LIMIT 1
		) last
		WHERE s.wanted_version > s.handled_version
		  AND last.state IN ('cancelled', 'discarded', 'completed')
		  AND last.attempted_at < s.wanted_at
		LIMIT 10000`, entityTypes, outbox.JobKinds(outbox.Kinds...), outbox.IDFields(outbox.Kinds...))
	if err != nil {
		return fmt.Errorf("find unhandled entities: %w", err)
	}
	var params []river.InsertManyParams
	bulkOpts := outbox.EventArgs{}.InsertOpts()
	bulkOpts.Priority = outbox.PriorityBulk
	for rows.Next() {
		var kind, id string
		if err := rows.Scan(&kind, &id); err != nil {
			rows.Close()
			return err
		}
		k, err := outbox.ParseKind(kind)
		if err != nil {
			continue
		}
		// The bulk lane: a repair must not hold up live edits. A live change
		// to the entity lifts the job (see outbox.PriorityBulk).
		params = append(params, river.InsertManyParams{Args: k.Args(id), InsertOpts: &bulkOpts})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(params) == 0 {
		return nil
	}
	client := river.ClientFromContext[pgx.Tx](ctx)
	results, err := client.InsertMany(ctx, params)
	if err != nil {
		return fmt.Errorf("re-enqueue: %w", err)
	}
	fresh := 0
	for _, r := range results {
		if !r.UniqueSkippedAsDuplicate {
			fresh++
		}
	}
	if fresh > 0 {
		w.deps.Logger.Info("resync re-enqueued entities whose last change no job handled", "count", fresh)
	}
	return nil
}
