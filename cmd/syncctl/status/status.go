// Package status is `syncctl status`: is the sync running, and is it
// healthy.
package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// errorWidth is how much of an error a terminal shows.
const errorWidth = 70

// Options are status's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	JSON    bool
}

// NewCmdStatus returns the command; runF replaces the run in tests.
func NewCmdStatus(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Is a worker alive, how deep is the queue, and how healthy was the last day's sync",
		Long: `Reports whether any worker is alive (a River leader holds a lease), the queue
depth by kind and state, how long the oldest ready job has waited, the last 24
hours of sync outcomes per entity type, the latest error per kind, and Stripe
401/403 failures in the last 24 hours, which mean a bad STRIPE_SECRET_KEY or an
organisation whose connected account no longer lets us in.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return statusRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Status is the report; its JSON names are part of the interface.
type Status struct {
	Worker        Worker       `json:"worker"`
	Queue         []QueueDepth `json:"queue"`
	OldestWaiting *Waiting     `json:"oldest_waiting"`
	Health        []Health     `json:"health"`
	LatestErrors  []JobError   `json:"latest_errors"`
	AuthFailures  AuthFailures `json:"auth_failures_24h"`
}

// Worker says whether any worker process is alive: River elects one
// leader among its running clients, and the leader renews a lease in
// river_leader while it lives.
type Worker struct {
	Alive bool `json:"alive"`
	// LeaderID, ElectedAt and ExpiresAt describe the latest leader, alive
	// or not; null if none was ever elected.
	LeaderID  *string    `json:"leader_id"`
	ElectedAt *time.Time `json:"elected_at"`
	ExpiresAt *time.Time `json:"expires_at"`
}

// QueueDepth counts the sync jobs of one kind in one state and lane.
type QueueDepth struct {
	Kind  string `json:"kind"`
	State string `json:"state"`
	// Lane is "live" (host changes, enqueue) or "bulk" (backfill,
	// reconcile --fix, account moves, resync): see outbox.Lane.
	Lane  string `json:"lane"`
	Count int    `json:"count"`
}

// Waiting is the job that has been ready to run the longest.
type Waiting struct {
	JobID    int64  `json:"job_id"`
	Kind     string `json:"kind"`
	EntityID string `json:"entity_id"`
	// ReadySince is when the job became ready to run.
	ReadySince time.Time `json:"ready_since"`
	AgeSeconds int64     `json:"age_seconds"`
}

// Health is one entity type's sync log over the last 24 hours.
type Health struct {
	EntityType string     `json:"entity_type"`
	Success    int        `json:"success"`
	Failed     int        `json:"failed"`
	Skipped    int        `json:"skipped"`
	LastSync   *time.Time `json:"last_sync"`
}

// JobError is a kind's most recent error, from a job's attempts or from the
// sync log, whichever is newer.
type JobError struct {
	Kind     string    `json:"kind"`
	At       time.Time `json:"at"`
	JobID    *int64    `json:"job_id"`
	EntityID string    `json:"entity_id"`
	Error    string    `json:"error"`
	// Source is "river_job" or "stripe_sync_log".
	Source string `json:"source"`
}

// AuthFailures counts sync attempts Stripe refused with 401 or 403.
type AuthFailures struct {
	Count       int        `json:"count"`
	LatestAt    *time.Time `json:"latest_at"`
	LatestError *string    `json:"latest_error"`
}

func statusRun(ctx context.Context, opts *Options) error {
	pool, err := opts.Factory.Pool(ctx, "syncctl status")
	if err != nil {
		return err
	}
	now := opts.Factory.Clock()
	st, err := gather(ctx, pool, now)
	if err != nil {
		return err
	}

	out := opts.Factory.IO
	if !st.Worker.Alive {
		fmt.Fprintln(out.ErrOut, "syncctl: warning: NO WORKER ALIVE: sync jobs are not being worked; start `syncctl worker`")
	}
	if st.AuthFailures.Count > 0 {
		fmt.Fprintf(out.ErrOut, "syncctl: warning: Stripe refused %d sync attempts with 401/403 in the last 24 h; check STRIPE_SECRET_KEY and the organisations' connected accounts\n",
			st.AuthFailures.Count)
	}
	if opts.JSON {
		return cmdutil.WriteJSON(out.Out, st)
	}
	return write(out, st, now)
}

func gather(ctx context.Context, pool *pgxpool.Pool, now time.Time) (*Status, error) {
	jobKinds := make([]string, len(outbox.Kinds))
	for i, k := range outbox.Kinds {
		jobKinds[i] = k.JobKind()
	}
	st := &Status{Queue: []QueueDepth{}, Health: []Health{}, LatestErrors: []JobError{}}
	steps := []struct {
		what string
		run  func() error
	}{
		{"read worker leader", func() error { return worker(ctx, pool, now, &st.Worker) }},
		{"read queue depth", func() error { return queue(ctx, pool, jobKinds, &st.Queue) }},
		{"read oldest waiting job", func() error { return oldest(ctx, pool, jobKinds, now, &st.OldestWaiting) }},
		{"read sync health", func() error { return health(ctx, pool, &st.Health) }},
		{"read latest errors", func() error { return latestErrors(ctx, pool, jobKinds, &st.LatestErrors) }},
		{"read auth failures", func() error { return authFailures(ctx, pool, now, &st.AuthFailures) }},
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return st, nil
}

func worker(ctx context.Context, pool *pgxpool.Pool, now time.Time, w *Worker) error {
	var id string
	var elected, expires time.Time
	err := pool.QueryRow(ctx, `SELECT leader_id, elected_at, expires_at FROM river_leader`).Scan(&id, &elected, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	elected, expires = elected.UTC(), expires.UTC()
	*w = Worker{Alive: expires.After(now), LeaderID: &id, ElectedAt: &elected, ExpiresAt: &expires}
	return nil
}

func queue(ctx context.Context, pool *pgxpool.Pool, jobKinds []string, out *[]QueueDepth) error {
	rows, err := pool.Query(ctx, `
		SELECT kind, state::text, priority > $2 AS bulk, count(*) FROM river_job WHERE kind = ANY($1) GROUP BY 1, 2, 3`,
		jobKinds, outbox.PriorityLive)
	if err != nil {
		return err
	}
	depths, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (QueueDepth, error) {
		var d QueueDepth
		var bulk bool
		err := row.Scan(&d.Kind, &d.State, &bulk, &d.Count)
		d.Lane = outbox.Lane(outbox.PriorityLive)
		if bulk {
			d.Lane = outbox.Lane(outbox.PriorityBulk)
		}
		return d, err
	})
	if err != nil {
		return err
	}
	for i := range depths {
		if k, err := outbox.ParseKind(depths[i].Kind); err == nil {
			depths[i].Kind = string(k)
		}
	}
	kindRank := func(k string) int { return slices.Index(outbox.Kinds, outbox.Kind(k)) }
	stateRank := func(s string) int { return slices.Index(rivertype.JobStates(), rivertype.JobState(s)) }
	slices.SortFunc(depths, func(a, b QueueDepth) int {
		if c := kindRank(a.Kind) - kindRank(b.Kind); c != 0 {
			return c
		}
		if c := stateRank(a.State) - stateRank(b.State); c != 0 {
			return c
		}
		return strings.Compare(b.Lane, a.Lane) // live before bulk
	})
	*out = append(*out, depths...)
	return nil
}

func oldest(ctx context.Context, pool *pgxpool.Pool, jobKinds []string, now time.Time, out **Waiting) error {
	var (
		w     Waiting
		kind  string
		args  []byte
		ready time.Time
	)
	err := pool.QueryRow(ctx, `
		SELECT id, kind, args, scheduled_at FROM river_job
		WHERE kind = ANY($1) AND state = 'available' AND scheduled_at <= $2
		ORDER BY scheduled_at, id
		LIMIT 1`, jobKinds, now).Scan(&w.JobID, &kind, &args, &ready)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	e, _ := outbox.JobEntity(kind, args)
	w.Kind, w.EntityID = string(e.Kind), e.ID
	w.ReadySince = ready.UTC()
	w.AgeSeconds = int64(now.Sub(ready) / time.Second)
	*out = &w
	return nil
}

func health(ctx context.Context, pool *pgxpool.Pool, out *[]Health) error {
	types := make([]string, len(outbox.Kinds))
	for i, k := range outbox.Kinds {
		types[i] = string(k)
	}
	// Every entity type gets a row, so "no failures" reads as zero rather
	// than as a missing line.
	rows, err := pool.Query(ctx, `
		SELECT t.entity_type, coalesce(h.success_24h, 0), coalesce(h.failed_24h, 0), coalesce(h.skipped_24h, 0), h.last_sync
		FROM unnest($1::text[]) WITH ORDINALITY AS t(entity_type, n)
		LEFT JOIN stripe_sync_health h ON h.entity_type = t.entity_type
		ORDER BY t.n`, types)
	if err != nil {
		return err
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Health, error) {
		var h Health
		err := row.Scan(&h.EntityType, &h.Success, &h.Failed, &h.Skipped, &h.LastSync)
		if h.LastSync != nil {
			*h.LastSync = h.LastSync.UTC()
		}
		return h, err
	})
	if err != nil {
		return err
	}
	*out = append(*out, hs...)
	return nil
}

// latestErrors takes each kind's newest error from River's attempt errors
// (which include failures that never reached the sync log, such as a lost
// database connection) and from the sync log's failed rows (which outlive
// River's job retention).
func latestErrors(ctx context.Context, pool *pgxpool.Pool, jobKinds []string, out *[]JobError) error {
	rows, err := pool.Query(ctx, `
		SELECT DISTINCT ON (j.kind) j.kind, j.id, j.args, (e->>'at')::timestamptz AS at, e->>'error'
		FROM river_job j CROSS JOIN LATERAL unnest(j.errors) AS e
		WHERE j.kind = ANY($1)
		ORDER BY j.kind, at DESC, j.id DESC`, jobKinds)
	if err != nil {
		return err
	}
	latest := map[outbox.Kind]JobError{}
	var (
		kind, msg string
		id        int64
		args      []byte
		at        time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&kind, &id, &args, &at, &msg}, func() error {
		e, _ := outbox.JobEntity(kind, args)
		jobID := id
		latest[e.Kind] = JobError{Kind: string(e.Kind), At: at.UTC(), JobID: &jobID, EntityID: e.ID, Error: msg, Source: "river_job"}
		return nil
	})
	if err != nil {
		return err
	}

	for _, k := range outbox.Kinds {
		var (
			jobID    *int64
			entityID string
			logMsg   *string
		)
		err := pool.QueryRow(ctx, `
			SELECT created_at, job_id, entity_id::text, error_message FROM stripe_sync_log
			WHERE status = 'failed' AND entity_type = $1
			ORDER BY created_at DESC
			LIMIT 1`, string(k)).Scan(&at, &jobID, &entityID, &logMsg)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return err
		}
		// The worker logs the error it returns to River, so both usually
		// hold the same failure: River's copy wins a tie.
		if prev, ok := latest[k]; !ok || at.After(prev.At) {
			latest[k] = JobError{Kind: string(k), At: at.UTC(), JobID: jobID, EntityID: entityID, Error: deref(logMsg), Source: "stripe_sync_log"}
		}
	}
	for _, k := range outbox.Kinds {
		if e, ok := latest[k]; ok {
			*out = append(*out, e)
		}
	}
	return nil
}

// authFailures counts failed sync attempts whose Stripe error has status 401
// or 403: stripeclient writes them as "stripe <op>: 401: ..." or
// "stripe <op>: 403 <code>: ...".
func authFailures(ctx context.Context, pool *pgxpool.Pool, now time.Time, out *AuthFailures) error {
	var at time.Time
	var msg *string
	err := pool.QueryRow(ctx, `
		SELECT count(*) OVER (), created_at, error_message FROM stripe_sync_log
		WHERE status = 'failed' AND created_at > $1::timestamptz - interval '24 hours'
		  AND error_message ~ ': 40[13][ :]'
		ORDER BY created_at DESC
		LIMIT 1`, now).Scan(&out.Count, &at, &msg)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	at = at.UTC()
	out.LatestAt, out.LatestError = &at, msg
	return nil
}

func write(out *cmdutil.IOStreams, st *Status, now time.Time) error {
	kv := tabwriter.NewWriter(out.Out, 0, 4, 2, ' ', 0)
	w := st.Worker
	switch {
	case w.Alive:
		fmt.Fprintf(kv, "Worker:\talive (River leader %s, elected %s, lease expires %s)\n",
			*w.LeaderID, out.When(w.ElectedAt, now), out.When(w.ExpiresAt, now))
	case w.LeaderID != nil:
		fmt.Fprintf(kv, "Worker:\tNO WORKER ALIVE (last River leader %s, lease expired %s)\n",
			*w.LeaderID, out.When(w.ExpiresAt, now))
	default:
		fmt.Fprintf(kv, "Worker:\tNO WORKER ALIVE (no River leader was ever elected)\n")
	}
	if o := st.OldestWaiting; o != nil {
		fmt.Fprintf(kv, "Oldest waiting:\tjob %d (%s %s), ready for %s\n",
			o.JobID, o.Kind, o.EntityID, cmdutil.Age(time.Duration(o.AgeSeconds)*time.Second))
	} else {
		fmt.Fprintf(kv, "Oldest waiting:\tnone\n")
	}
	if a := st.AuthFailures; a.Count > 0 {
		fmt.Fprintf(kv, "Auth failures (24 h):\t%d, latest %s: %s\n", a.Count, out.When(a.LatestAt, now), out.Cell(deref(a.LatestError), errorWidth))
	} else {
		fmt.Fprintf(kv, "Auth failures (24 h):\tnone\n")
	}
	if err := kv.Flush(); err != nil {
		return err
	}

	queue := make([][]string, len(st.Queue))
	for i, d := range st.Queue {
		queue[i] = []string{d.Kind, d.State, d.Lane, strconv.Itoa(d.Count)}
	}
	health := make([][]string, len(st.Health))
	for i, h := range st.Health {
		health[i] = []string{h.EntityType, strconv.Itoa(h.Success), strconv.Itoa(h.Failed), strconv.Itoa(h.Skipped), out.When(h.LastSync, now)}
	}
	latest := make([][]string, len(st.LatestErrors))
	for i, e := range st.LatestErrors {
		job := "-"
		if e.JobID != nil {
			job = strconv.FormatInt(*e.JobID, 10)
		}
		latest[i] = []string{e.Kind, out.When(&e.At, now), job, e.EntityID, out.Cell(e.Error, errorWidth)}
	}
	for _, s := range []struct {
		title  string
		header []string
		rows   [][]string
	}{
		{"Queue", []string{"KIND", "STATE", "LANE", "JOBS"}, queue},
		{"Sync log, last 24 h", []string{"TYPE", "SUCCESS", "FAILED", "SKIPPED", "LAST SYNC"}, health},
		{"Latest error per kind", []string{"KIND", "WHEN", "JOB", "ENTITY", "ERROR"}, latest},
	} {
		if len(s.rows) == 0 {
			fmt.Fprintf(out.Out, "\n%s: none\n", s.title)
			continue
		}
		fmt.Fprintf(out.Out, "\n%s:\n", s.title)
		table := cmdutil.NewTable(out, s.header...)
		for _, row := range s.rows {
			table.Row(row...)
		}
		if err := table.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
