// Package enqueue is `syncctl enqueue event|ticket|org ID...`.
package enqueue

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// Options are enqueue's dependencies, arguments and flags.
type Options struct {
	Factory *cmdutil.Factory
	Kind    outbox.Kind
	IDs     []string
	JSON    bool
}

// NewCmdEnqueue returns the command; runF replaces the run in tests.
func NewCmdEnqueue(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "enqueue event|ticket|org ID...",
		Short: "Enqueue sync jobs by hand; says which collapsed into a job already waiting",
		Example: `  syncctl enqueue event 0e000000-0000-4000-8000-000000000001
  syncctl enqueue ticket --json 07000000-0000-4000-8000-000000000001 07000000-0000-4000-8000-000000000002`,
		Args:      cobra.MinimumNArgs(2),
		ValidArgs: []string{"event", "ticket", "org"},
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, err := outbox.ParseKind(args[0])
			if err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			opts.Kind = kind
			for _, raw := range args[1:] {
				id, err := outbox.ParseID(raw)
				if err != nil {
					return &cmdutil.UsageError{Err: err}
				}
				opts.IDs = append(opts.IDs, id)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return enqueueRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Job is one line of output; its JSON names are part of the interface.
type Job struct {
	Kind         string `json:"kind"`
	ID           string `json:"id"`
	JobID        int64  `json:"job_id"`
	Deduplicated bool   `json:"deduplicated"`
}

func enqueueRun(ctx context.Context, opts *Options) error {
	pool, client, err := opts.Factory.River(ctx, "syncctl enqueue")
	if err != nil {
		return err
	}
	entities := make([]outbox.Entity, len(opts.IDs))
	for i, id := range opts.IDs {
		entities[i] = outbox.Entity{Kind: opts.Kind, ID: id}
	}

	var results []outbox.Result
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		results, err = outbox.Enqueue(ctx, client, tx, entities...)
		return err
	})
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}

	jobs := make([]Job, len(results))
	for i, r := range results {
		jobs[i] = Job{Kind: string(r.Entity.Kind), ID: r.Entity.ID, JobID: r.JobID, Deduplicated: r.Duplicate}
	}
	io := opts.Factory.IO
	if opts.JSON {
		return cmdutil.WriteJSON(io.Out, map[string]any{"jobs": jobs})
	}
	table := cmdutil.NewTable(io, "KIND", "ID", "JOB", "RESULT")
	for _, j := range jobs {
		result := "enqueued"
		if j.Deduplicated {
			result = "deduplicated (a job for it is already waiting or running)"
		}
		table.Row(j.Kind, j.ID, strconv.FormatInt(j.JobID, 10), result)
	}
	return table.Flush()
}
