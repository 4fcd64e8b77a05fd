package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// ticketsPerEvent makes BackfillEvents events into 4 x BackfillEvents
// entities.
const ticketsPerEvent = 3

// insertBackfillRows inserts events events with ticketsPerEvent tickets
// each, with the triggers off: rows that predate the install, which is what
// a backfill is for.
func insertBackfillRows(ctx context.Context, pool *pgxpool.Pool, events int) error {
	if err := insertEvents(ctx, pool, events, false); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO event_tickets (id, event_id, name, price, eligibility_criteria, total_capacity)
			SELECT gen_random_uuid(), e.event_id, 'Tier ' || t, 25.00 * t, '{"rank": "any"}', 100
			FROM events e CROSS JOIN generate_series(1, $1::int) t`, ticketsPerEvent)
		if err != nil {
			return fmt.Errorf("insert tickets: %w", err)
		}
		return nil
	})
}

// rawInsertSQL is the baseline of figure 6: the same number of river_job rows
// as the backfill enqueues, in one INSERT ... SELECT, with the unique keys the
// triggers compute (so the same unique index is maintained), and nothing
// else: River's raw insert speed on this server.
const rawInsertSQL = `
INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
SELECT a::jsonb, k, 25, '{}', 1, 'stripe_sync', 'available', '{}'::varchar(255)[],
       sha256(convert_to('&kind=' || k || '&args=' || a, 'UTF8')), 241::integer::bit(8)
FROM (
	SELECT 'stripe_sync_event' AS k, '{"event_id":"' || event_id || '"}' AS a FROM events
	UNION ALL
	SELECT 'stripe_sync_ticket', '{"ticket_id":"' || id || '"}' FROM event_tickets
) src`

// backfillSummary is `syncctl backfill --json`'s output.
type backfillSummary struct {
	Events   int `json:"events"`
	Tickets  int `json:"tickets"`
	Enqueued int `json:"enqueued"`
}

// figureBackfill is figure 6: `syncctl backfill` of 100,000 entities
// against a raw INSERT ... SELECT of as many jobs, and the peak RSS of
// `syncctl worker` while they wait, against the same worker on an empty
// queue.
func (b *runner) figureBackfill(ctx context.Context) error {
	bin, err := b.buildSyncctl(ctx)
	if err != nil {
		return err
	}
	entities := b.cfg.BackfillEvents * (1 + ticketsPerEvent)
	var secs, rawSecs, rss, idleRSS []float64
	err = b.withDB(ctx, "backfill", poolConfig{app: "bench backfill"}, func(db *database) error {
		return b.withDB(ctx, "backfill_idle", poolConfig{app: "bench backfill idle"}, func(idle *database) error {
			if err := createOrg(ctx, db.Pool); err != nil {
				return err
			}
			if err := insertBackfillRows(ctx, db.Pool, b.cfg.BackfillEvents); err != nil {
				return err
			}
			if err := createOrg(ctx, idle.Pool); err != nil {
				return err
			}
			for rep := 1; rep <= b.cfg.Repetitions; rep++ {
				raw, err := timeRawInsert(ctx, db.Pool, entities)
				if err != nil {
					return err
				}
				took, err := b.timeBackfill(ctx, bin, db, entities)
				if err != nil {
					return err
				}
				peak, idlePeak, err := b.workerRSS(ctx, bin, db, idle)
				if err != nil {
					return err
				}
				b.logf("backfill rep %d: %d entities enqueued in %.2f s (raw INSERT ... SELECT %.2f s); worker peak RSS %.1f MB (%.1f MB on an empty queue)",
					rep, entities, took.Seconds(), raw.Seconds(), mb(peak), mb(idlePeak))
				secs = append(secs, took.Seconds())
				rawSecs = append(rawSecs, raw.Seconds())
				rss = append(rss, mb(peak))
				idleRSS = append(idleRSS, mb(idlePeak))
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	b.report.Rows = append(b.report.Rows,
		newRow("6a backfill enqueue", "s", fmt.Sprintf("one INSERT ... SELECT of %d river_job rows with unique keys", entities),
			secs, rawSecs, &Goal{On: "value", Op: "<", Bound: 10},
			fmt.Sprintf("`syncctl backfill` (a subprocess, start-up included) of %d events x %d tickets = %d entities, "+
				"inserted before the install (no jobs), from an empty queue each repetition.",
				b.cfg.BackfillEvents, ticketsPerEvent, entities)),
		newRow("6b worker peak RSS, backlog waiting", "MB", "the same worker on an empty queue",
			rss, idleRSS, &Goal{On: "value", Op: "<", Bound: 100},
			fmt.Sprintf("VmHWM of `syncctl worker --concurrency 10 --rate 100` after %s working the %d-job backlog "+
				"against an emulator answering in 100-200 ms.", b.cfg.RSSWindow, entities)),
	)
	return nil
}

// timeRawInsert empties the queue, times the raw insert of the baseline, and
// empties the queue again.
func timeRawInsert(ctx context.Context, pool *pgxpool.Pool, want int) (time.Duration, error) {
	if err := emptyQueue(ctx, pool); err != nil {
		return 0, err
	}
	start := time.Now()
	tag, err := pool.Exec(ctx, rawInsertSQL)
	took := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("raw insert: %w", err)
	}
	if int(tag.RowsAffected()) != want {
		return 0, fmt.Errorf("raw insert made %d jobs, want %d", tag.RowsAffected(), want)
	}
	return took, emptyQueue(ctx, pool)
}

// emptyQueue removes every job and every recorded change, as before an
// install.
func emptyQueue(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `TRUNCATE river_job, stripe_sync_state`); err != nil {
		return fmt.Errorf("empty the queue: %w", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE river_job, stripe_sync_state, events, event_tickets`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// timeBackfill runs `syncctl backfill --json` on an empty queue and checks it
// enqueued every entity.
func (b *runner) timeBackfill(ctx context.Context, bin string, db *database, want int) (time.Duration, error) {
	out, took, err := runSyncctl(ctx, bin, syncctlEnv("DATABASE_URL="+db.URL), "backfill", "--json")
	if err != nil {
		return 0, err
	}
	var s backfillSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return 0, fmt.Errorf("backfill output %q: %w", out, err)
	}
	if s.Enqueued != want {
		return 0, fmt.Errorf("backfill enqueued %d jobs, want %d", s.Enqueued, want)
	}
	return took, nil
}

