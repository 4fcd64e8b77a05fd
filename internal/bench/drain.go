package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
)

// The fetch settings every drain uses, sync and baselines alike. They are
// jobs.Options' defaults, which is what `syncctl worker` runs with: a 10 ms
// cooldown lets a producer fetch again soon after a NOTIFY (River's default
// 100 ms caps a drain near 10 x Concurrency jobs/s and delays single
// changes), and the 250 ms poll only matters for jobs that send no NOTIFY
// (snoozed, retried). A 1 ms cooldown would raise River's own no-op ceiling
// but it is not what production runs.
const (
	fetchCooldown     = 10 * time.Millisecond
	fetchPollInterval = 250 * time.Millisecond
)

// drainResult is one drain of a backlog.
type drainResult struct {
	jobs    int
	elapsed time.Duration
	// trips and riverTrips are the pool's round trips from the client's
	// start to the last completion (see Counter).
	trips      int64
	riverTrips int64
	prepares   int64
	// cpu is the CPU this process and the server used during the drain.
	cpu cpuSample
}

func (d drainResult) perSecond() float64 { return float64(d.jobs) / d.elapsed.Seconds() }

func (d drainResult) tripsPerJob() float64 { return float64(d.trips) / float64(d.jobs) }

// serverMsPerJob is the server's CPU per job in milliseconds, NaN when the
// server is not on this machine.
func (d drainResult) serverMsPerJob() float64 {
	if !d.cpu.serverOK {
		return math.NaN()
	}
	return ms(d.cpu.server) / float64(d.jobs)
}

func (d drainResult) processMsPerJob() float64 { return ms(d.cpu.process) / float64(d.jobs) }

// drainSettings are shared by the three drains of one repetition.
type drainSettings struct {
	jobs        int
	concurrency int
	maxConns    int32
}

func (s drainSettings) riverConfig(workers *river.Workers) *river.Config {
	return &river.Config{
		Schema:            outbox.DefaultSchema,
		FetchCooldown:     fetchCooldown,
		FetchPollInterval: fetchPollInterval,
		JobTimeout:        2 * time.Minute,
		Queues:            map[string]river.QueueConfig{outbox.Queue: {MaxWorkers: s.concurrency}},
		Workers:           workers,
	}
}

// drainSync drains s.jobs first syncs of events (each creates its Product)
// with the real workers against a zero-latency emulator, with no rate limit.
// profile, when set, runs around the drain (a CPU profile).
func (b *runner) drainSync(ctx context.Context, s drainSettings, profile func() func()) (drainResult, error) {
	var res drainResult
	err := b.withDB(ctx, "drain_sync", poolConfig{app: "bench drain sync", maxConns: s.maxConns, counter: &Counter{}},
		func(db *database) error {
			pool := db.Pool
			if err := createOrg(ctx, pool); err != nil {
				return err
			}
			// The triggers enqueue one job per event, as the app's inserts would.
			if err := insertEvents(ctx, pool, s.jobs, true); err != nil {
				return err
			}
			if err := vacuumAnalyze(ctx, pool); err != nil {
				return err
			}
			stripe, err := newStripeServer(nil)
			if err != nil {
				return err
			}
			defer stripe.Close()
			client, err := jobs.NewClient(&jobs.Deps{Pool: pool, Stripe: stripe.client}, jobs.Options{
				Concurrency: s.concurrency, FetchCooldown: fetchCooldown, FetchPollInterval: fetchPollInterval,
			})
			if err != nil {
				return err
			}
			var stop func()
			if profile != nil {
				stop = profile()
			}
			res, err = drain(ctx, client, db, outbox.KindEvent.JobKind(), s.jobs)
			if stop != nil {
				stop()
			}
			if err != nil {
				return err
			}
			if got := len(stripe.emu.Products(account)); got != s.jobs {
				return fmt.Errorf("drain made %d Products, want %d", got, s.jobs)
			}
			return nil
		})
	return res, err
}

