package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
)

// JobEntity returns the entity a sync job names, read from its kind and
// encoded args. ok is false for a job of a kind outbox does not own, or
// whose args lack the kind's id.
func JobEntity(jobKind string, encodedArgs []byte) (e Entity, ok bool) {
	for _, k := range Kinds {
		if jobKind != k.JobKind() {
			continue
		}
		var args map[string]any
		if err := json.Unmarshal(encodedArgs, &args); err != nil {
			return Entity{}, false
		}
		id, _ := args[argsIDField(k)].(string)
		return Entity{Kind: k, ID: id}, id != ""
	}
	return Entity{}, false
}

// argsIDField is the JSON field of k's args that holds the entity id.
func argsIDField(k Kind) string {
	switch k {
	case KindEvent:
		return "event_id"
	case KindTicket:
		return "ticket_id"
	case KindOrg:
		return "organisation_id"
	}
	panic(fmt.Sprintf("outbox: unknown kind %q", string(k)))
}

// DefaultFailedLimit is FailedFilter.Limit's default.
const DefaultFailedLimit = 100

// FailedFilter selects the jobs FailedJobs returns. The zero value selects
// every discarded sync job.
type FailedFilter struct {
	// Kind keeps jobs of one entity kind. Defaults to every Kind.
	Kind Kind
	// Since keeps jobs that failed at or after it. Defaults to any time.
	Since time.Time
	// EntityID keeps jobs about this entity, in ParseID's canonical form.
	// Defaults to every entity.
	EntityID string
	// Limit caps how many jobs are returned. Defaults to DefaultFailedLimit.
	Limit int
	// IncludeCancelled adds cancelled jobs (a permanent error, or an
	// operator's `jobs cancel`) to discarded ones (out of attempts).
	// Defaults to discarded only.
	IncludeCancelled bool
}

// FailedJob is a sync job that ended without syncing its entity.
type FailedJob struct {
	JobID  int64
	Entity Entity
	// State is rivertype.JobStateDiscarded or, with
	// FailedFilter.IncludeCancelled, rivertype.JobStateCancelled.
	State       rivertype.JobState
	Attempt     int
	MaxAttempts int
	FinalizedAt time.Time
	// LastError is the error of the job's latest attempt; empty if it
	// recorded none (a job cancelled before it ran).
	LastError string
}

// FailedJobs returns, newest failure first, the failed sync jobs that a
// retry would bring an entity back in step with: for each entity, its latest
// failed job, and only while no other job for the entity is waiting or
// running, or completed after it. Those entities need nothing: the other job
// syncs (or synced) the entity's current row, since jobs name an entity
// rather than a change; and retrying next to a waiting job would collide
// with it on River's unique index.
//
// It only reads; run it in the transaction that retries the jobs (River's
// JobRetryTx), so the selection and the retries commit together.
func FailedJobs(ctx context.Context, tx pgx.Tx, filter FailedFilter) ([]FailedJob, error) {
	kinds := Kinds
	if filter.Kind != "" {
		kinds = []Kind{filter.Kind}
	}
	jobKinds := make([]string, len(kinds))
	var entityArgs []string
	for i, k := range kinds {
		jobKinds[i] = k.JobKind()
		if filter.EntityID != "" {
			b, err := json.Marshal(map[string]string{argsIDField(k): filter.EntityID})
			if err != nil {
				return nil, fmt.Errorf("encode entity args: %w", err)
			}
			entityArgs = append(entityArgs, string(b))
		}
	}
	states := []string{string(rivertype.JobStateDiscarded)}
	if filter.IncludeCancelled {
		states = append(states, string(rivertype.JobStateCancelled))
	}
	waiting := make([]string, len(UniqueStates))
	for i, s := range UniqueStates {
		waiting[i] = string(s)
	}
	var since *time.Time
	if !filter.Since.IsZero() {
		since = &filter.Since
	}
	limit := filter.Limit
	if limit <= 0 {
		limit = DefaultFailedLimit
	}

	// "n.args @> f.args" besides "=" lets the planner use River's GIN index
	// on args.
	rows, err := tx.Query(ctx, `
		SELECT f.id, f.kind, f.args, f.state, f.attempt, f.max_attempts, f.finalized_at,
			coalesce(f.errors[cardinality(f.errors)]->>'error', '')
		FROM (
			SELECT DISTINCT ON (j.kind, j.args) j.*
			FROM river_job j
			WHERE j.kind = ANY($1::text[])
			  AND j.state = ANY($2::river_job_state[])
			  AND ($3::timestamptz IS NULL OR j.finalized_at >= $3)
			  AND ($4::jsonb[] IS NULL OR j.args @> ANY($4::jsonb[]))
			ORDER BY j.kind, j.args, j.finalized_at DESC, j.id DESC
		) f
		WHERE NOT EXISTS (
			SELECT 1 FROM river_job n
			WHERE n.kind = f.kind AND n.args @> f.args AND n.args = f.args AND n.id <> f.id
			  AND (n.state = ANY($5::river_job_state[]) OR (n.state = 'completed' AND n.id > f.id))
		)
		ORDER BY f.finalized_at DESC, f.id DESC
		LIMIT $6`,
		jobKinds, states, since, entityArgs, waiting, limit)
	if err != nil {
		return nil, fmt.Errorf("select failed jobs: %w", err)
	}
	defer rows.Close()

	var jobs []FailedJob
	for rows.Next() {
		var (
			j     FailedJob
			kind  string
			args  []byte
			state string
		)
		if err := rows.Scan(&j.JobID, &kind, &args, &state, &j.Attempt, &j.MaxAttempts, &j.FinalizedAt, &j.LastError); err != nil {
			return nil, fmt.Errorf("scan failed job: %w", err)
		}
		j.State = rivertype.JobState(state)
		j.Entity, _ = JobEntity(kind, args)
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("select failed jobs: %w", err)
	}
	return jobs, nil
}
