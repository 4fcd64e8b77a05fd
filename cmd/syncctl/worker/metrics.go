package worker

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
)

// queueQueryTimeout bounds the queue query a scrape runs, so a slow
// database makes a scrape miss its queue gauges, not hang.
const queueQueryTimeout = 2 * time.Second

type metrics struct {
	registry       *prometheus.Registry
	stripeRequests *prometheus.CounterVec
	stripeLatency  *prometheus.HistogramVec
	limiterWait    prometheus.Histogram
	jobs           *prometheus.CounterVec
}

// newMetrics registers every series the worker serves; pool feeds the queue
// gauges, read afresh on each scrape.
func newMetrics(pool *pgxpool.Pool) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		stripeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stripe_sync_stripe_requests_total", Help: "Stripe API requests by operation and HTTP status (0: no response).",
		}, []string{"operation", "status"}),
		stripeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stripe_sync_stripe_request_duration_seconds", Help: "Stripe API request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"operation"}),
		limiterWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "stripe_sync_rate_limiter_wait_seconds",
			Help: "Time each Stripe request waited for the shared rate limit (0 when a token was free).",
			// Zero gets its own bucket: the share of requests that never
			// waited is the first thing to read off this histogram.
			Buckets: []float64{0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stripe_sync_jobs_total", Help: "Sync job attempts by kind and outcome.",
		}, []string{"kind", "outcome"}),
	}
	m.registry.MustRegister(m.stripeRequests, m.stripeLatency, m.limiterWait, m.jobs, newQueueCollector(pool),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeStripe(op string, status int, d time.Duration) {
	m.stripeRequests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.stripeLatency.WithLabelValues(op).Observe(d.Seconds())
}

func (m *metrics) observeWait(d time.Duration) { m.limiterWait.Observe(d.Seconds()) }

func (m *metrics) countJobs(events <-chan *river.Event) {
	for ev := range events {
		if ev.Job == nil {
			continue
		}
		m.jobs.WithLabelValues(ev.Job.Kind, string(ev.Kind)).Inc()
	}
}

// queueCollector reads the queue on every scrape: the queue is shared by
// every worker process, so any one of them reports the whole of it.
type queueCollector struct {
	pool   outbox.Querier
	depth  *prometheus.Desc
	oldest *prometheus.Desc
}

func newQueueCollector(pool outbox.Querier) *queueCollector {
	return &queueCollector{
		pool: pool,
		depth: prometheus.NewDesc("stripe_sync_queue_jobs",
			"Jobs in the stripe_sync queue by state, as River's table holds them now (all worker processes).",
			[]string{"state"}, nil),
		oldest: prometheus.NewDesc("stripe_sync_queue_oldest_waiting_seconds",
			"How long the oldest job ready to run has waited for a worker (0 when none waits). Ready: available, or scheduled or retryable with its time come (River's scheduler promotes those every few seconds).",
			nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), queueQueryTimeout)
	defer cancel()
	s, err := outbox.SummarizeQueue(ctx, c.pool)
	if err != nil {
		// The other series are still served (ContinueOnError); these two
		// are missing from this scrape rather than wrongly zero.
		ch <- prometheus.NewInvalidMetric(c.depth, fmt.Errorf("read queue depth: %w", err))
		return
	}
	for state, n := range s.ByState {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), string(state))
	}
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, s.OldestReady.Seconds())
}

type stoppable interface{ Stopped() <-chan struct{} }

// handler serves /metrics, /healthz (the process answers) and /readyz (the
// database answers, the River client runs, and no shutdown has begun).
func (m *metrics) handler(ping func(context.Context) error, client stoppable, draining *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
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
