package outbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/rivertype"
)

// Querier runs the read queries of this package: a *pgxpool.Pool, a
// *pgx.Conn or a pgx.Tx. The connection must find the sync schema first on
// its search_path, as every connection of stripe-sync's does.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// JobCount is how many sync jobs of one Kind are in one state and lane.
type JobCount struct {
	Kind  Kind
	State rivertype.JobState
	// Lane is "live" or "bulk" (see Lane).
	Lane  string
	Count int
}

// CountJobs returns the sync jobs by Kind, state and lane, in Kinds order,
// then River's order of states, then the live lane first, leaving out
// combinations with no job. Jobs of other
// kinds on Queue (the worker's periodic resync and prune) are not counted.
func CountJobs(ctx context.Context, q Querier) ([]JobCount, error) {
	rows, err := q.Query(ctx, `
		SELECT kind, state::text, priority > $2, count(*) FROM river_job WHERE kind = ANY($1) GROUP BY 1, 2, 3`,
		JobKinds(Kinds...), PriorityLive)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	counts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (JobCount, error) {
		var (
			c           JobCount
			kind, state string
			bulk        bool
		)
		if err := row.Scan(&kind, &state, &bulk, &c.Count); err != nil {
			return c, err
		}
		c.Lane = Lane(PriorityLive)
		if bulk {
			c.Lane = Lane(PriorityBulk)
		}
		c.Kind, err = ParseKind(kind)
		c.State = rivertype.JobState(state)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	stateRank := func(s rivertype.JobState) int { return slices.Index(rivertype.JobStates(), s) }
	slices.SortFunc(counts, func(a, b JobCount) int {
		if c := slices.Index(Kinds, a.Kind) - slices.Index(Kinds, b.Kind); c != 0 {
			return c
		}
		if c := stateRank(a.State) - stateRank(b.State); c != 0 {
			return c
		}
		return strings.Compare(b.Lane, a.Lane) // live before bulk
	})
	return counts, nil
}

// QueueSummary is every job on Queue at one moment: the sync jobs and the
// worker's periodic ones, whichever worker process enqueued or runs them.
type QueueSummary struct {
	// ByState counts the jobs in each state; every state River knows is
	// present, zero when no job is in it.
	ByState map[rivertype.JobState]int
	// OldestReady is how long the job ready to run longest has waited for
	// a worker, by the database's clock; 0 when none waits. Ready means
	// available, or scheduled or retryable with its time come: River's
	// scheduler promotes those every few seconds, so they wait all the same.
	OldestReady time.Duration
}

// SummarizeQueue returns the QueueSummary of Queue now.
func SummarizeQueue(ctx context.Context, q Querier) (QueueSummary, error) {
	rows, err := q.Query(ctx, `
		SELECT state::text, count(*),
		       coalesce(extract(epoch FROM now() - min(scheduled_at) FILTER (
		           WHERE state IN ('available', 'scheduled', 'retryable') AND scheduled_at <= now())), 0)::float8
		FROM river_job WHERE queue = $1 GROUP BY state`, Queue)
	if err != nil {
		return QueueSummary{}, fmt.Errorf("summarize queue: %w", err)
	}
	s := QueueSummary{ByState: make(map[rivertype.JobState]int, len(rivertype.JobStates()))}
	for _, state := range rivertype.JobStates() {
		s.ByState[state] = 0
	}
	var (
		state string
		n     int
		age   float64
	)
	_, err = pgx.ForEachRow(rows, []any{&state, &n, &age}, func() error {
		s.ByState[rivertype.JobState(state)] = n
		s.OldestReady = max(s.OldestReady, time.Duration(age*float64(time.Second)))
		return nil
	})
	if err != nil {
		return QueueSummary{}, fmt.Errorf("summarize queue: %w", err)
	}
	return s, nil
}

// WaitingJob is a sync job ready to run that no worker has taken yet.
type WaitingJob struct {
	JobID  int64
	Entity Entity
	// ReadySince is when the job became ready to run.
	ReadySince time.Time
}

// OldestWaiting returns the available sync job that has been ready longest
// as of now, or nil if none is.
func OldestWaiting(ctx context.Context, q Querier, now time.Time) (*WaitingJob, error) {
	var (
		w    WaitingJob
		kind string
		args []byte
	)
	err := q.QueryRow(ctx, `
		SELECT id, kind, args, scheduled_at FROM river_job
		WHERE kind = ANY($1) AND state = 'available' AND scheduled_at <= $2
		ORDER BY scheduled_at, id
		LIMIT 1`, JobKinds(Kinds...), now).Scan(&w.JobID, &kind, &args, &w.ReadySince)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find oldest waiting job: %w", err)
	}
	w.Entity, _ = JobEntity(kind, args)
	w.ReadySince = w.ReadySince.UTC()
	return &w, nil
}

// AttemptError is one error a sync job's attempt recorded in River's job
// row.
type AttemptError struct {
	JobID  int64
	Entity Entity
	At     time.Time
	Error  string
}

// LatestAttemptErrors returns each Kind's newest attempt error among the
// sync jobs River still holds (completed and failed jobs go after River's
// retention), keyed by Kind; a Kind with none is absent. These include
// failures that never reached the sync log, such as a lost database
// connection.
func LatestAttemptErrors(ctx context.Context, q Querier) (map[Kind]AttemptError, error) {
	rows, err := q.Query(ctx, `
		SELECT DISTINCT ON (j.kind) j.kind, j.id, j.args, (e->>'at')::timestamptz AS at, e->>'error'
		FROM river_job j CROSS JOIN LATERAL unnest(j.errors) AS e
		WHERE j.kind = ANY($1)
		ORDER BY j.kind, at DESC, j.id DESC`, JobKinds(Kinds...))
	if err != nil {
		return nil, fmt.Errorf("read attempt errors: %w", err)
	}
	latest := map[Kind]AttemptError{}
	var (
		e    AttemptError
		kind string
		args []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&kind, &e.JobID, &args, &e.At, &e.Error}, func() error {
		e.Entity, _ = JobEntity(kind, args)
		e.At = e.At.UTC()
		latest[e.Entity.Kind] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read attempt errors: %w", err)
	}
	return latest, nil
}

// Leader is the River client holding the leader's lease on the sync
// schema's River tables. The leader runs River's maintenance (rescuing stuck
// jobs, periodic jobs); any started River client on these tables may hold
// it, so a live lease does not prove that a syncctl worker runs: Workers
// does.
type Leader struct {
	ID        string
	ElectedAt time.Time
	ExpiresAt time.Time
}

// RiverLeader returns the latest leader, whether its lease is current or
// not, or nil if none was ever elected (or the last one resigned).
func RiverLeader(ctx context.Context, q Querier) (*Leader, error) {
	var l Leader
	err := q.QueryRow(ctx, `SELECT leader_id, elected_at, expires_at FROM river_leader`).Scan(&l.ID, &l.ElectedAt, &l.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read river leader: %w", err)
	}
	l.ElectedAt, l.ExpiresAt = l.ElectedAt.UTC(), l.ExpiresAt.UTC()
	return &l, nil
}
