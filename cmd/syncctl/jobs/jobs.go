// Package jobs is `syncctl jobs`, which only assembles its verbs.
package jobs

import (
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/jobs/cancel"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/jobs/list"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/jobs/show"
)

// NewCmdJobs returns `syncctl jobs` with its verbs.
func NewCmdJobs(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs <command>",
		Short: "Inspect and cancel sync jobs",
		// Runnable, so that cobra.NoArgs rejects an unknown verb (exit 2)
		// instead of printing help and succeeding.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(
		list.NewCmdList(f, nil),
		show.NewCmdShow(f, nil),
		cancel.NewCmdCancel(f, nil),
	)
	return cmd
}
