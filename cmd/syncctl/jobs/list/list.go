// Package list is `syncctl jobs list`.
package list

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// DefaultLimit is --limit's default.
const DefaultLimit = 50

// errorWidth is how much of a job's last error a terminal shows.
const errorWidth = 60

// Options are list's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	// States keeps jobs in these states. Defaults to every state.
	States []rivertype.JobState
	// Kind keeps jobs of one entity kind. Defaults to every sync kind.
	Kind  outbox.Kind
	Limit int
	JSON  bool
}

// NewCmdList returns the command; runF replaces the run in tests.
func NewCmdList(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	var states []string
	var kind string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sync jobs, newest first",
		Example: `  syncctl jobs list --state discarded
  syncctl jobs list --state retryable,scheduled --kind ticket --limit 200
  syncctl jobs list --json | jq '.jobs[] | select(.attempt > 3)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range states {
				state, err := parseState(s)
				if err != nil {
					return err
				}
				opts.States = append(opts.States, state)
			}
			if kind != "" {
				k, err := outbox.ParseKind(kind)
				if err != nil {
					return &cmdutil.UsageError{Err: err}
				}
				opts.Kind = k
			}
			if err := cmdutil.CheckLimit(opts.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, "keep jobs in these states (repeat or comma-separate): "+strings.Join(stateNames(), ", "))
	cmd.Flags().StringVar(&kind, "kind", "", "keep jobs of one kind: event, ticket or org")
	cmd.Flags().IntVar(&opts.Limit, "limit", DefaultLimit, "list at most this many jobs")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// parseState returns the River job state named s. Returns a
// *cmdutil.UsageError naming the valid states otherwise.
func parseState(s string) (rivertype.JobState, error) {
	for _, state := range rivertype.JobStates() {
		if strings.EqualFold(strings.TrimSpace(s), string(state)) {
			return state, nil
		}
	}
	return "", cmdutil.Usagef("unknown state %q (want %s)", s, strings.Join(stateNames(), ", "))
}

func stateNames() []string {
	var names []string
	for _, s := range rivertype.JobStates() {
		names = append(names, string(s))
	}
	return names
}

// Job is one listed job; its JSON names are part of the interface.
type Job struct {
	ID int64 `json:"id"`
	// Kind is the entity kind: event, ticket or org.
	Kind     string `json:"kind"`
	EntityID string `json:"entity_id"`
	State    string `json:"state"`
	// Lane is "live" or "bulk" (see outbox.Lane): the live lane is worked
	// first.
	Lane        string     `json:"lane"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	ScheduledAt time.Time  `json:"scheduled_at"`
	AttemptedAt *time.Time `json:"attempted_at"`
	FinalizedAt *time.Time `json:"finalized_at"`
	// LastError is the latest attempt's error, null if none.
	LastError *string `json:"last_error"`
}

func listRun(ctx context.Context, opts *Options) error {
	_, client, err := opts.Factory.River(ctx, "syncctl jobs list")
	if err != nil {
		return err
	}
	kinds := outbox.Kinds
	if opts.Kind != "" {
		kinds = []outbox.Kind{opts.Kind}
	}
	jobKinds := make([]string, len(kinds))
	for i, k := range kinds {
		jobKinds[i] = k.JobKind()
	}
	params := river.NewJobListParams().Kinds(jobKinds...).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc).First(opts.Limit)
	if len(opts.States) > 0 {
		params = params.States(opts.States...)
	}
	res, err := client.JobList(ctx, params)
	if err != nil {
		return fmt.Errorf("list jobs: %w", err)
	}

	jobs := make([]Job, len(res.Jobs))
	for i, row := range res.Jobs {
		jobs[i] = fromRow(row)
	}
	io := opts.Factory.IO
	if opts.JSON {
		return cmdutil.WriteJSON(io.Out, map[string]any{"jobs": jobs})
	}
	if len(jobs) == 0 {
		if io.IsTerminal {
			fmt.Fprintln(io.ErrOut, "no jobs match")
		}
		return nil
	}
	now := opts.Factory.Clock()
	table := cmdutil.NewTable(io, "ID", "KIND", "ENTITY", "STATE", "LANE", "ATTEMPT", "WHEN", "LAST ERROR")
	for _, j := range jobs {
		// A job waiting for a later run says when; any other, when it was
		// created.
		when := &j.CreatedAt
		if j.ScheduledAt.After(now) && j.FinalizedAt == nil && j.State != string(rivertype.JobStateRunning) {
			when = &j.ScheduledAt
		}
		lastError := ""
		if j.LastError != nil {
			lastError = *j.LastError
		}
		table.Row(strconv.FormatInt(j.ID, 10), j.Kind, orDash(j.EntityID), j.State, j.Lane,
			fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts), io.When(when, now), io.Cell(lastError, errorWidth))
	}
	return table.Flush()
}

func fromRow(row *rivertype.JobRow) Job {
	j := Job{
		ID: row.ID, Kind: row.Kind, State: string(row.State), Lane: outbox.Lane(row.Priority),
		Attempt: row.Attempt, MaxAttempts: row.MaxAttempts,
		CreatedAt: row.CreatedAt.UTC(), ScheduledAt: row.ScheduledAt.UTC(),
		AttemptedAt: utc(row.AttemptedAt), FinalizedAt: utc(row.FinalizedAt),
	}
	if e, ok := outbox.JobEntity(row.Kind, row.EncodedArgs); ok {
		j.Kind, j.EntityID = string(e.Kind), e.ID
	}
	if n := len(row.Errors); n > 0 {
		j.LastError = &row.Errors[n-1].Error
	}
	return j
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
