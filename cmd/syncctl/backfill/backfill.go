// Package backfill is `syncctl backfill [--org ID] [--unsynced]`.
package backfill

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/outbox"
)

// Options are backfill's dependencies and flags.
type Options struct {
	Factory   *cmdutil.Factory
	Org       string
	Unsynced  bool
	BatchSize int
	JSON      bool
}

// NewCmdBackfill returns the command; runF replaces the run in tests.
func NewCmdBackfill(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "backfill [--org ID] [--unsynced]",
		Short: "Enqueue a sync job for every event and ticket type (or every one not yet synced)",
		Long: `Enqueues every event and ticket type, in batches through River's bulk insert,
deduplicated against jobs already waiting: running it twice enqueues nothing new
while the first run's jobs wait. Use it after the first install on an existing
database, or with --unsynced to catch up entities that never reached their
organisation's current Stripe account. A worker does the syncing.`,
		Example: `  syncctl backfill
  syncctl backfill --unsynced --org 0a000000-0000-4000-8000-000000000001`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Org != "" {
				org, err := outbox.ParseID(opts.Org)
				if err != nil {
					return &cmdutil.UsageError{Err: fmt.Errorf("--org: %w", err)}
				}
				opts.Org = org
			}
			if opts.BatchSize < 1 {
				return cmdutil.Usagef("--batch must be at least 1")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return backfillRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Org, "org", "", "only this organisation's events and tickets")
	cmd.Flags().BoolVar(&opts.Unsynced, "unsynced", false, "only entities not yet synced to their organisation's current account")
	cmd.Flags().IntVar(&opts.BatchSize, "batch", outbox.DefaultBackfillBatch, "entities per transaction")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Summary is backfill's output; its JSON names are part of the interface.
type Summary struct {
	Events       int `json:"events"`
	Tickets      int `json:"tickets"`
	Enqueued     int `json:"enqueued"`
	Deduplicated int `json:"deduplicated"`
}

func backfillRun(ctx context.Context, opts *Options) error {
	pool, err := opts.Factory.Pool(ctx, "syncctl backfill")
	if err != nil {
		return err
	}
	streams := opts.Factory.IO
	bo := outbox.BackfillOptions{Org: opts.Org, Unsynced: opts.Unsynced, BatchSize: opts.BatchSize}
	var bar *progressBar
	if streams.IsTerminal {
		bar = &progressBar{w: streams.ErrOut}
		bo.Progress = bar.draw
	}
	res, err := outbox.Backfill(ctx, pool, bo)
	bar.finish()
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}

	s := Summary{Events: res.Events, Tickets: res.Tickets, Enqueued: res.Enqueued, Deduplicated: res.Deduplicated}
	if opts.JSON {
		return cmdutil.WriteJSON(streams.Out, s)
	}
	_, err = fmt.Fprintf(streams.Out, "%d events and %d tickets: %d jobs enqueued, %d deduplicated (a job was already waiting)\n",
		s.Events, s.Tickets, s.Enqueued, s.Deduplicated)
	return err
}

// progressBar redraws one line on a terminal.
type progressBar struct {
	w     io.Writer
	drawn bool
}

const barWidth = 30

func (b *progressBar) draw(done, total int) {
	total = max(total, done)
	filled := barWidth
	if total > 0 {
		filled = barWidth * done / total
	}
	fmt.Fprintf(b.w, "\rbackfill [%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled), done, total)
	b.drawn = true
}

// finish ends the bar's line, so what follows starts on a fresh one.
func (b *progressBar) finish() {
	if b != nil && b.drawn {
		fmt.Fprintln(b.w)
	}
}
