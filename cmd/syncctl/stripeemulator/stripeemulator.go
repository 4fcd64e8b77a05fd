// Package stripeemulator is `syncctl stripe-emulator`: the built-in stateful
// Stripe emulator as a server, for the demo and multi-process tests.
package stripeemulator

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// Options are the emulator command's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	Addr    string
	// WebhookURL, when set, receives an event for every change, signed with
	// STRIPE_WEBHOOK_SECRET.
	WebhookURL string
	// Ready, when set, receives the listening address (tests use port 0).
	Ready func(addr string)
}

// NewCmdStripeEmulator returns the command; runF replaces the run in tests.
func NewCmdStripeEmulator(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "stripe-emulator",
		Short: "Serve the built-in stateful Stripe emulator (Products, Prices, faults under /_emulator/)",
		Long: `Serves an in-memory imitation of Stripe's Products and Prices API, scoped by the
Stripe-Account header, with idempotency keys and injectable faults. If
STRIPE_SECRET_KEY is set, only that key is accepted. Point the worker at it with
STRIPE_API_BASE=http://ADDR.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return emulatorRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Addr, "addr", "127.0.0.1:12111", "address to listen on")
	cmd.Flags().StringVar(&opts.WebhookURL, "webhook-url", "", "send signed webhook events (secret: STRIPE_WEBHOOK_SECRET) to this URL, e.g. the worker's http://ADDR/stripe/webhooks")
	return cmd
}

func emulatorRun(ctx context.Context, opts *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	io := opts.Factory.IO
	logger := slog.New(slog.NewTextHandler(io.ErrOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	emu := emulator.New(emulator.Options{
		SecretKey: opts.Factory.Getenv("STRIPE_SECRET_KEY"),
		Logger:    logger,
	})
	if opts.WebhookURL != "" {
		emu.SetWebhook(opts.WebhookURL, opts.Factory.Getenv("STRIPE_WEBHOOK_SECRET"))
	}
	return cmdutil.Serve(ctx, opts.Addr, emu, func(addr string) {
		fmt.Fprintf(io.ErrOut, "stripe emulator listening on http://%s\n", addr)
		if opts.Ready != nil {
			opts.Ready(addr)
		}
	})
}
