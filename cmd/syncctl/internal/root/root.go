// Package root assembles syncctl's commands and maps their errors to exit
// codes in one place.
package root

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

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
	"github.com/lodgetix/stripe-sync/cmd/syncctl/version"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/worker"
	"github.com/lodgetix/stripe-sync/internal/dbconn"
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
	// Every flag also reads its environment variable (cmdutil.EnvName), once
	// the command line is parsed and before the command checks its options.
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return cmdutil.ApplyEnv(c, f.Getenv) }
	cmd.PersistentFlags().StringVar(&f.DatabaseURL, "database-url", "", "PostgreSQL connection string")
	cmdutil.SetEnvName(cmd.PersistentFlags(), "database-url", "DATABASE_URL")
	cmd.PersistentFlags().StringVar(&f.Schema, "schema", "",
		"schema holding River's tables and stripe-sync's (default "+dbconn.DefaultSchema+")")
	cmdutil.SetEnvName(cmd.PersistentFlags(), "schema", "STRIPE_SYNC_SCHEMA")
	cmd.PersistentFlags().StringVar(&f.StripeAPIBase, "stripe-api-base", "",
		"Stripe API base URL, for stripe-mock or the emulator (default Stripe's API)")
	cmdutil.SetEnvName(cmd.PersistentFlags(), "stripe-api-base", "STRIPE_API_BASE")

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
		version.NewCmdVersion(f, nil),
	)
	if info, ok := debug.ReadBuildInfo(); ok {
		cmd.Version = version.String(info)
	} else {
		cmd.Version = version.String(nil)
	}
	// --version prints what `syncctl version` prints.
	cmd.SetVersionTemplate("{{.Version}}\n")
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
	cmdutil.DescribeEnv(cmd)
	return cmd
}

// Main runs syncctl with args and returns the exit status (see Run). It is
// the one place that handles signals: the first SIGINT or SIGTERM cancels
// the command's context, so a worker drains and a server shuts down; a
// second one ends the process at once, as if nothing handled it.
func Main(args []string, io *cmdutil.IOStreams, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return Run(ctx, args, io, getenv)
}

// Run runs syncctl with args until ctx ends and returns the exit status: 0
// success, 1 failure, 2 bad usage or input. Errors are printed as one
// "syncctl: " line.
func Run(ctx context.Context, args []string, io *cmdutil.IOStreams, getenv func(string) string) int {
	f := cmdutil.NewFactory(io, getenv)
	defer f.Close()
	cmd := NewCmdRoot(f)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
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
