// Package worker is `syncctl worker`: River workers syncing until SIGINT or
// SIGTERM, with metrics and health endpoints.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Options are the worker's dependencies and flags.
type Options struct {
	Factory         *cmdutil.Factory
	Concurrency     int
	Rate            float64
	AccountRate     float64
	MetricsAddr     string
	ShutdownTimeout time.Duration
	LogFormat       string
	LogLevel        string
	Currency        string
	// Ready, when set, is called once the worker is fetching jobs, with the
	// metrics address (tests listen on port 0).
	Ready func(metricsAddr string)
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
the rest (they are retried). Needs DATABASE_URL and STRIPE_SECRET_KEY.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Concurrency < 1 {
				return cmdutil.Usagef("--concurrency must be at least 1")
			}
			if opts.Rate < 0 || opts.AccountRate < 0 {
				return cmdutil.Usagef("--rate and --account-rate must not be negative")
			}
			if opts.LogFormat != "text" && opts.LogFormat != "json" {
				return cmdutil.Usagef("--log-format must be text or json, not %q", opts.LogFormat)
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
	cmd.Flags().Float64Var(&opts.Rate, "rate", 0, "Stripe requests per second (default 25 for test keys, 100 for live keys)")
	cmd.Flags().Float64Var(&opts.AccountRate, "account-rate", 0, "Stripe requests per second per connected account (0: no per-account limit)")
	cmd.Flags().StringVar(&opts.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "address for /metrics, /healthz and /readyz (empty: off)")
	cmd.Flags().DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long jobs in flight may finish after SIGTERM")
	cmd.Flags().StringVar(&opts.LogFormat, "log-format", "text", "log format: text or json")
	cmd.Flags().StringVar(&opts.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&opts.Currency, "currency", "aud", "currency of every Price")
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
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

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
	metrics := newMetrics()
	sc, err := opts.Factory.StripeClient(cmdutil.StripeOptions{
		Limiter:  stripeclient.NewLocalLimiter(rate, max(1, int(rate/5))),
		Logger:   logger,
		Observer: metrics.observeStripe,
	})
	if err != nil {
		return err
	}
	pool, err := opts.Factory.Pool(ctx, "syncctl worker")
	if err != nil {
		return err
	}
	client, err := jobs.NewClient(&jobs.Deps{Pool: pool, Stripe: sc, Currency: opts.Currency, Logger: logger},
		jobs.Options{Concurrency: opts.Concurrency})
	if err != nil {
		return err
	}

	events, cancelEvents := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed,
		river.EventKindJobCancelled, river.EventKindJobSnoozed)
	defer cancelEvents()
	go metrics.countJobs(events)

	if err := client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start workers: %w", err)
	}
	logger.Info("worker started", slog.Int("concurrency", opts.Concurrency), slog.Float64("rate", rate))

	metricsAddr := ""
	if opts.MetricsAddr != "" {
		ln, err := net.Listen("tcp", opts.MetricsAddr)
		if err != nil {
			_ = client.StopAndCancel(context.Background())
			return fmt.Errorf("metrics: listen on %s: %w", opts.MetricsAddr, err)
		}
		metricsAddr = ln.Addr().String()
		srv := &http.Server{Handler: metrics.handler(pool.Ping, client), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		logger.Info("serving /metrics, /healthz and /readyz", slog.String("addr", metricsAddr))
	}
	if opts.Ready != nil {
		opts.Ready(metricsAddr)
	}

	<-ctx.Done()
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

type metrics struct {
	registry       *prometheus.Registry
	stripeRequests *prometheus.CounterVec
	stripeLatency  *prometheus.HistogramVec
	jobs           *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		stripeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stripe_sync_stripe_requests_total", Help: "Stripe API requests by operation and HTTP status (0: no response).",
		}, []string{"operation", "status"}),
		stripeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stripe_sync_stripe_request_duration_seconds", Help: "Stripe API request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"operation"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stripe_sync_jobs_total", Help: "Sync job attempts by kind and outcome.",
		}, []string{"kind", "outcome"}),
	}
	m.registry.MustRegister(m.stripeRequests, m.stripeLatency, m.jobs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeStripe(op string, status int, d time.Duration) {
	m.stripeRequests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.stripeLatency.WithLabelValues(op).Observe(d.Seconds())
}

func (m *metrics) countJobs(events <-chan *river.Event) {
	for ev := range events {
		if ev.Job == nil {
			continue
		}
		m.jobs.WithLabelValues(ev.Job.Kind, string(ev.Kind)).Inc()
	}
}

type stoppable interface{ Stopped() <-chan struct{} }

func (m *metrics) handler(ping func(context.Context) error, client stoppable) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-client.Stopped():
			http.Error(w, "river client stopped", http.StatusServiceUnavailable)
			return
		default:
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ping(ctx); err != nil {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}
