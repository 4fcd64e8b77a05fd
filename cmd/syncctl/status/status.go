// Package status is `syncctl status`: is the sync running, and is it
// healthy.
package status

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/jobs"
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
		Long: `Reports whether any syncctl worker is alive (each holds a presence lock in
PostgreSQL while it runs; River's leader lease may be any River client's), the queue
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
	// UnreachableAccounts are the connected accounts whose jobs are skipped.
	UnreachableAccounts []jobs.UnreachableAccount `json:"unreachable_accounts"`
}

// Worker says whether any syncctl worker process is alive: each holds its
// presence (outbox.Presence) while it runs. River's leader is reported
// besides, since it runs River's maintenance, but does not count: any River
// client on the schema may hold its lease.
type Worker struct {
	Alive bool `json:"alive"`
	// Processes counts the syncctl worker processes alive.
	Processes int `json:"processes"`
	// LeaderID, ElectedAt and ExpiresAt describe River's latest leader,
	// current or not; null if none was ever elected.
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
	warnUnreachable(out.ErrOut, st.UnreachableAccounts)
	if opts.JSON {
		return cmdutil.WriteJSON(out.Out, st)
	}
	return write(out, st, now)
}

func gather(ctx context.Context, pool *pgxpool.Pool, now time.Time) (*Status, error) {
	st := &Status{Queue: []QueueDepth{}, Health: []Health{}, LatestErrors: []JobError{}, UnreachableAccounts: []jobs.UnreachableAccount{}}

	workers, err := outbox.Workers(ctx, pool)
	if err != nil {
		return nil, err
	}
	st.Worker.Alive, st.Worker.Processes = len(workers) > 0, len(workers)
	leader, err := outbox.RiverLeader(ctx, pool)
	if err != nil {
		return nil, err
	}
	if leader != nil {
		st.Worker.LeaderID, st.Worker.ElectedAt, st.Worker.ExpiresAt = &leader.ID, &leader.ElectedAt, &leader.ExpiresAt
	}

	counts, err := outbox.CountJobs(ctx, pool)
	if err != nil {
		return nil, err
	}
	for _, c := range counts {
		st.Queue = append(st.Queue, QueueDepth{Kind: string(c.Kind), State: string(c.State), Lane: c.Lane, Count: c.Count})
	}

	waiting, err := outbox.OldestWaiting(ctx, pool, now)
	if err != nil {
		return nil, err
	}
	if waiting != nil {
		st.OldestWaiting = &Waiting{JobID: waiting.JobID, Kind: string(waiting.Entity.Kind), EntityID: waiting.Entity.ID,
			ReadySince: waiting.ReadySince, AgeSeconds: int64(now.Sub(waiting.ReadySince) / time.Second)}
	}

	health, err := outbox.SyncHealth(ctx, pool)
	if err != nil {
		return nil, err
	}
	for _, h := range health {
		st.Health = append(st.Health, Health{EntityType: string(h.Kind), Success: h.Success, Failed: h.Failed, Skipped: h.Skipped, LastSync: h.LastSync})
	}

	if st.LatestErrors, err = latestErrors(ctx, pool); err != nil {
		return nil, err
	}

	auth, err := outbox.AuthFailures(ctx, pool, now)
	if err != nil {
		return nil, err
	}
	st.AuthFailures.Count = auth.Count
	if auth.Latest != nil {
		st.AuthFailures.LatestAt, st.AuthFailures.LatestError = &auth.Latest.CreatedAt, auth.Latest.ErrorMessage
	}
	if err := unreachable(ctx, pool, &st.UnreachableAccounts); err != nil {
		return nil, err
	}
	return st, nil
}

// latestErrors takes each kind's newest error from River's attempt errors
// (which include failures that never reached the sync log, such as a lost
// database connection) and from the sync log's failed rows (which outlive
// River's job retention).
func latestErrors(ctx context.Context, pool *pgxpool.Pool) ([]JobError, error) {
	attempts, err := outbox.LatestAttemptErrors(ctx, pool)
	if err != nil {
		return nil, err
	}
	failures, err := outbox.LatestFailures(ctx, pool)
	if err != nil {
		return nil, err
	}
	out := []JobError{}
	for _, k := range outbox.Kinds {
		a, haveAttempt := attempts[k]
		f, haveFailure := failures[k]
		// The worker logs the error it returns to River, so both usually
		// hold the same failure: River's copy wins a tie.
		switch {
		case haveFailure && (!haveAttempt || f.CreatedAt.After(a.At)):
			out = append(out, JobError{Kind: string(k), At: f.CreatedAt, JobID: f.JobID, EntityID: f.EntityID,
				Error: deref(f.ErrorMessage), Source: "stripe_sync_log"})
		case haveAttempt:
			jobID := a.JobID
			out = append(out, JobError{Kind: string(k), At: a.At, JobID: &jobID, EntityID: a.Entity.ID, Error: a.Error, Source: "river_job"})
		}
	}
	return out, nil
}

func write(out *cmdutil.IOStreams, st *Status, now time.Time) error {
	kv := tabwriter.NewWriter(out.Out, 0, 4, 2, ' ', 0)
	w := st.Worker
	leaderCurrent := w.ExpiresAt != nil && w.ExpiresAt.After(now)
	switch {
	case w.Alive && leaderCurrent:
		fmt.Fprintf(kv, "Worker:\talive (%s; River leader %s, elected %s, lease expires %s)\n",
			processes(w.Processes), *w.LeaderID, out.When(w.ElectedAt, now), out.When(w.ExpiresAt, now))
	case w.Alive:
		fmt.Fprintf(kv, "Worker:\talive (%s; no current River leader)\n", processes(w.Processes))
	case leaderCurrent:
		fmt.Fprintf(kv, "Worker:\tNO WORKER ALIVE (no syncctl worker is connected; River leader %s, lease expires %s, is not one)\n",
			*w.LeaderID, out.When(w.ExpiresAt, now))
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
	writeUnreachable(kv, out, st.UnreachableAccounts, now)
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

func processes(n int) string {
	if n == 1 {
		return "1 worker process"
	}
	return strconv.Itoa(n) + " worker processes"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
