package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// WebhookPath is where the worker takes Stripe's Connect webhook events.
const WebhookPath = "/stripe/webhooks"

// maxWebhookBody caps an event's body; Stripe's are a few kilobytes.
const maxWebhookBody = 1 << 20

// webhookSecret returns STRIPE_WEBHOOK_SECRET, which, like the API key, is
// read from the environment only, so it cannot show in `ps`.
func webhookSecret(opts *Options) (string, error) {
	secret := strings.TrimSpace(opts.Factory.Getenv("STRIPE_WEBHOOK_SECRET"))
	if secret == "" {
		return "", cmdutil.Usagef("--webhook-addr needs STRIPE_WEBHOOK_SECRET (the endpoint's signing secret, whsec_...)")
	}
	return secret, nil
}

// serveWebhooks serves POST /stripe/webhooks on opts.WebhookAddr when it is
// set, and registers the drift series on reg either way. The returned stop
// closes the server.
func serveWebhooks(opts *Options, pool *pgxpool.Pool, client *river.Client[pgx.Tx], logger *slog.Logger, reg *prometheus.Registry) (func(), error) {
	received := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "stripe_sync_webhook_events_total",
		Help: "Stripe webhook deliveries by what the receiver did (enqueued, duplicate, own_write, not_ours, ignored, bad_signature, error).",
	}, []string{"disposition"})
	reg.MustRegister(received, newDriftCollector(pool))
	if opts.WebhookAddr == "" {
		return func() {}, nil
	}
	secret, err := webhookSecret(opts)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.WebhookAddr)
	if err != nil {
		return nil, fmt.Errorf("webhooks: listen on %s: %w", opts.WebhookAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+WebhookPath, &webhookHandler{pool: pool, client: client, secret: secret, logger: logger, received: received})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("serving Stripe webhooks", slog.String("addr", ln.Addr().String()), slog.String("path", WebhookPath))
	if opts.WebhookReady != nil {
		opts.WebhookReady(ln.Addr().String())
	}
	return func() { _ = srv.Close() }, nil
}

// webhookHandler verifies a delivery, records it and answers; the work
// happens in the job it enqueues, so Stripe gets its 2xx in milliseconds.
type webhookHandler struct {
	pool     *pgxpool.Pool
	client   *river.Client[pgx.Tx]
	secret   string
	logger   *slog.Logger
	received *prometheus.CounterVec
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	payload, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil || len(payload) > maxWebhookBody {
		http.Error(w, "unreadable or oversized body", http.StatusBadRequest)
		return
	}
	ev, err := stripeclient.ParseWebhook(payload, r.Header.Get("Stripe-Signature"), h.secret)
	if err != nil {
		// Stripe shows our answer in the Dashboard's delivery log; a 400
		// there means the endpoint's secret and STRIPE_WEBHOOK_SECRET differ.
		h.received.WithLabelValues("bad_signature").Inc()
		h.logger.Warn("refused a webhook delivery", slog.String("error", err.Error()), slog.String("remote", r.RemoteAddr))
		msg := "not a Stripe event"
		if errors.Is(err, stripeclient.ErrWebhookSignature) {
			msg = "webhook signature verification failed"
		}
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	disposition, err := jobs.ReceiveWebhook(r.Context(), h.pool, h.client, ev)
	if err != nil {
		// A 5xx makes Stripe deliver the event again later.
		h.received.WithLabelValues("error").Inc()
		h.logger.Error("could not record a webhook event", slog.String("stripe_event", ev.ID), slog.String("error", err.Error()))
		http.Error(w, "could not record the event", http.StatusInternalServerError)
		return
	}
	h.received.WithLabelValues(string(disposition)).Inc()
	h.logger.Debug("webhook event received", slog.String("stripe_event", ev.ID), slog.String("type", ev.Type),
		slog.String("account", ev.Account), slog.String("disposition", string(disposition)))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"received": ev.ID, "disposition": string(disposition)})
}

// driftCollector reads, on every scrape, what every worker process shares:
// the accounts marked unreachable and the latest scheduled reconcile.
type driftCollector struct {
	pool        *pgxpool.Pool
	unreachable *prometheus.Desc
	found       *prometheus.Desc
	fixed       *prometheus.Desc
	lastRun     *prometheus.Desc
}

func newDriftCollector(pool *pgxpool.Pool) *driftCollector {
	return &driftCollector{
		pool: pool,
		unreachable: prometheus.NewDesc("stripe_sync_account_unreachable",
			"1 for each connected account marked unreachable (deauthorised the platform or answered 403 account_invalid); its jobs are skipped.",
			[]string{"account"}, nil),
		found: prometheus.NewDesc("stripe_sync_reconcile_drift_found",
			"Differences the latest scheduled reconcile of each account found, summed over accounts.", nil, nil),
		fixed: prometheus.NewDesc("stripe_sync_reconcile_drift_fixed",
			"Differences the latest scheduled reconcile of each account fixed (jobs enqueued, extras archived), summed over accounts.", nil, nil),
		lastRun: prometheus.NewDesc("stripe_sync_reconcile_last_run_timestamp_seconds",
			"When the latest scheduled reconcile of an account finished (0: never).", nil, nil),
	}
}

func (c *driftCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.unreachable
	ch <- c.found
	ch <- c.fixed
	ch <- c.lastRun
}

func (c *driftCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueQueryTimeout)
	defer cancel()
	accounts, err := jobs.UnreachableAccounts(ctx, c.pool)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.unreachable, err)
	}
	for _, a := range accounts {
		ch <- prometheus.MustNewConstMetric(c.unreachable, prometheus.GaugeValue, 1, a.Account)
	}
	stats, err := jobs.LatestReconcile(ctx, c.pool)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.found, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.found, prometheus.GaugeValue, float64(stats.DriftFound))
	ch <- prometheus.MustNewConstMetric(c.fixed, prometheus.GaugeValue, float64(stats.DriftFixed))
	last := 0.0
	if !stats.LastRun.IsZero() {
		last = float64(stats.LastRun.Unix())
	}
	ch <- prometheus.MustNewConstMetric(c.lastRun, prometheus.GaugeValue, last)
}