// noopArgs is River's own ceiling: a job that does nothing.
type noopArgs struct{}

func (noopArgs) Kind() string { return "bench_noop" }

// minimalArgs is the least a sync job could do in the database.
type minimalArgs struct {
	EventID string `json:"event_id"`
}

func (minimalArgs) Kind() string { return "bench_minimal" }

// drainNoop drains s.jobs jobs whose worker returns nil at once.
func (b *runner) drainNoop(ctx context.Context, s drainSettings) (drainResult, error) {
	var res drainResult
	err := b.withDB(ctx, "drain_noop", poolConfig{app: "bench drain noop", maxConns: s.maxConns, counter: &Counter{}},
		func(db *database) error {
			pool := db.Pool
			workers := river.NewWorkers()
			river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[noopArgs]) error { return nil }))
			client, err := river.NewClient(riverpgxv5.New(pool), s.riverConfig(workers))
			if err != nil {
				return err
			}
			params := make([]river.InsertManyParams, s.jobs)
			for i := range params {
				params[i] = river.InsertManyParams{Args: noopArgs{}, InsertOpts: &river.InsertOpts{Queue: outbox.Queue}}
			}
			if err := insertMany(ctx, client, params); err != nil {
				return err
			}
			if err := vacuumAnalyze(ctx, pool); err != nil {
				return err
			}
			res, err = drain(ctx, client, db, noopArgs{}.Kind(), s.jobs)
			return err
		})
	return res, err
}

// drainMinimal drains s.jobs jobs that each do one SELECT with a join, one
// UPDATE and one INSERT, the statements a sync job cannot do without (read
// the row and its account, write back the Stripe id, log), each its own
// round trip and its own implicit transaction.
func (b *runner) drainMinimal(ctx context.Context, s drainSettings) (drainResult, error) {
	var res drainResult
	err := b.withDB(ctx, "drain_minimal", poolConfig{app: "bench drain minimal", maxConns: s.maxConns, counter: &Counter{}},
		func(db *database) error {
			pool := db.Pool
			if err := createOrg(ctx, pool); err != nil {
				return err
			}
			if err := insertEvents(ctx, pool, s.jobs, false); err != nil {
				return err
			}
			workers := river.NewWorkers()
			river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, job *river.Job[minimalArgs]) error {
				return minimalJob(ctx, pool, job.Args.EventID)
			}))
			client, err := river.NewClient(riverpgxv5.New(pool), s.riverConfig(workers))
			if err != nil {
				return err
			}
			rows, err := pool.Query(ctx, `SELECT event_id::text FROM events ORDER BY event_id`)
			if err != nil {
				return err
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return err
			}
			params := make([]river.InsertManyParams, len(ids))
			for i, id := range ids {
				params[i] = river.InsertManyParams{Args: minimalArgs{EventID: id}, InsertOpts: &river.InsertOpts{Queue: outbox.Queue}}
			}
			if err := insertMany(ctx, client, params); err != nil {
				return err
			}
			if err := vacuumAnalyze(ctx, pool); err != nil {
				return err
			}
			res, err = drain(ctx, client, db, minimalArgs{}.Kind(), s.jobs)
			return err
		})
	return res, err
}

