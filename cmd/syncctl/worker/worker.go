// Package worker is `syncctl worker`: River workers syncing until their
// context ends (root.Main ends it on SIGINT or SIGTERM), with metrics and
// health endpoints.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/dbconn"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient/pglimiter"
)

// Options are the worker's dependencies and flags.
type Options struct {
	// Factory gives the database pool, the Stripe key and the IO streams.
	Factory *cmdutil.Factory
	// Concurrency is how many jobs this process works at once.
	Concurrency int
	// Rate is the Stripe requests per second shared by every worker on the
	// database; 0 means DefaultRate of the key.
	Rate float64
	// EndpointRate, when positive, also limits each Stripe endpoint (method
	// and route template), as Stripe does; 0 turns it off. Defaults to
	// pglimiter.DefaultEndpointRate.
	EndpointRate float64
	// AccountRate, when positive, also limits each connected account.
	AccountRate float64
	// MetricsAddr is where /metrics, /healthz and /readyz are served; empty
	// turns them off.
	MetricsAddr string
	// ShutdownTimeout is how long jobs in flight may finish after SIGTERM.
	ShutdownTimeout time.Duration
	// JobTimeout bounds one attempt of a job.
	JobTimeout time.Duration
	// RescueStuckAfter is when a job left running by a killed process is
	// returned to the queue; 0 means JobTimeout + jobs.DefaultRescueMargin.
	RescueStuckAfter time.Duration
	// LogRetention is how long stripe_sync_log rows are kept.
	LogRetention time.Duration
	// LogFormat is "text" or "json".
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error".
	LogLevel string
	// Currency is the currency of every Price.
	Currency string
	// Ready, when set, is called once the worker is fetching jobs, with the
	// metrics address (tests listen on port 0).
	Ready func(metricsAddr string)
	// WebhookAddr is where POST /stripe/webhooks takes Stripe's Connect
	// events (signing secret: STRIPE_WEBHOOK_SECRET); empty turns it off.
	WebhookAddr string
	// ReconcileEvery is how often every account is reconciled; 0 turns it off.
	ReconcileEvery time.Duration
	// WebhookReady, when set, receives the webhook address once it listens.
	WebhookReady func(addr string)
}

