package jobs

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Deps are what the workers need.
type Deps struct {
	// Pool is the database holding the host tables, River's and ours. Its
	// connections must have the sync schema first on their search_path
	// (internal/dbconn does that).
	Pool *pgxpool.Pool
	// Schema is the sync schema holding River's tables. Defaults to
	// outbox.DefaultSchema.
	Schema string
	// Stripe is the client every Stripe request goes through.
	Stripe stripeclient.Client
	// Currency is the lower-case ISO currency of every Price. Defaults to
	// "aud".
	Currency string
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Clock defaults to time.Now.
	Clock func() time.Time
}

func (d *Deps) runner() *runner {
	return &runner{pool: d.Pool, logger: d.Logger, now: d.Clock}
}

// Options tune the River client that runs the workers.
type Options struct {
	// Concurrency is how many jobs this process works at once. Defaults to
	// 10. The shared Stripe rate limit, not this, is the throughput ceiling.
	Concurrency int
	// JobTimeout bounds one attempt. Defaults to 2 minutes: a sync is a few
	// Stripe calls, each with its own 30 s HTTP timeout.
	JobTimeout time.Duration
	// RescueStuckJobsAfter is when River's rescuer returns a job left running
	// by a killed process. It must exceed JobTimeout (so a live attempt is
	// never rescued); defaults to JobTimeout + 1 minute, so a kill -9 delays
	// an entity by minutes, not River's default hour.
	RescueStuckJobsAfter time.Duration
	// FetchCooldown is the least time between two fetches by one producer.
	// Defaults to 10 ms: trigger inserts notify the producer, and with
	// River's default 100 ms a burst of single changes would wait on it.
	FetchCooldown time.Duration
	// FetchPollInterval is how often a producer polls without a
	// notification (snoozed and retried jobs send none). Defaults to 250 ms.
	FetchPollInterval time.Duration
	// ResyncInterval is how often the resync job looks for entities whose
	// latest change no job has handled. Defaults to 1 minute.
	ResyncInterval time.Duration
	// CompletedJobRetention is how long completed jobs stay in river_job for
	// inspection. Defaults to 24 hours (River's default), deliberately: a
	// completed job is no longer in the unique states, so keeping it longer
	// dedupes nothing; it only grows the table every fetch and every trigger
	// insert's unique index works against, at one row per change.
	// stripe_sync_log keeps the longer history (LogRetention). River's own
	// defaults stay for the others: cancelled jobs 24 hours (fixing the row
	// enqueues a new job anyway) and discarded jobs 7 days, the window in
	// which `syncctl retry-failed` can bring them back.
	CompletedJobRetention time.Duration
	// LogRetention is how long stripe_sync_log rows are kept; an hourly
	// periodic job deletes older ones. Defaults to 30 days.
	LogRetention time.Duration
	// ReconcileEvery is how often the scheduled reconcile compares every
	// reachable connected account with the database and fixes drift, on the
	// bulk lane. Defaults to 0: never (`syncctl worker` defaults it to 24h).
	ReconcileEvery time.Duration
}

func (o *Options) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.JobTimeout <= 0 {
		o.JobTimeout = 2 * time.Minute
	}
	if o.RescueStuckJobsAfter <= o.JobTimeout {
		o.RescueStuckJobsAfter = o.JobTimeout + time.Minute
	}
	if o.FetchCooldown <= 0 {
		o.FetchCooldown = 10 * time.Millisecond
	}
	if o.FetchPollInterval <= 0 {
		o.FetchPollInterval = 250 * time.Millisecond
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = time.Minute
	}
	if o.CompletedJobRetention <= 0 {
		o.CompletedJobRetention = 24 * time.Hour
	}
	if o.LogRetention <= 0 {
		o.LogRetention = 30 * 24 * time.Hour
	}
}

// NewClient returns a River client (not yet started) that works every sync
// job kind on outbox.Queue, plus the periodic resync and log-prune jobs.
func NewClient(deps *Deps, opts Options) (*river.Client[pgx.Tx], error) {
	if deps.Pool == nil || deps.Stripe == nil {
		return nil, fmt.Errorf("jobs: Deps.Pool and Deps.Stripe are required")
	}
	if deps.Schema == "" {
		deps.Schema = outbox.DefaultSchema
	}
	if deps.Currency == "" {
		deps.Currency = "aud"
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = time.Now
	}
	opts.defaults()
	deps.Stripe = guardAccounts(deps)

	workers := river.NewWorkers()
	river.AddWorker(workers, &EventWorker{deps: deps})
	river.AddWorker(workers, &TicketWorker{deps: deps})
	river.AddWorker(workers, &OrgWorker{deps: deps})
	river.AddWorker(workers, &ResyncWorker{deps: deps})
	river.AddWorker(workers, &PruneLogWorker{deps: deps, retention: opts.LogRetention})
	drift := driftWorkers(workers, deps, opts)

	return river.NewClient(riverpgxv5.New(deps.Pool), &river.Config{
		CompletedJobRetentionPeriod: opts.CompletedJobRetention,
		FetchCooldown:               opts.FetchCooldown,
		FetchPollInterval:           opts.FetchPollInterval,
		JobTimeout:                  opts.JobTimeout,
		Logger:                      deps.Logger,
		PeriodicJobs: append([]*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(opts.ResyncInterval),
				func() (river.JobArgs, *river.InsertOpts) { return ResyncArgs{}, nil },
				&river.PeriodicJobOpts{ID: "stripe_sync_resync", RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(pruneInterval),
				func() (river.JobArgs, *river.InsertOpts) { return PruneLogArgs{}, nil },
				&river.PeriodicJobOpts{ID: "stripe_sync_prune_log", RunOnStart: true}),
		}, drift...),
		Schema:               deps.Schema,
		Queues:               map[string]river.QueueConfig{outbox.Queue: {MaxWorkers: opts.Concurrency}},
		RescueStuckJobsAfter: opts.RescueStuckJobsAfter,
		Workers:              workers,
	})
}

// nextRetry is River's attempt^4 seconds backoff, capped at 10 minutes.
func nextRetry(attempt int) time.Time {
	backoff := time.Duration(attempt*attempt*attempt*attempt) * time.Second
	return time.Now().Add(min(backoff, 10*time.Minute))
}