func minimalJob(ctx context.Context, pool *pgxpool.Pool, eventID string) error {
	var (
		title   *string
		account *string
	)
	if err := pool.QueryRow(ctx, `
		SELECT e.title, o.stripe_onbehalfof FROM events e JOIN organisations o ON o.organisation_id = e.organisation_id
		WHERE e.event_id = $1`, eventID).Scan(&title, &account); err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	productID := jobs.ProductID(eventID)
	if _, err := pool.Exec(ctx, `UPDATE events SET stripe_product_id = $2 WHERE event_id = $1`, eventID, productID); err != nil {
		return fmt.Errorf("write back: %w", err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO stripe_sync_log (entity_type, entity_id, stripe_object_id, connected_account_id, action, status)
		VALUES ('event', $1, $2, $3, 'create', 'success')`, eventID, productID, account); err != nil {
		return fmt.Errorf("log: %w", err)
	}
	return nil
}

// insertMany inserts params in chunks, each one statement.
func insertMany(ctx context.Context, client *river.Client[pgx.Tx], params []river.InsertManyParams) error {
	const chunk = 5000
	for i := 0; i < len(params); i += chunk {
		if _, err := client.InsertMany(ctx, params[i:min(i+chunk, len(params))]); err != nil {
			return fmt.Errorf("insert jobs: %w", err)
		}
	}
	return nil
}

// vacuumAnalyze gives the planner statistics of the freshly filled tables,
// as a long-running database would have, so no drain starts with a plan
// made for empty tables.
func vacuumAnalyze(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE river_job, events, stripe_sync_state`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// drain starts client, waits until n jobs of kind completed, and stops it.
// A job that fails instead fails the drain: the throughput of errors is no
// throughput.
func drain(ctx context.Context, client *river.Client[pgx.Tx], db *database, kind string, n int) (drainResult, error) {
	meter := newCPUMeter(ctx, db.Pool)
	events, cancel := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: n + 1000,
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled, river.EventKindJobSnoozed},
	})
	defer cancel()

	db.Counter.Reset()
	cpuStart := meter.sample()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return drainResult{}, fmt.Errorf("start client: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = client.Stop(stopCtx)
	}()

	timeout := time.After(5 * time.Minute)
	done := 0
	for done < n {
		select {
		case ev := <-events:
			if ev.Job.Kind != kind {
				continue
			}
			if ev.Kind != river.EventKindJobCompleted {
				return drainResult{}, fmt.Errorf("job %d (%s) ended %s: %v", ev.Job.ID, kind, ev.Kind, ev.Job.Errors)
			}
			done++
		case <-timeout:
			return drainResult{}, fmt.Errorf("drain of %s: %d of %d jobs completed after 5 minutes", kind, done, n)
		case <-ctx.Done():
			return drainResult{}, ctx.Err()
		}
	}
	elapsed := time.Since(start)
	cpuEnd := meter.sample()
	return drainResult{
		jobs: n, elapsed: elapsed,
		trips: db.Counter.RoundTrips(), riverTrips: db.Counter.River(), prepares: db.Counter.Prepares(),
		cpu: cpuSample{
			process: cpuEnd.process - cpuStart.process, server: cpuEnd.server - cpuStart.server,
			serverOK: cpuStart.serverOK && cpuEnd.serverOK,
		},
	}, nil
}

