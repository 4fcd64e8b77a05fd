package bench

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// rateLimit is figure 4's --rate, Stripe's documented live-mode limit.
const rateLimit = 100

// rateResult is one rate-limited drain.
type rateResult struct {
	// perSecond is the rate of accepted requests between the first and the
	// last to arrive at the emulator.
	perSecond float64
	refused   int
	elapsed   time.Duration
	// refusedAt are the 429s' arrival times after the first request's.
	refusedAt []time.Duration
	// busiest is the most accepted requests in any one-second window.
	busiest int
}

// rateRun drains cfg.RateJobs first syncs through a `syncctl worker`
// subprocess with --rate 100, against an emulator that answers in 100-200 ms
// and refuses (429) any request past 100 in a sliding second.
func (b *runner) rateRun(ctx context.Context) (rateResult, error) {
	var res rateResult
	bin, err := b.buildSyncctl(ctx)
	if err != nil {
		return res, err
	}
	err = b.withDB(ctx, "rate", poolConfig{app: "bench rate"}, func(db *database) error {
		if err := createOrg(ctx, db.Pool); err != nil {
			return err
		}
		if err := insertEvents(ctx, db.Pool, b.cfg.RateJobs, true); err != nil {
			return err
		}
		if err := vacuumAnalyze(ctx, db.Pool); err != nil {
			return err
		}
		stripe, err := newStripeServer(nil)
		if err != nil {
			return err
		}
		defer stripe.Close()
		stripe.emu.AddFault(emulator.Fault{Kind: emulator.FaultLatency, Latency: 100 * time.Millisecond, LatencyMax: 200 * time.Millisecond})
		stripe.emu.SetRateLimit(emulator.RateLimit{Global: rateLimit})

		worker, err := startProcess(bin, syncctlEnv("DATABASE_URL="+db.URL, "STRIPE_SECRET_KEY="+secretKey, "STRIPE_API_BASE="+stripe.srv.URL),
			// Every request here creates a Product: one endpoint. The global
			// limit's pacing is what this figure measures, so the per-endpoint
			// limit (25/s by default, Stripe's) is off on both sides; the
			// per-endpoint pacing has its own test (pglimiter's workload).
			"worker", "--concurrency", fmt.Sprint(b.cfg.RateConcurrency), "--rate", fmt.Sprint(rateLimit), "--endpoint-rate", "0",
			"--metrics-addr", "127.0.0.1:0", "--log-level", "warn", "--shutdown-timeout", "5s")
		if err != nil {
			return err
		}
		defer worker.stop(10 * time.Second)
		start := time.Now()
		timeout := time.Duration(b.cfg.RateJobs/rateLimit)*time.Second*10 + time.Minute
		if err := waitIdleWhile(ctx, db, worker, timeout); err != nil {
			return err
		}
		res.elapsed = time.Since(start)
		worker.stop(10 * time.Second)

		if got := len(stripe.emu.Products(account)); got != b.cfg.RateJobs {
			return fmt.Errorf("made %d Products, want %d", got, b.cfg.RateJobs)
		}
		reqs := stripe.emu.Requests()
		sort.Slice(reqs, func(i, j int) bool { return reqs[i].Time.Before(reqs[j].Time) })
		var times []time.Time
		for _, r := range reqs {
			if r.Status == http.StatusTooManyRequests {
				res.refused++
				res.refusedAt = append(res.refusedAt, r.Time.Sub(reqs[0].Time))
				continue
			}
			times = append(times, r.Time)
		}
		if len(times) < 2 {
			return fmt.Errorf("only %d requests reached the emulator", len(times))
		}
		res.perSecond = float64(len(times)-1) / times[len(times)-1].Sub(times[0]).Seconds()
		for i, j := 0, 0; i < len(times); i++ {
			for j < len(times) && times[j].Sub(times[i]) < time.Second {
				j++
			}
			res.busiest = max(res.busiest, j-i)
		}
		return nil
	})
	return res, err
}

// waitIdleWhile waits for the sync to go idle, failing early if the worker
// exits.
func waitIdleWhile(ctx context.Context, db *database, worker *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if !worker.running() {
			return fmt.Errorf("syncctl worker exited early:\n%s", worker.tail(20))
		}
		err := waitIdle(ctx, db.Pool, 100*time.Millisecond)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w\n%s", timeout, err, worker.tail(20))
		}
	}
}

// figureRate is figure 4.
func (b *runner) figureRate(ctx context.Context) error {
	var achieved, limit, refused []float64
	for rep := 1; rep <= b.cfg.Repetitions; rep++ {
		r, err := b.rateRun(ctx)
		if err != nil {
			return err
		}
		b.logf("rate rep %d: %.1f requests/s accepted (busiest second %d), %d refused (429) at %v, drained in %s", rep,
			r.perSecond, r.busiest, r.refused, roundAll(r.refusedAt, 10*time.Millisecond), r.elapsed.Round(time.Millisecond))
		achieved = append(achieved, r.perSecond)
		limit = append(limit, rateLimit)
		refused = append(refused, float64(r.refused))
	}
	b.report.Rows = append(b.report.Rows,
		newRow("4a rate-limited requests/s", "req/s", "--rate 100",
			achieved, limit, &Goal{On: "ratio", Op: ">=", Bound: 0.95},
			fmt.Sprintf("%d first syncs through `syncctl worker --rate %d --endpoint-rate 0 --concurrency %d` (the shared PostgreSQL limiter, one request at a time); "+
				"emulator latency 100-200 ms; accepted requests between the first and the last to arrive.",
				b.cfg.RateJobs, rateLimit, b.cfg.RateConcurrency)),
		newRow("4b 429s from the emulator", "429s", "none",
			refused, nil, &Goal{On: "value", Op: "==", Bound: 0},
			fmt.Sprintf("The emulator refuses any request past %d in a sliding second (stricter than Stripe's bucket).", rateLimit)),
	)
	return nil
}

func roundAll(ds []time.Duration, m time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(m)
	}
	return out
}