// workerRSS runs `syncctl worker` on the backlog and another on the empty
// idle database, side by side for RSSWindow, and returns their peak RSS in
// bytes.
func (b *runner) workerRSS(ctx context.Context, bin string, backlog, idle *database) (int64, int64, error) {
	stripe, err := newStripeServer(nil)
	if err != nil {
		return 0, 0, err
	}
	defer stripe.Close()
	stripe.emu.AddFault(emulator.Fault{Kind: emulator.FaultLatency, Latency: 100 * time.Millisecond, LatencyMax: 200 * time.Millisecond})
	args := []string{"worker", "--concurrency", "10", "--rate", "100", "--metrics-addr", "127.0.0.1:0",
		"--log-level", "warn", "--shutdown-timeout", "1s"}
	start := func(db *database) (*process, error) {
		return startProcess(bin, syncctlEnv("DATABASE_URL="+db.URL, "STRIPE_SECRET_KEY="+secretKey, "STRIPE_API_BASE="+stripe.srv.URL), args...)
	}
	busy, err := start(backlog)
	if err != nil {
		return 0, 0, err
	}
	defer busy.stop(5 * time.Second)
	calm, err := start(idle)
	if err != nil {
		return 0, 0, err
	}
	defer calm.stop(5 * time.Second)

	select {
	case <-time.After(b.cfg.RSSWindow):
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	for _, p := range []*process{busy, calm} {
		if !p.running() {
			return 0, 0, fmt.Errorf("syncctl worker exited early:\n%s", p.tail(20))
		}
	}
	var worked int
	if err := backlog.Pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&worked); err != nil {
		return 0, 0, err
	}
	if worked == 0 {
		return 0, 0, fmt.Errorf("the worker completed no job in %s:\n%s", b.cfg.RSSWindow, busy.tail(20))
	}
	peak, err := busy.peakRSS()
	if err != nil {
		return 0, 0, err
	}
	idlePeak, err := calm.peakRSS()
	if err != nil {
		return 0, 0, err
	}
	return peak, idlePeak, nil
}

func mb(bytes int64) float64 { return float64(bytes) / (1 << 20) }
