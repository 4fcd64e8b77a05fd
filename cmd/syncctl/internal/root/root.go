// Package root assembles syncctl's commands and maps their errors to exit
// codes in one place.
package root

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/backfill"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/enqueue"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/jobs"
	synclog "github.com/lodgetix/stripe-sync/cmd/syncctl/log"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/migrate"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/reconcile"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/retryfailed"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/status"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/stripeemulator"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/ui"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/worker"
)

// NewCmdRoot returns the syncctl command tree over f.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "syncctl",
		Short:         "Keep LodgeTix events and tickets in step with Stripe Products and Prices",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cmdutil.UsageError{Err: err} })
	cmd.PersistentFlags().StringVar(&f.DatabaseURL, "database-url", f.Getenv("DATABASE_URL"),
		"PostgreSQL connection string (env DATABASE_URL)")
	cmd.PersistentFlags().StringVar(&f.Schema, "schema", f.Getenv("STRIPE_SYNC_SCHEMA"),
		"schema holding River's tables and stripe-sync's (env STRIPE_SYNC_SCHEMA; default stripe_sync)")
	cmd.PersistentFlags().StringVar(&f.StripeAPIBase, "stripe-api-base", f.Getenv("STRIPE_API_BASE"),
		"Stripe API base URL, for stripe-mock or the emulator (env STRIPE_API_BASE; default Stripe's API)")

	cmd.AddCommand(
		migrate.NewCmdMigrate(f, nil),
		worker.NewCmdWorker(f, nil),
		enqueue.NewCmdEnqueue(f, nil),
		jobs.NewCmdJobs(f),
		retryfailed.NewCmdRetryFailed(f, nil),
		status.NewCmdStatus(f, nil),
		synclog.NewCmdLog(f, nil),
		stripeemulator.NewCmdStripeEmulator(f, nil),
		backfill.NewCmdBackfill(f, nil),
		reconcile.NewCmdReconcile(f, nil),
		ui.NewCmdUI(f, nil),
	)
	// cobra's completion command prints help and exits 0 for an unknown
	// shell; make it a usage error like every other bad argument.
	cmd.InitDefaultCompletionCmd()
	for _, c := range cmd.Commands() {
		if c.Name() == "completion" {
			c.Args = cobra.ArbitraryArgs
			c.RunE = func(_ *cobra.Command, args []string) error {
				return cmdutil.Usagef("completion: unknown shell %q (want bash, zsh, fish or powershell)", strings.Join(args, " "))
			}
		}
	}
	return cmd
}

// Main runs syncctl with args and returns the exit status: 0 success, 1
// failure, 2 bad usage or input. Errors are printed as one "syncctl: " line.
func Main(args []string, io *cmdutil.IOStreams, getenv func(string) string) int {
	f := cmdutil.NewFactory(io, getenv)
	defer f.Close()
	cmd := NewCmdRoot(f)
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	if isCobraUsage(err) {
		err = &cmdutil.UsageError{Err: err}
	}
	fmt.Fprintln(io.ErrOut, "syncctl: "+oneLine(err.Error()))
	return cmdutil.ExitCode(err)
}

// isCobraUsage recognises cobra's own usage errors, which it returns as plain
// errors: an unknown command or a wrong number of arguments.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