// NewCmdWorker returns the command; runF replaces the run in tests.
func NewCmdWorker(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run sync workers until SIGINT/SIGTERM, then drain gracefully",
		Long: `Works stripe_sync jobs: each reads its entity's current row and makes Stripe match
it. Several worker processes may share one database. On SIGINT/SIGTERM the worker
stops fetching, lets jobs in flight finish for --shutdown-timeout, then cancels
the rest (they are retried). Needs DATABASE_URL and STRIPE_SECRET_KEY.

The Stripe rate limit (--rate, --endpoint-rate, --account-rate) is one limit for
all worker processes on the database, held in the table stripe_sync_rate_limit;
requests go one at a time, paced 3% below --rate, and each endpoint (method and
route, as Stripe counts them) 3% below --endpoint-rate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Concurrency < 1 {
				return cmdutil.Usagef("--concurrency must be at least 1")
			}
			if opts.Rate < 0 || opts.AccountRate < 0 || opts.EndpointRate < 0 {
				return cmdutil.Usagef("--rate, --endpoint-rate and --account-rate must not be negative")
			}
			if opts.JobTimeout <= 0 {
				return cmdutil.Usagef("--job-timeout must be positive")
			}
			if opts.RescueStuckAfter != 0 && opts.RescueStuckAfter <= opts.JobTimeout {
				// A live attempt would be rescued and run twice at once.
				return cmdutil.Usagef("--rescue-stuck-after must exceed --job-timeout (%s)", opts.JobTimeout)
			}
			if opts.LogRetention <= 0 {
				return cmdutil.Usagef("--log-retention must be positive")
			}
			if opts.LogFormat != "text" && opts.LogFormat != "json" {
				return cmdutil.Usagef("--log-format must be text or json, not %q", opts.LogFormat)
			}
			if opts.ReconcileEvery < 0 {
				return cmdutil.Usagef("--reconcile-every must not be negative")
			}
			if _, err := parseLevel(opts.LogLevel); err != nil {
				return &cmdutil.UsageError{Err: err}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return workerRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().IntVar(&opts.Concurrency, "concurrency", 10, "jobs worked at once by this process")
	cmd.Flags().Float64Var(&opts.Rate, "rate", 0, "Stripe requests per second, shared by every worker on this database (default 25 for test keys, 100 for live keys)")
	cmd.Flags().Float64Var(&opts.EndpointRate, "endpoint-rate", pglimiter.DefaultEndpointRate,
		"Stripe requests per second per endpoint (method and route), shared by every worker (0: no per-endpoint limit)")
	cmd.Flags().Float64Var(&opts.AccountRate, "account-rate", 0, "Stripe requests per second per connected account, shared by every worker (0: no per-account limit)")
	cmd.Flags().StringVar(&opts.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "address for /metrics, /healthz and /readyz (empty: off)")
	cmd.Flags().DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long jobs in flight may finish after SIGTERM")
	cmd.Flags().DurationVar(&opts.JobTimeout, "job-timeout", jobs.DefaultJobTimeout, "how long one attempt of a job may run before it is cancelled and retried")
	cmd.Flags().DurationVar(&opts.RescueStuckAfter, "rescue-stuck-after", 0, "when a job left running by a killed worker is retried (default --job-timeout + "+jobs.DefaultRescueMargin.String()+")")
	cmd.Flags().DurationVar(&opts.LogRetention, "log-retention", 30*24*time.Hour, "how long stripe_sync_log rows are kept before the hourly prune deletes them")
	cmd.Flags().StringVar(&opts.LogFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&opts.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&opts.Currency, "currency", "aud", "currency of every Price")
	cmd.Flags().StringVar(&opts.WebhookAddr, "webhook-addr", "", "address for Stripe's Connect webhooks on POST /stripe/webhooks, signed with STRIPE_WEBHOOK_SECRET (empty: off)")
	cmd.Flags().DurationVar(&opts.ReconcileEvery, "reconcile-every", 24*time.Hour, "how often every connected account is compared with the database and drift fixed, on the bulk lane (0: off)")
	return cmd
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

// DefaultRate is Stripe's documented limit for the key's mode.
func DefaultRate(key string) float64 {
	if strings.HasPrefix(key, "sk_live_") || strings.HasPrefix(key, "rk_live_") {
		return 100
	}
	return 25
}

func workerRun(ctx context.Context, opts *Options) error {
	io := opts.Factory.IO
	level, _ := parseLevel(opts.LogLevel)
	handlerOpts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	if opts.LogFormat == "json" {
		logger = slog.New(slog.NewJSONHandler(io.ErrOut, handlerOpts))
	} else {
		logger = slog.New(slog.NewTextHandler(io.ErrOut, handlerOpts))
	}

	key, err := opts.Factory.StripeSecretKey()
	if err != nil {
		return err
	}
	rate := opts.Rate
	if rate == 0 {
		rate = DefaultRate(key)
	}
	// Each job in flight holds a connection for its round (its session
	// advisory locks live there; no transaction is open while it calls
	// Stripe), River needs a few for fetching, completing and leadership
	// besides, and the worker's presence holds one.
	opts.Factory.PoolMaxConns = int32(opts.Concurrency + 6)
	pool, err := opts.Factory.Pool(ctx, "syncctl worker")
	if err != nil {
		return err
	}
	// Entity locks are session advisory locks and River wakes on LISTEN:
	// behind a transaction-mode pooler both would silently stop working.
	if err := dbconn.CheckSessionPinned(ctx, pool); err != nil {
		if errors.Is(err, dbconn.ErrTransactionPooler) {
			return &cmdutil.UsageError{Err: err}
		}
		return err
	}
	limiterPool, err := openLimiterPool(ctx, opts.Factory)
	if err != nil {
		return err
	}
	defer limiterPool.Close()

	metrics := newMetrics(pool)
	limiterOpts := pglimiter.Options{Rate: rate, EndpointRate: opts.EndpointRate, AccountRate: opts.AccountRate, OnWait: metrics.observeWait}
	sc, err := opts.Factory.StripeClient(cmdutil.StripeOptions{
		Limiter:  pglimiter.New(limiterPool, limiterOpts),
		Logger:   logger,
		Observer: metrics.observeStripe,
	})
	if err != nil {
		return err
	}
	client, err := jobs.NewClient(&jobs.Deps{Pool: pool, Schema: opts.Factory.SchemaName(), Stripe: sc, Currency: opts.Currency, Logger: logger},
		jobs.Options{
			Concurrency:          opts.Concurrency,
			JobTimeout:           opts.JobTimeout,
			RescueStuckJobsAfter: opts.RescueStuckAfter,
			LogRetention:         opts.LogRetention,
			ReconcileEvery:       opts.ReconcileEvery,
		})
	if err != nil {
		return err
	}

	events, cancelEvents := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
		river.EventKindJobCancelled, river.EventKindJobSnoozed)
	defer cancelEvents()
	go metrics.countJobs(events)

	stopWebhooks, err := serveWebhooks(opts, pool, client, logger, metrics.registry)
	if err != nil {
		return err
	}
	defer stopWebhooks()

	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	// `syncctl status` counts the workers by their presence; River's leader
	// lease would not tell ours from any River client on the schema.
	presence, err := outbox.Announce(ctx, pool, outbox.PresenceOptions{
		OnError: func(err error) { logger.Warn("worker presence lost; retrying", slog.Any("error", err)) },
	})
	if err != nil {
		_ = client.StopAndCancel(context.Background())
		return err
	}
	defer presence.Close()
	attrs := []any{slog.Int("concurrency", opts.Concurrency), slog.Float64("rate", rate),
		slog.Float64("endpoint_rate", opts.EndpointRate), slog.Duration("job_timeout", opts.JobTimeout),
		slog.Duration("log_retention", opts.LogRetention)}
	if opts.AccountRate > 0 {
		attrs = append(attrs, slog.Float64("account_rate", opts.AccountRate))
	}
	logger.Info("worker started", attrs...)

	var draining atomic.Bool
	metricsAddr := ""
	if opts.MetricsAddr != "" {
		ln, err := net.Listen("tcp", opts.MetricsAddr)
		if err != nil {
			_ = client.StopAndCancel(context.Background())
			return fmt.Errorf("metrics: listen on %s: %w", opts.MetricsAddr, err)
		}
		metricsAddr = ln.Addr().String()
		srv := &http.Server{Handler: metrics.handler(pool.Ping, client, &draining), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		logger.Info("serving /metrics, /healthz and /readyz", slog.String("addr", metricsAddr))
	}
	if opts.Ready != nil {
		opts.Ready(metricsAddr)
	}

	<-ctx.Done()
	draining.Store(true)
	logger.Info("shutting down: finishing jobs in flight", slog.Duration("timeout", opts.ShutdownTimeout))
	softCtx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := client.Stop(softCtx); err != nil {
		logger.Warn("jobs still running at the shutdown timeout; cancelling them (they will be retried)")
		hardCtx, cancelHard := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancelHard()
		if err := client.StopAndCancel(hardCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("stop: %w", err)
		}
	}
	logger.Info("worker stopped")
	return nil
}

// openLimiterPool opens the rate limiter's own small pool. A job holds a
// connection of the main pool (its entity locks) while it calls Stripe; were
// the limiter to take its token from that pool too, jobs filling it would
// each wait for a connection none of them will give back.
func openLimiterPool(ctx context.Context, f *cmdutil.Factory) (*pgxpool.Pool, error) {
	pool, err := dbconn.Open(ctx, f.DatabaseURL, dbconn.Options{
		ApplicationName: "syncctl worker rate limiter", Schema: f.SchemaName(), MaxConns: 4, StatementTimeout: 10 * time.Second,
	})
	if errors.Is(err, dbconn.ErrBadURL) {
		return nil, cmdutil.Usagef("DATABASE_URL is not a valid PostgreSQL connection string")
	}
	if err != nil {
		return nil, fmt.Errorf("rate limiter: %w", err)
	}
	return pool, nil
}
