package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/jobs"
)

// latencyConcurrency is the worker's default --concurrency: with no backlog
// only one job runs at a time anyway.
const latencyConcurrency = 10

// latencyWarmUp inserts run first and are not counted: they warm the
// connections' statement caches and the producer.
const latencyWarmUp = 20

// commitToStripe inserts n events one at a time, each in its own committed
// transaction, with the real workers running against a zero-latency
// emulator, and returns how long each took from the INSERT being sent to its
// Product existing in the emulator, in milliseconds.
func (b *runner) commitToStripe(ctx context.Context, n int) ([]float64, error) {
	var out []float64
	err := b.withDB(ctx, "latency_sync", poolConfig{app: "bench latency", maxConns: latencyConcurrency + 5},
		func(db *database) error {
			if err := createOrg(ctx, db.Pool); err != nil {
				return err
			}
			stripe, err := newStripeServer(nil)
			if err != nil {
				return err
			}
			defer stripe.Close()
			client, err := jobs.NewClient(&jobs.Deps{Pool: db.Pool, Stripe: stripe.client}, jobs.Options{
				Concurrency: latencyConcurrency, FetchCooldown: fetchCooldown, FetchPollInterval: fetchPollInterval,
			})
			if err != nil {
				return err
			}
			if err := client.Start(ctx); err != nil {
				return err
			}
			defer stopClient(ctx, client)
			for i := range latencyWarmUp + n {
				id := newUUID()
				created := stripe.created.expect(jobs.ProductID(id))
				start := time.Now()
				if _, err := db.Pool.Exec(ctx, `
					INSERT INTO events (event_id, organisation_id, title, description, type, slug, is_published)
					VALUES ($1, $2, $3, 'A benchmark event.', 'meeting', $4, true)`,
					id, orgID, fmt.Sprintf("Latency event %d", i), fmt.Sprintf("latency-%d", i)); err != nil {
					return fmt.Errorf("insert event: %w", err)
				}
				select {
				case at := <-created:
					if i >= latencyWarmUp {
						out = append(out, ms(at.Sub(start)))
					}
				case <-time.After(30 * time.Second):
					return fmt.Errorf("event %s: no Product after 30 s", id)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	return out, err
}

// riverInsertSQL inserts a bench_latency job as River's client would and
// wakes River's producers, as the trigger does.
const riverInsertSQL = `
	WITH job AS (
		INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue, state, tags)
		VALUES ($1::jsonb, 'bench_latency', 25, '{}', 1, 'stripe_sync', 'available', '{}')
		RETURNING id
	)
	SELECT pg_notify('stripe_sync.river_insert', '{"queue": "stripe_sync"}') FROM job`

// latencyArgs is a no-op job that reports when River started working it.
type latencyArgs struct {
	Seq int `json:"seq"`
}

func (latencyArgs) Kind() string { return "bench_latency" }

// riverLatency is the baseline of figure 3: River's own latency from the
// insert of a no-op job to its worker starting, with the same client
// settings, in milliseconds. The job is inserted the way the trigger inserts
// (the row and a NOTIFY on River's insert channel in one committed
// statement), so the baseline is River's pickup alone. River's client.Insert
// would not do: it sends at most one NOTIFY per queue per FetchCooldown, so
// in this one-at-a-time pattern every few inserts wait for the next poll
// (FetchPollInterval), which puts its p99 near 250 ms.
func (b *runner) riverLatency(ctx context.Context, n int) ([]float64, error) {
	var out []float64
	err := b.withDB(ctx, "latency_river", poolConfig{app: "bench latency river", maxConns: latencyConcurrency + 5},
		func(db *database) error {
			started := make(chan time.Time, 1)
			workers := river.NewWorkers()
			river.AddWorker(workers, river.WorkFunc(func(context.Context, *river.Job[latencyArgs]) error {
				started <- time.Now()
				return nil
			}))
			client, err := river.NewClient(riverpgxv5.New(db.Pool), drainSettings{concurrency: latencyConcurrency}.riverConfig(workers))
			if err != nil {
				return err
			}
			if err := client.Start(ctx); err != nil {
				return err
			}
			defer stopClient(ctx, client)
			for i := range latencyWarmUp + n {
				start := time.Now()
				if _, err := db.Pool.Exec(ctx, riverInsertSQL, fmt.Sprintf(`{"seq": %d}`, i)); err != nil {
					return fmt.Errorf("insert job: %w", err)
				}
				select {
				case at := <-started:
					if i >= latencyWarmUp {
						out = append(out, ms(at.Sub(start)))
					}
				case <-time.After(30 * time.Second):
					return fmt.Errorf("job %d not worked after 30 s", i)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
	return out, err
}

// figureLatency is figure 3.
func (b *runner) figureLatency(ctx context.Context) error {
	var p50, p99, riverP50, riverP99, worst []float64
	for rep := 1; rep <= b.cfg.Repetitions; rep++ {
		ours, err := b.commitToStripe(ctx, b.cfg.LatencyInserts)
		if err != nil {
			return err
		}
		theirs, err := b.riverLatency(ctx, b.cfg.LatencyInserts)
		if err != nil {
			return err
		}
		p50 = append(p50, Percentile(ours, 50))
		p99 = append(p99, Percentile(ours, 99))
		worst = append(worst, Percentile(ours, 100))
		riverP50 = append(riverP50, Percentile(theirs, 50))
		riverP99 = append(riverP99, Percentile(theirs, 99))
		b.logf("latency rep %d: commit-to-Stripe p50 %.1f ms, p99 %.1f ms, max %.1f ms; River no-op p50 %.1f ms, p99 %.1f ms",
			rep, p50[rep-1], p99[rep-1], worst[rep-1], riverP50[rep-1], riverP99[rep-1])
	}
	setting := fmt.Sprintf("%d sequential single-row INSERTs (autocommit), each waited for, after %d warm-up inserts; "+
		"from sending the INSERT to the emulator having created the Product; zero-latency emulator, worker --concurrency %d, "+
		"FetchCooldown %s. Max per repetition: %s ms.",
		b.cfg.LatencyInserts, latencyWarmUp, latencyConcurrency, fetchCooldown, joinNums(worst))
	b.report.Rows = append(b.report.Rows,
		newRow("3a commit-to-Stripe p50", "ms", "River's own insert-to-work p50 of a no-op job inserted as the trigger inserts",
			p50, riverP50, &Goal{On: "value", Op: "<", Bound: 50}, setting),
		newRow("3b commit-to-Stripe p99", "ms", "River's own insert-to-work p99 of the same no-op job",
			p99, riverP99, &Goal{On: "value", Op: "<", Bound: 250}, ""),
	)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func joinNums(xs []float64) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += num(x)
	}
	return s
}

// newUUID returns a random (version 4) UUID in canonical form.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// stopClient stops a River client, giving jobs in flight a few seconds.
func stopClient(ctx context.Context, client *river.Client[pgx.Tx]) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil {
		_ = client.StopAndCancel(context.WithoutCancel(ctx))
	}
}
