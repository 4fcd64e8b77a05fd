// Package migrate is `syncctl migrate`.
package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/migrations"
)

// Options are migrate's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	// WithFixture installs the LodgeTix host-schema fixture first: for the
	// demo and tests, never production.
	WithFixture bool
	// SampleData inserts the demo's sample rows after migrating.
	SampleData bool
	// WorkerRole is granted what `syncctl worker` needs (--worker-role).
	WorkerRole string
	// PrintSQL prints the install script instead of applying it.
	PrintSQL bool
}

// NewCmdMigrate returns the command; runF replaces the run in tests.
func NewCmdMigrate(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply River's and stripe-sync's migrations (idempotent)",
		Long: `Installs River's tables, the sync tables, the enqueue function and the triggers
into a database that already has the LodgeTix tables, and adds the
stripe_product_id/stripe_price_id columns if missing. Host data is never rewritten.

Everything but the triggers goes into the sync schema (--schema, default
stripe_sync), where no role but its owner and the worker role has any
privilege: nothing is reachable through Supabase's Data API. A database
migrated by an earlier version, with everything in public, is moved there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return migrateRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.WorkerRole, "worker-role", "", "existing role to grant exactly what the worker needs")
	cmd.Flags().BoolVar(&opts.PrintSQL, "print-sql", false,
		"print the SQL that installs everything into a new database (for supabase/migrations) instead of applying it")
	cmd.Flags().BoolVar(&opts.WithFixture, "with-fixture", false, "first create the LodgeTix host tables (demo and tests only)")
	cmd.Flags().BoolVar(&opts.SampleData, "sample-data", false, "insert the demo's sample organisations, events and tickets")
	_ = cmd.Flags().MarkHidden("with-fixture")
	_ = cmd.Flags().MarkHidden("sample-data")
	return cmd
}

func migrateRun(ctx context.Context, opts *Options) error {
	if opts.PrintSQL {
		script, err := migrations.Script(opts.Factory.Schema, opts.WorkerRole)
		if err != nil {
			return &cmdutil.UsageError{Err: err}
		}
		_, err = fmt.Fprint(opts.Factory.IO.Out, script)
		return err
	}
	pool, err := opts.Factory.Pool(ctx, "syncctl migrate")
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	if opts.WithFixture {
		if err := migrations.InstallHostSchema(ctx, db); err != nil {
			return err
		}
	}
	res, err := migrations.Up(ctx, opts.Factory.DatabaseURL, migrations.Options{Schema: opts.Factory.Schema, WorkerRole: opts.WorkerRole})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if opts.SampleData {
		if err := migrations.InstallSampleData(ctx, db); err != nil {
			return err
		}
	}
	out := opts.Factory.IO.ErrOut
	if len(res.River) == 0 && len(res.Project) == 0 {
		fmt.Fprintln(out, "migrate: already up to date")
		return nil
	}
	fmt.Fprintf(out, "migrate: applied %d River and %d stripe-sync migrations\n", len(res.River), len(res.Project))
	for _, p := range res.Project {
		fmt.Fprintln(out, "  "+p)
	}
	return nil
}
