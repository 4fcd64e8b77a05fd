package bench

import (
	"context"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// lanesTargets is how many events are synced before the backfill, for the
// edits to change: an edit is a Product update, as an organiser's fix is.
const lanesTargets = 200

// lanesResult is one run of figure 9.
type lanesResult struct {
	// latencies are the edits' commit-to-Stripe times in milliseconds.
	latencies []float64
	// drained is how many backfill jobs completed while the edits ran.
	drained int
}

// figureLanes is figure 9: an edit during a backfill. LanesEntities entities
// (events with ticketsPerEvent tickets each) are backfilled against the
// emulator (50-150 ms, Stripe's 100 requests/s window) with `syncctl worker
// --rate 100` working them; while the backlog drains, one already-synced
// event is edited every second, LanesEdits times, and each edit's time from
// its UPDATE to the emulator holding the new name is measured. With lanes
// the backfill is in the bulk lane and the edit lifts its event's job; the
// baseline is the same with every backfill job moved to the live lane (what
// the queue looked like before lanes), so the edit's job waits its turn.
func (b *runner) figureLanes(ctx context.Context) error {
	bin, err := b.buildSyncctl(ctx)
	if err != nil {
		return err
	}
	var p50, p99, p50Base, p99Base []float64
	for rep := 1; rep <= b.cfg.LanesRepetitions; rep++ {
		with, err := b.lanesRun(ctx, bin, true)
		if err != nil {
			return fmt.Errorf("with lanes: %w", err)
		}
		without, err := b.lanesRun(ctx, bin, false)
		if err != nil {
			return fmt.Errorf("without lanes: %w", err)
		}
		b.logf("lanes rep %d: edits p50/p99 %.0f/%.0f ms with lanes (%d backfill jobs done meanwhile), %.0f/%.0f ms without (%d)", rep,
			Percentile(with.latencies, 50), Percentile(with.latencies, 99), with.drained,
			Percentile(without.latencies, 50), Percentile(without.latencies, 99), without.drained)
		p50 = append(p50, Percentile(with.latencies, 50))
		p99 = append(p99, Percentile(with.latencies, 99))
		p50Base = append(p50Base, Percentile(without.latencies, 50))
		p99Base = append(p99Base, Percentile(without.latencies, 99))
	}
	setting := fmt.Sprintf("%d entities (%d events x %d tickets) backfilled, then `syncctl worker --rate %d --concurrency %d` against the emulator "+
		"(%s-%s latency, Stripe's limits: %d requests in any sliding second, %d per endpoint); one edit a second to an already-synced event, %d edits, from UPDATE to the emulator "+
		"holding the new name. Baseline: the same with the backfill's jobs in the live lane, as before lanes. %d repetition(s).",
		b.cfg.LanesEntities, b.cfg.LanesEntities/(1+ticketsPerEvent), ticketsPerEvent, rateLimit, b.cfg.LanesConcurrency,
		lanesLatencyMin, lanesLatencyMax, rateLimit, emulator.DefaultEndpointRate, b.cfg.LanesEdits, b.cfg.LanesRepetitions)
	b.report.Rows = append(b.report.Rows,
		newRow("9a edit during backfill, p50", "ms", "no lanes (backfill in the live lane)", p50, p50Base, nil, setting),
		newRow("9b edit during backfill, p99", "ms", "no lanes (backfill in the live lane)", p99, p99Base, &Goal{On: "value", Op: "<", Bound: 2000}, ""),
	)
	return nil
}

const (
	lanesLatencyMin = 50 * time.Millisecond
	lanesLatencyMax = 150 * time.Millisecond
)

// lanesRun is one backfill with edits, with lanes or without.
func (b *runner) lanesRun(ctx context.Context, bin string, lanes bool) (lanesResult, error) {
	var res lanesResult
	name := "lanes"
	if !lanes {
		name = "nolanes"
	}
	err := b.withDB(ctx, name, poolConfig{app: "bench " + name}, func(db *database) error {
		if err := createOrg(ctx, db.Pool); err != nil {
			return err
		}
		if err := insertBackfillRows(ctx, db.Pool, b.cfg.LanesEntities/(1+ticketsPerEvent)); err != nil {
			return err
		}
		names := newProductAnswers("name", false)
		emu := emulator.New(emulator.Options{SecretKey: secretKey})
		emu.AddFault(emulator.Fault{Kind: emulator.FaultLatency, Latency: lanesLatencyMin, LatencyMax: lanesLatencyMax})
		emu.SetRateLimit(emulator.RateLimit{Global: rateLimit, Endpoint: emulator.DefaultEndpointRate})
		srv := httptest.NewServer(names.wrap(emu))
		defer srv.Close()

		worker, err := startProcess(bin, syncctlEnv("DATABASE_URL="+db.URL, "STRIPE_SECRET_KEY="+secretKey, "STRIPE_API_BASE="+srv.URL),
			"worker", "--concurrency", fmt.Sprint(b.cfg.LanesConcurrency), "--rate", fmt.Sprint(rateLimit),
			"--metrics-addr", "127.0.0.1:0", "--log-level", "warn", "--shutdown-timeout", "2s")
		if err != nil {
			return err
		}
		defer worker.stop(5 * time.Second)

		// The edits' targets: events the worker syncs before the backfill.
		targets := make([]string, lanesTargets)
		for i := range targets {
			targets[i] = newUUID()
		}
		if _, err := db.Pool.Exec(ctx, `
			INSERT INTO events (event_id, organisation_id, title, description, type, slug, is_published)
			SELECT id, $2, 'Target ' || ord, 'An event an organiser edits.', 'meeting', 'target-' || ord, true
			FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, ord)`, targets, orgID); err != nil {
			return fmt.Errorf("insert targets: %w", err)
		}
		if err := waitIdleWhile(ctx, db, worker, 2*time.Minute); err != nil {
			return fmt.Errorf("sync targets: %w", err)
		}

		// The backfill, in-process: the same outbox.Backfill `syncctl
		// backfill` runs.
		if _, err := outbox.Backfill(ctx, db.Pool, outbox.BackfillOptions{}); err != nil {
			return err
		}
		if !lanes {
			if _, err := db.Pool.Exec(ctx, `UPDATE river_job SET priority = $1 WHERE priority <> $1`, outbox.PriorityLive); err != nil {
				return err
			}
		}
		var completedBefore int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&completedBefore); err != nil {
			return err
		}

		type edit struct {
			start time.Time
			done  <-chan time.Time
		}
		edits := make([]edit, 0, b.cfg.LanesEdits)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := range b.cfg.LanesEdits {
			if i > 0 {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			title := fmt.Sprintf("Edited %d during the backfill", i)
			done := names.expect(title)
			start := time.Now()
			if _, err := db.Pool.Exec(ctx, `UPDATE events SET title = $2 WHERE event_id = $1`, targets[i%len(targets)], title); err != nil {
				return fmt.Errorf("edit: %w", err)
			}
			edits = append(edits, edit{start: start, done: done})
		}
		// Without lanes an edit waits for the whole backlog ahead of it.
		deadline := time.After(time.Duration(b.cfg.LanesEntities/rateLimit)*4*time.Second + time.Minute)
		for _, e := range edits {
			select {
			case at := <-e.done:
				res.latencies = append(res.latencies, ms(at.Sub(e.start)))
			case <-deadline:
				return fmt.Errorf("an edit did not reach the emulator in time:\n%s", worker.tail(20))
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var completed int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&completed); err != nil {
			return err
		}
		res.drained = completed - completedBefore
		return nil
	})
	return res, err
}
