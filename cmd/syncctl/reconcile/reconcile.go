// Package reconcile is `syncctl reconcile [--org ID] [--fix]`.
package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/worker"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient/pglimiter"
)

// Options are reconcile's dependencies and flags.
type Options struct {
	Factory  *cmdutil.Factory
	Org      string
	Fix      bool
	Currency string
	JSON     bool
}

// NewCmdReconcile returns the command; runF replaces the run in tests.
func NewCmdReconcile(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "reconcile [--org ID] [--fix]",
		Short: "Compare the database with the Products and Prices on each connected account; report (and fix) drift",
		Long: `Reads every Product and Price from each connected account that an organisation
uses (paginated, at the worker's default request rate) and compares them with
the events and ticket types, mapped as the worker maps them. Each finding is one
row: PROBLEM is missing (no object for a live row), extra (an active object with
our metadata that the sync does not use), drift (fields differ; DETAIL says
which, as "have, want"), multiple_active (a ticket's second active Price) or
invalid (a row Stripe cannot hold; fix the row). Objects without our event_id or
ticket_id metadata are left alone.

With --fix, missing and drifted entities get a sync job (with their recorded
fingerprint forgotten, so the job rewrites Stripe), and extra objects are
archived. A worker must run to apply the jobs. Exits 0 whether or not it finds
drift; the count is on stderr.`,
		Example: `  syncctl reconcile
  syncctl reconcile --org 0a000000-0000-4000-8000-000000000001 --fix`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Org != "" {
				org, err := outbox.ParseID(opts.Org)
				if err != nil {
					return &cmdutil.UsageError{Err: fmt.Errorf("--org: %w", err)}
				}
				opts.Org = org
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return reconcileRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Org, "org", "", "only this organisation's connected account")
	cmd.Flags().BoolVar(&opts.Fix, "fix", false, "enqueue the jobs that repair missing and drifted objects, and archive extras")
	cmd.Flags().StringVar(&opts.Currency, "currency", "aud", "currency of every Price (as the worker's --currency)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print one JSON document")
	return cmd
}

// Finding is one line of output; its JSON names are part of the interface.
type Finding struct {
	Kind     string   `json:"kind"`
	EntityID string   `json:"entity_id"`
	Account  string   `json:"account"`
	ObjectID string   `json:"object_id"`
	Problem  string   `json:"problem"`
	Detail   string   `json:"detail"`
	Fields   []string `json:"fields"`
}

// Fix is what --fix did; its JSON names are part of the interface.
type Fix struct {
	Enqueued     int `json:"enqueued"`
	Deduplicated int `json:"deduplicated"`
	Archived     int `json:"archived"`
	Skipped      int `json:"skipped"`
}

func reconcileRun(ctx context.Context, opts *Options) error {
	key, err := opts.Factory.StripeSecretKey()
	if err != nil {
		return err
	}
	pool, err := opts.Factory.Pool(ctx, "syncctl reconcile")
	if err != nil {
		return err
	}
	// The workers' shared limit: reconciling beside running workers must not
	// push the total past Stripe's.
	sc, err := opts.Factory.StripeClient(cmdutil.StripeOptions{
		Limiter: pglimiter.New(pool, pglimiter.Options{Rate: worker.DefaultRate(key)}),
	})
	if err != nil {
		return err
	}
	rec := &jobs.Reconciler{Pool: pool, Stripe: sc, Currency: opts.Currency}
	report, err := rec.Reconcile(ctx, opts.Org)
	var notFound *jobs.OrgNotFoundError
	if errors.As(err, &notFound) {
		return &cmdutil.UsageError{Err: fmt.Errorf("--org: %w", err)}
	}
	if err != nil {
		return err
	}

	var fix *Fix
	if opts.Fix && len(report.Findings) > 0 {
		client, err := river.NewClient(riverpgxv5.New(pool), opts.Factory.RiverConfig(nil))
		if err != nil {
			return err
		}
		res, err := rec.Fix(ctx, client, report.Findings)
		if err != nil {
			return fmt.Errorf("fix: %w", err)
		}
		fix = &Fix{Enqueued: res.Enqueued, Deduplicated: res.Deduplicated, Archived: res.Archived, Skipped: res.Skipped}
	} else if opts.Fix {
		fix = &Fix{}
	}

	io := opts.Factory.IO
	fmt.Fprintln(io.ErrOut, summary(opts.Org, report))
	if fix != nil {
		fmt.Fprintf(io.ErrOut, "fix: %s enqueued (%d deduplicated), %s archived, %d left alone (invalid rows); a worker applies the jobs\n",
			plural(fix.Enqueued, "job"), fix.Deduplicated, plural(fix.Archived, "object"), fix.Skipped)
	}

	findings := make([]Finding, len(report.Findings))
	for i, f := range report.Findings {
		findings[i] = Finding{
			Kind: string(f.Kind), EntityID: f.EntityID, Account: f.Account, ObjectID: f.ObjectID,
			Problem: string(f.Problem), Detail: f.Detail, Fields: f.Fields,
		}
		if findings[i].Fields == nil {
			findings[i].Fields = []string{}
		}
	}
	if opts.JSON {
		doc := struct {
			Findings []Finding `json:"findings"`
			Fix      *Fix      `json:"fix,omitempty"`
		}{findings, fix}
		return cmdutil.WriteJSON(io.Out, doc)
	}
	table := cmdutil.NewTable(io, "KIND", "ENTITY", "ACCOUNT", "OBJECT", "PROBLEM", "DETAIL")
	for _, f := range findings {
		object := f.ObjectID
		if object == "" {
			object = "-"
		}
		table.Row(f.Kind, f.EntityID, f.Account, object, f.Problem, f.Detail)
	}
	return table.Flush()
}

// summary is the one line on stderr that says what was compared and whether
// anything differs.
func summary(org string, report *jobs.ReconcileReport) string {
	if len(report.Accounts) == 0 {
		if org != "" {
			return fmt.Sprintf("organisation %s has no connected Stripe account: nothing to compare", org)
		}
		return "no organisation has a connected Stripe account: nothing to compare"
	}
	var events, tickets, products, prices int
	for _, a := range report.Accounts {
		events, tickets = events+a.Events, tickets+a.Tickets
		products, prices = products+a.Products, prices+a.Prices
	}
	result := "no drift"
	if n := len(report.Findings); n > 0 {
		result = plural(n, "finding")
	}
	return fmt.Sprintf("compared %s (%s, %s; %s, %s): %s",
		plural(len(report.Accounts), "account"), plural(events, "event"), plural(tickets, "ticket"),
		plural(products, "product"), plural(prices, "price"), result)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