// figureDrain is figure 2: the sync's drain rate against River's no-op drain
// and a minimal job, interleaved per repetition, and the round trips a job
// costs.
func (b *runner) figureDrain(ctx context.Context) error {
	s := drainSettings{jobs: b.cfg.DrainJobs, concurrency: b.cfg.Concurrency, maxConns: int32(b.cfg.PoolMaxConns)}
	if s.maxConns <= 0 {
		// As `syncctl worker` sizes its pool: a connection per job (a job
		// holds one for its round's entity locks) plus some for River itself.
		s.maxConns = int32(s.concurrency + 5)
	}
	var syncRate, noopRate, minRate, syncTrips, noopTrips, minTrips, syncCPU, minCPU, noopCPU, syncProc, minProc []float64
	var last drainResult
	for rep := 1; rep <= b.cfg.Repetitions; rep++ {
		noop, err := b.drainNoop(ctx, s)
		if err != nil {
			return err
		}
		minimal, err := b.drainMinimal(ctx, s)
		if err != nil {
			return err
		}
		sync, err := b.drainSync(ctx, s, nil)
		if err != nil {
			return err
		}
		last = sync
		b.logf("drain rep %d: sync %.0f/s (%.2f trips/job, %.2f River's; CPU/job %.2f ms server, %.2f ms here), "+
			"no-op %.0f/s (%.2f; %.2f, %.2f), minimal %.0f/s (%.2f; %.2f, %.2f)", rep,
			sync.perSecond(), sync.tripsPerJob(), float64(sync.riverTrips)/float64(sync.jobs), sync.serverMsPerJob(), sync.processMsPerJob(),
			noop.perSecond(), noop.tripsPerJob(), noop.serverMsPerJob(), noop.processMsPerJob(),
			minimal.perSecond(), minimal.tripsPerJob(), minimal.serverMsPerJob(), minimal.processMsPerJob())
		syncRate = append(syncRate, sync.perSecond())
		noopRate = append(noopRate, noop.perSecond())
		minRate = append(minRate, minimal.perSecond())
		syncTrips = append(syncTrips, sync.tripsPerJob())
		noopTrips = append(noopTrips, noop.tripsPerJob())
		minTrips = append(minTrips, minimal.tripsPerJob())
		syncCPU = append(syncCPU, sync.serverMsPerJob())
		minCPU = append(minCPU, minimal.serverMsPerJob())
		noopCPU = append(noopCPU, noop.serverMsPerJob())
		syncProc = append(syncProc, sync.processMsPerJob())
		minProc = append(minProc, minimal.processMsPerJob())
	}
	settings := fmt.Sprintf("%d jobs, Concurrency %d, FetchCooldown %s, FetchPollInterval %s, pool of %s connections.",
		s.jobs, s.concurrency, fetchCooldown, fetchPollInterval, maxConnsText(s.maxConns))
	b.report.Rows = append(b.report.Rows,
		newRow("2a drain / River no-op drain", "jobs/s", "River's own drain of no-op jobs, same settings",
			syncRate, noopRate, &Goal{On: "ratio", Op: ">=", Bound: 0.15},
			"First syncs of events (each creates its Product; no tickets) against the zero-latency emulator, no rate limit. "+settings),
		newRow("2b drain / minimal job drain", "jobs/s", "jobs doing one SELECT with a join, one UPDATE, one INSERT",
			syncRate, minRate, &Goal{On: "ratio", Op: ">=", Bound: 0.90}, ""),
		newRow("2c DB round trips per job", "trips", "the minimal job's",
			syncTrips, minTrips, &Goal{On: "ratio", Op: "<=", Bound: 1},
			fmt.Sprintf("Counted by a pgx tracer on the worker's pool, River's fetches and completions included; "+
				"River's no-op job costs %s (so a sync job's own work is value - %[1]s). Last sync drain: %d of %d single "+
				"statements were River's, %d statements prepared.",
				num(NewStats(noopTrips).Median), last.riverTrips, last.trips, last.prepares)),
		newRow("2d server CPU per job", "ms", "the minimal job's",
			syncCPU, minCPU, nil,
			fmt.Sprintf("PostgreSQL's CPU time during the drain (all its processes, from /proc; '-' when the server is not on "+
				"this machine) per job; River's no-op job costs %s ms. This process (workers, stripe-go and the in-process "+
				"emulator) used %s ms per sync job, %s ms per minimal job.",
				num(NewStats(noopCPU).Median), num(NewStats(syncProc).Median), num(NewStats(minProc).Median))),
	)
	if b.cfg.Profile {
		path := filepath.Join(b.cfg.OutDir, "drain.cpu.pprof")
		if _, err := b.drainSync(ctx, s, cpuProfile(path)); err != nil {
			return err
		}
		b.note("CPU profile of one extra sync drain: %s (go tool pprof -top %s)", path, path)
	}
	return nil
}

func maxConnsText(n int32) string { return fmt.Sprint(n) }

// cpuProfile returns a start function for a CPU profile written to path.
func cpuProfile(path string) func() func() {
	return func() func() {
		f, err := os.Create(path)
		if err != nil {
			return func() {}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return func() {}
		}
		return func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}
	}
}
