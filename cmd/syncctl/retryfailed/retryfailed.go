// Package retryfailed is `syncctl retry-failed`.
package retryfailed

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// errorWidth is how much of a job's last error a terminal shows.
const errorWidth = 50

// Options are retry-failed's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	// Kind keeps jobs of one entity kind. Defaults to every kind.
	Kind outbox.Kind
	// Since keeps jobs that failed at or after it. Defaults to any time.
	Since time.Time
	// EntityID keeps jobs about one entity. Defaults to every entity.
	EntityID         string
	Limit            int
	DryRun           bool
	IncludeCancelled bool
	JSON             bool
}

// NewCmdRetryFailed returns the command; runF replaces the run in tests.
func NewCmdRetryFailed(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	var kind, since, entity string
	cmd := &cobra.Command{
		Use:   "retry-failed",
		Short: "Make failed sync jobs available again, for example after a Stripe outage",
		Long: `Brings discarded sync jobs (out of attempts) back to available, and with
--include-cancelled also cancelled ones (a Stripe 400, or ` + "`jobs cancel`" + `). Each job
reads its entity's current row when it runs, so only the latest failed job per
entity is retried, and none for an entity another job is waiting for or has
synced since. All retries commit together. --dry-run lists what would be
retried and changes nothing.`,
		Example: `  syncctl retry-failed --dry-run
  syncctl retry-failed --since 6h --kind ticket
  syncctl retry-failed --entity 0e000000-0000-4000-8000-000000000001 --include-cancelled`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kind != "" {
				k, err := outbox.ParseKind(kind)
				if err != nil {
					return &cmdutil.UsageError{Err: err}
				}
				opts.Kind = k
			}
			if since != "" {
				t, err := cmdutil.ParseSince(since, f.Clock())
				if err != nil {
					return err
				}
				opts.Since = t
			}
			if entity != "" {
				id, err := outbox.ParseID(entity)
				if err != nil {
					return &cmdutil.UsageError{Err: err}
				}
				opts.EntityID = id
			}
			if err := cmdutil.CheckLimit(opts.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return retryFailedRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&kind, "kind", "", "retry jobs of one kind: event, ticket or org")
	cmd.Flags().StringVar(&since, "since", "", "retry jobs that failed since: a duration back from now (24h, 7d) or an RFC 3339 time")
	cmd.Flags().StringVar(&entity, "entity", "", "retry the jobs of one entity (event, ticket or organisation UUID)")
	cmd.Flags().IntVar(&opts.Limit, "limit", outbox.DefaultFailedLimit, "retry at most this many jobs, most recent failures first")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "list what would be retried; change nothing")
	cmd.Flags().BoolVar(&opts.IncludeCancelled, "include-cancelled", false, "retry cancelled jobs too")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Results of one job, as Job.Result holds them.
const (
	ResultRetried    = "retried"
	ResultWouldRetry = "would_retry"
	// ResultSkipped: a job for the entity was inserted between the
	// selection and the retry, and will sync it.
	ResultSkipped = "skipped"
)

// Job is one failed job and what retry-failed did with it; its JSON names
// are part of the interface.
type Job struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	EntityID    string    `json:"entity_id"`
	State       string    `json:"state"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	FinalizedAt time.Time `json:"finalized_at"`
	LastError   string    `json:"last_error"`
	Result      string    `json:"result"`
}

func retryFailedRun(ctx context.Context, opts *Options) error {
	pool, client, err := opts.Factory.River(ctx, "syncctl retry-failed")
	if err != nil {
		return err
	}

	jobs := []Job{}
	retried := 0
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		failed, err := outbox.FailedJobs(ctx, tx, outbox.FailedFilter{
			Kind: opts.Kind, Since: opts.Since, EntityID: opts.EntityID,
			Limit: opts.Limit, IncludeCancelled: opts.IncludeCancelled,
		})
		if err != nil {
			return err
		}
		for _, f := range failed {
			j := Job{
				ID: f.JobID, Kind: string(f.Entity.Kind), EntityID: f.Entity.ID, State: string(f.State),
				Attempt: f.Attempt, MaxAttempts: f.MaxAttempts, FinalizedAt: f.FinalizedAt.UTC(),
				LastError: f.LastError, Result: ResultWouldRetry,
			}
			if !opts.DryRun {
				if j.Result, err = retry(ctx, client, tx, f.JobID); err != nil {
					return err
				}
				if j.Result == ResultRetried {
					retried++
				}
			}
			jobs = append(jobs, j)
		}
		if opts.DryRun {
			return errDryRun
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDryRun) {
		return fmt.Errorf("retry failed jobs: %w", err)
	}

	io := opts.Factory.IO
	if opts.JSON {
		return cmdutil.WriteJSON(io.Out, map[string]any{"dry_run": opts.DryRun, "jobs": jobs})
	}
	switch {
	case opts.DryRun:
		fmt.Fprintf(io.ErrOut, "dry run: would retry %d %s; nothing changed\n", len(jobs), plural(len(jobs)))
	default:
		fmt.Fprintf(io.ErrOut, "retried %d %s\n", retried, plural(retried))
	}
	if len(jobs) == 0 {
		return nil
	}
	now := opts.Factory.Clock()
	table := cmdutil.NewTable(io, "ID", "KIND", "ENTITY", "WAS", "ATTEMPT", "FAILED", "RESULT", "LAST ERROR")
	for _, j := range jobs {
		table.Row(strconv.FormatInt(j.ID, 10), j.Kind, j.EntityID, j.State, fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts),
			io.When(&j.FinalizedAt, now), resultText[j.Result], io.Cell(j.LastError, errorWidth))
	}
	return table.Flush()
}

var resultText = map[string]string{
	ResultRetried:    "retried",
	ResultWouldRetry: "would retry",
	ResultSkipped:    "skipped: a new job for it is waiting",
}

// errDryRun rolls back a dry run's transaction; nothing is written anyway,
// but the rollback makes that plain.
var errDryRun = errors.New("dry run")

// retry makes one job available in a savepoint, so a job for the same entity
// inserted since the selection (a trigger firing now) skips this one instead
// of failing every retry on River's unique index.
func retry(ctx context.Context, client *river.Client[pgx.Tx], tx pgx.Tx, jobID int64) (string, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("savepoint: %w", err)
	}
	if _, err := client.JobRetryTx(ctx, sp, jobID); err != nil {
		_ = sp.Rollback(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return ResultSkipped, nil
		}
		return "", fmt.Errorf("retry job %d: %w", jobID, err)
	}
	if err := sp.Commit(ctx); err != nil {
		return "", fmt.Errorf("release savepoint: %w", err)
	}
	return ResultRetried, nil
}

func plural(n int) string {
	if n == 1 {
		return "job"
	}
	return "jobs"
}
