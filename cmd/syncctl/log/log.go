// Package synclog is `syncctl log`, over stripe_sync_log: one row per sync
// attempt. It is not named log, so it does not shadow the standard library.
package synclog

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// DefaultLimit is --limit's default.
const DefaultLimit = 50

// errorWidth is how much of an error message a terminal shows.
const errorWidth = 60

// Options are log's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	// EntityID keeps rows about one entity. Defaults to every entity.
	EntityID string
	// Status keeps rows of one status. Defaults to every status.
	Status string
	// Since keeps rows written at or after it. Defaults to any time.
	Since time.Time
	Limit int
	JSON  bool
}

// NewCmdLog returns the command; runF replaces the run in tests.
func NewCmdLog(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	var entity, since string
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Show the sync log, newest first: one row per attempt to sync an entity",
		Example: `  syncctl log --status failed --since 24h
  syncctl log --entity 0e000000-0000-4000-8000-000000000001
  syncctl log --json --limit 500 | jq '.entries[] | select(.duration_ms > 1000)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if entity != "" {
				id, err := outbox.ParseID(entity)
				if err != nil {
					return &cmdutil.UsageError{Err: err}
				}
				opts.EntityID = id
			}
			if opts.Status != "" && !slices.Contains(outbox.LogStatuses, opts.Status) {
				return cmdutil.Usagef("unknown status %q (want success, failed or skipped)", opts.Status)
			}
			if since != "" {
				t, err := cmdutil.ParseSince(since, f.Clock())
				if err != nil {
					return err
				}
				opts.Since = t
			}
			if err := cmdutil.CheckLimit(opts.Limit); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return logRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&entity, "entity", "", "rows about one entity (event, ticket or organisation UUID)")
	cmd.Flags().StringVar(&opts.Status, "status", "", "rows of one status: success, failed or skipped")
	cmd.Flags().StringVar(&since, "since", "", "rows since: a duration back from now (24h, 7d) or an RFC 3339 time")
	cmd.Flags().IntVar(&opts.Limit, "limit", DefaultLimit, "show at most this many rows")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Entry is one sync log row; its JSON names are part of the interface.
type Entry struct {
	ID                 string    `json:"id"`
	CreatedAt          time.Time `json:"created_at"`
	EntityType         string    `json:"entity_type"`
	EntityID           string    `json:"entity_id"`
	Action             string    `json:"action"`
	Status             string    `json:"status"`
	StripeObjectID     *string   `json:"stripe_object_id"`
	ConnectedAccountID *string   `json:"connected_account_id"`
	ErrorMessage       *string   `json:"error_message"`
	JobID              *int64    `json:"job_id"`
	Attempt            *int      `json:"attempt"`
	DurationMS         *int      `json:"duration_ms"`
}

func logRun(ctx context.Context, opts *Options) error {
	pool, err := opts.Factory.Pool(ctx, "syncctl log")
	if err != nil {
		return err
	}
	rows, err := outbox.SyncLog(ctx, pool, outbox.LogFilter{
		Entity: outbox.Entity{ID: opts.EntityID}, Status: opts.Status, Since: opts.Since, Limit: opts.Limit,
	})
	if err != nil {
		return err
	}
	entries := make([]Entry, len(rows))
	for i, r := range rows {
		entries[i] = Entry(r)
	}

	io := opts.Factory.IO
	if opts.JSON {
		return cmdutil.WriteJSON(io.Out, map[string]any{"entries": entries})
	}
	if len(entries) == 0 {
		if io.IsTerminal {
			fmt.Fprintln(io.ErrOut, "no sync log rows match")
		}
		return nil
	}
	now := opts.Factory.Clock()
	table := cmdutil.NewTable(io, "WHEN", "TYPE", "ENTITY", "ACTION", "STATUS", "JOB", "ATTEMPT", "DURATION", "STRIPE OBJECT", "ERROR")
	for _, e := range entries {
		table.Row(io.When(&e.CreatedAt, now), e.EntityType, e.EntityID, e.Action, e.Status, str(e.JobID), str(e.Attempt),
			duration(e.DurationMS), str(e.StripeObjectID), io.Cell(deref(e.ErrorMessage), errorWidth))
	}
	return table.Flush()
}

func str[T any](p *T) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func duration(ms *int) string {
	if ms == nil {
		return "-"
	}
	return strconv.Itoa(*ms) + "ms"
}
