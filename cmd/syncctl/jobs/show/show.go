// Package show is `syncctl jobs show JOB_ID`.
package show

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// LogRows is how many of the entity's latest sync log rows show prints.
const LogRows = 5

// Options are show's dependencies and arguments.
type Options struct {
	Factory *cmdutil.Factory
	JobID   int64
	JSON    bool
}

// NewCmdShow returns the command; runF replaces the run in tests.
func NewCmdShow(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "show JOB_ID",
		Short: "Show one job: its entity, attempts, every error, and the entity's latest sync log",
		Example: `  syncctl jobs show 42
  syncctl jobs show 42 --json | jq '.errors'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := cmdutil.ParseJobID(args[0])
			if err != nil {
				return err
			}
			opts.JobID = id
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return showRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Job is show's document; its JSON names are part of the interface.
type Job struct {
	ID int64 `json:"id"`
	// Kind is the entity kind (event, ticket, org), or River's kind for a
	// job that names no entity.
	Kind        string          `json:"kind"`
	EntityID    string          `json:"entity_id"`
	State       string          `json:"state"`
	Queue       string          `json:"queue"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	CreatedAt   time.Time       `json:"created_at"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	AttemptedAt *time.Time      `json:"attempted_at"`
	FinalizedAt *time.Time      `json:"finalized_at"`
	AttemptedBy []string        `json:"attempted_by"`
	Args        json.RawMessage `json:"args"`
	Metadata    json.RawMessage `json:"metadata"`
	// Snoozes counts the job's snoozes (waits that used no attempt).
	Snoozes int          `json:"snoozes"`
	Errors  []JobError   `json:"errors"`
	SyncLog []SyncLogRow `json:"sync_log"`
}

// JobError is one attempt's error.
type JobError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	// Trace is the stack of a panic; empty otherwise.
	Trace string `json:"trace"`
}

// SyncLogRow is one stripe_sync_log row about the job's entity, named as
// `syncctl log --json` names it.
type SyncLogRow struct {
	CreatedAt      time.Time `json:"created_at"`
	JobID          *int64    `json:"job_id"`
	Attempt        *int      `json:"attempt"`
	Action         string    `json:"action"`
	Status         string    `json:"status"`
	DurationMS     *int      `json:"duration_ms"`
	StripeObjectID *string   `json:"stripe_object_id"`
	ErrorMessage   *string   `json:"error_message"`
}

func showRun(ctx context.Context, opts *Options) error {
	pool, client, err := opts.Factory.River(ctx, "syncctl jobs show")
	if err != nil {
		return err
	}
	row, err := client.JobGet(ctx, opts.JobID)
	if errors.Is(err, river.ErrNotFound) {
		return fmt.Errorf("job %d not found", opts.JobID)
	}
	if err != nil {
		return fmt.Errorf("get job %d: %w", opts.JobID, err)
	}
	job := fromRow(row)
	entity, isSync := outbox.JobEntity(row.Kind, row.EncodedArgs)
	if isSync {
		if job.SyncLog, err = syncLog(ctx, pool, entity); err != nil {
			return err
		}
	}

	io := opts.Factory.IO
	if opts.JSON {
		return cmdutil.WriteJSON(io.Out, job)
	}
	now := opts.Factory.Clock()
	kv := tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0)
	field := func(name, value string) { fmt.Fprintf(kv, "%s:\t%s\n", name, value) }
	field("ID", strconv.FormatInt(job.ID, 10))
	field("Kind", job.Kind)
	field("Entity", orDash(job.EntityID))
	field("State", job.State)
	field("Attempts", fmt.Sprintf("%d/%d", job.Attempt, job.MaxAttempts))
	field("Queue", job.Queue)
	field("Created", io.When(&job.CreatedAt, now))
	field("Scheduled", io.When(&job.ScheduledAt, now))
	field("Attempted", io.When(job.AttemptedAt, now))
	field("Finalized", io.When(job.FinalizedAt, now))
	field("Attempted by", orDash(strings.Join(job.AttemptedBy, ", ")))
	field("Snoozes", strconv.Itoa(job.Snoozes))
	field("Args", string(job.Args))
	field("Metadata", string(job.Metadata))
	if err := kv.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(io.Out, "\nErrors (%d):\n", len(job.Errors))
	table := cmdutil.NewTable(io, "ATTEMPT", "AT", "ERROR")
	for _, e := range job.Errors {
		table.Row(strconv.Itoa(e.Attempt), io.When(&e.At, now), oneLine(e.Error))
	}
	if err := table.Flush(); err != nil {
		return err
	}
	if !isSync {
		return nil
	}

	fmt.Fprintf(io.Out, "\nSync log of %s %s (latest %d):\n", entity.Kind, entity.ID, LogRows)
	table = cmdutil.NewTable(io, "WHEN", "JOB", "ATTEMPT", "ACTION", "STATUS", "DURATION", "STRIPE OBJECT", "ERROR")
	for _, l := range job.SyncLog {
		table.Row(io.When(&l.CreatedAt, now), ptr(l.JobID), ptr(l.Attempt), l.Action, l.Status,
			duration(l.DurationMS), ptr(l.StripeObjectID), oneLine(ptr(l.ErrorMessage)))
	}
	return table.Flush()
}

func fromRow(row *rivertype.JobRow) Job {
	j := Job{
		ID: row.ID, Kind: row.Kind, State: string(row.State), Queue: row.Queue,
		Attempt: row.Attempt, MaxAttempts: row.MaxAttempts,
		CreatedAt: row.CreatedAt.UTC(), ScheduledAt: row.ScheduledAt.UTC(),
		AttemptedAt: utc(row.AttemptedAt), FinalizedAt: utc(row.FinalizedAt),
		AttemptedBy: row.AttemptedBy, Args: row.EncodedArgs, Metadata: row.Metadata,
		Errors: make([]JobError, len(row.Errors)), SyncLog: []SyncLogRow{},
	}
	if j.AttemptedBy == nil {
		j.AttemptedBy = []string{}
	}
	if e, ok := outbox.JobEntity(row.Kind, row.EncodedArgs); ok {
		j.Kind, j.EntityID = string(e.Kind), e.ID
	}
	for i, e := range row.Errors {
		j.Errors[i] = JobError{Attempt: e.Attempt, At: e.At.UTC(), Error: e.Error, Trace: e.Trace}
	}
	var meta struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(row.Metadata, &meta)
	j.Snoozes = meta.Snoozes
	return j
}

func syncLog(ctx context.Context, pool *pgxpool.Pool, e outbox.Entity) ([]SyncLogRow, error) {
	entries, err := outbox.SyncLog(ctx, pool, outbox.LogFilter{Entity: e, Limit: LogRows})
	if err != nil {
		return nil, err
	}
	out := make([]SyncLogRow, len(entries))
	for i, l := range entries {
		out[i] = SyncLogRow{CreatedAt: l.CreatedAt, JobID: l.JobID, Attempt: l.Attempt, Action: l.Action, Status: l.Status,
			DurationMS: l.DurationMS, StripeObjectID: l.StripeObjectID, ErrorMessage: l.ErrorMessage}
	}
	return out, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func ptr[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func duration(ms *int) string {
	if ms == nil {
		return "-"
	}
	return strconv.Itoa(*ms) + "ms"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a message on its table row, whole: show prints every error
// in full, unlike a listing.
func oneLine(s string) string {
	if s = strings.Join(strings.Fields(s), " "); s == "" {
		return "-"
	}
	return s
}
