// Package stripeemulator is `syncctl stripe-emulator`: the built-in stateful
// Stripe emulator as a server, for the demo and multi-process tests.
package stripeemulator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Options are the emulator command's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	Addr    string
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
	return cmd
}

func emulatorRun(ctx context.Context, opts *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	io := opts.Factory.IO
	logger := slog.New(slog.NewTextHandler(io.ErrOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	emu := stripeclient.NewEmulator(stripeclient.EmulatorOptions{
		SecretKey: opts.Factory.Getenv("STRIPE_SECRET_KEY"),
		Logger:    logger,
	})
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return &cmdutil.UsageError{Err: fmt.Errorf("listen on %s: %w", opts.Addr, err)}
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(io.ErrOut, "stripe emulator listening on http://%s\n", ln.Addr())
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
