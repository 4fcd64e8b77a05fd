// Package cancel is `syncctl jobs cancel JOB_ID...`.
package cancel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// Options are cancel's dependencies and arguments.
type Options struct {
	Factory *cmdutil.Factory
	JobIDs  []int64
	JSON    bool
}

// NewCmdCancel returns the command; runF replaces the run in tests.
func NewCmdCancel(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "cancel JOB_ID...",
		Short: "Cancel jobs: waiting ones at once, running ones when their worker notices",
		Long: `Cancels jobs through River. A waiting job is cancelled at once; a running one is
marked, and its worker cancels it (a job that finishes first keeps its result).
A finished job is left as it is. A cancelled job's entity is synced again by its
next change, or by ` + "`syncctl retry-failed --include-cancelled`" + `.`,
		Example: `  syncctl jobs cancel 42 43`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, arg := range args {
				id, err := cmdutil.ParseJobID(arg)
				if err != nil {
					return err
				}
				opts.JobIDs = append(opts.JobIDs, id)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return cancelRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Job is one cancelled job; its JSON names are part of the interface.
type Job struct {
	ID            int64  `json:"id"`
	Kind          string `json:"kind"`
	EntityID      string `json:"entity_id"`
	PreviousState string `json:"previous_state"`
	// State is the job's state after the cancel: cancelled, a final state
	// it already had, or running while its worker has yet to stop it.
	State string `json:"state"`
}

func cancelRun(ctx context.Context, opts *Options) error {
	_, client, err := opts.Factory.River(ctx, "syncctl jobs cancel")
	if err != nil {
		return err
	}

	jobs := []Job{}
	var missing []string
	for _, id := range opts.JobIDs {
		before, err := client.JobGet(ctx, id)
		if errors.Is(err, river.ErrNotFound) {
			missing = append(missing, strconv.FormatInt(id, 10))
			continue
		}
		if err != nil {
			return fmt.Errorf("get job %d: %w", id, err)
		}
		after, err := client.JobCancel(ctx, id)
		if errors.Is(err, river.ErrNotFound) { // deleted meanwhile
			missing = append(missing, strconv.FormatInt(id, 10))
			continue
		}
		if err != nil {
			return fmt.Errorf("cancel job %d: %w", id, err)
		}
		j := Job{ID: id, Kind: after.Kind, PreviousState: string(before.State), State: string(after.State)}
		if e, ok := outbox.JobEntity(after.Kind, after.EncodedArgs); ok {
			j.Kind, j.EntityID = string(e.Kind), e.ID
		}
		jobs = append(jobs, j)
	}

	io := opts.Factory.IO
	if opts.JSON {
		if err := cmdutil.WriteJSON(io.Out, map[string]any{"jobs": jobs}); err != nil {
			return err
		}
	} else if len(jobs) > 0 {
		table := cmdutil.NewTable(io, "ID", "KIND", "ENTITY", "WAS", "STATE")
		for _, j := range jobs {
			table.Row(strconv.FormatInt(j.ID, 10), j.Kind, orDash(j.EntityID), j.PreviousState, describe(j))
		}
		if err := table.Flush(); err != nil {
			return err
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("job %s not found", missing[0])
	default:
		return fmt.Errorf("jobs %s not found", strings.Join(missing, ", "))
	}
}

// describe says what the cancel did, beyond the bare state.
func describe(j Job) string {
	switch {
	case j.State == string(rivertype.JobStateRunning):
		return "running (cancel requested; its worker stops it)"
	case j.PreviousState == j.State:
		return j.State + " (already finished; unchanged)"
	default:
		return j.State
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
