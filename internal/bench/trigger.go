package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// seedTriggerSQL is the seed design's trigger (seeds/000_*.txt, "Option 1"):
// a pg_notify of a json_build_object per row, with the seed's WHEN clauses.
// Two of the seed's mistakes are fixed, or it could not be measured at all:
//   - Its one function picks the id with CASE TG_TABLE_NAME ... NEW.event_id
//     ... NEW.id, which PL/pgSQL cannot evaluate on an events row ("record
//     "new" has no field "id""): every write to events would fail. Here each
//     table gets its own function building the same payload.
//   - Its events trigger is AFTER INSERT OR UPDATE with a WHEN clause that
//     reads OLD, which PostgreSQL refuses to create ("INSERT trigger's WHEN
//     condition cannot reference OLD values"). Here it is an UPDATE trigger
//     with the seed's WHEN plus an INSERT trigger without one.
const seedTriggerSQL = `
CREATE FUNCTION trigger_stripe_sync_events()
RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify(
    'stripe_sync',
    json_build_object('type', TG_TABLE_NAME, 'action', TG_OP, 'id', NEW.event_id)::text
  );
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION trigger_stripe_sync_event_tickets()
RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify(
    'stripe_sync',
    json_build_object('type', TG_TABLE_NAME, 'action', TG_OP, 'id', NEW.id)::text
  );
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER sync_event_to_stripe
AFTER UPDATE ON events
FOR EACH ROW
WHEN (NEW.stripe_product_id IS DISTINCT FROM OLD.stripe_product_id
  OR NEW.title IS DISTINCT FROM OLD.title
  OR NEW.description IS DISTINCT FROM OLD.description
  OR NEW.is_published IS DISTINCT FROM OLD.is_published)
EXECUTE FUNCTION trigger_stripe_sync_events();

CREATE TRIGGER sync_event_to_stripe_insert
AFTER INSERT ON events
FOR EACH ROW
EXECUTE FUNCTION trigger_stripe_sync_events();

CREATE TRIGGER sync_ticket_to_stripe
AFTER INSERT OR UPDATE ON event_tickets
FOR EACH ROW
EXECUTE FUNCTION trigger_stripe_sync_event_tickets();
`

// dropSyncTriggersSQL removes the project's triggers, leaving the host tables
// as the seed found them.
const dropSyncTriggersSQL = `
DROP TRIGGER stripe_sync_event_insert ON events;
DROP TRIGGER stripe_sync_event_update ON events;
DROP TRIGGER stripe_sync_event_delete ON events;
DROP TRIGGER stripe_sync_ticket_insert ON event_tickets;
DROP TRIGGER stripe_sync_ticket_update ON event_tickets;
DROP TRIGGER stripe_sync_ticket_delete ON event_tickets;
DROP TRIGGER stripe_sync_org_update ON organisations;
`

// floorTriggerSQL replaces the project's triggers with a row trigger that
// only inserts the row the sync trigger inserts into river_job for the
// changed event (the same unique key, ON CONFLICT on River's unique index):
// no change recorded, no NOTIFY. It is the floor of any trigger that inserts
// River's job row: what River's table (six indexes, two of them GIN, five
// CHECK constraints, a partial unique index calling a SQL function) costs.
const floorTriggerSQL = `
CREATE FUNCTION stripe_sync.bench_floor_trigger() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
DECLARE
    a text := '{"event_id":"' || NEW.event_id::text || '"}';
BEGIN
    INSERT INTO stripe_sync.river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
    VALUES (a::jsonb, 'stripe_sync_event', 25, '{}'::jsonb, 1, 'stripe_sync', 'available', '{}'::varchar(255)[],
            sha256(convert_to('&kind=stripe_sync_event&args=' || a, 'UTF8')), 241::integer::bit(8))
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL
          AND stripe_sync.river_job_state_in_bitmask(unique_states, state)
    DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER bench_floor AFTER UPDATE ON events FOR EACH ROW EXECUTE FUNCTION stripe_sync.bench_floor_trigger();
`

// inlinableBitmaskSQL undoes what the lockdown does to River's
// river_job_state_in_bitmask (a fixed, empty search_path, for Supabase's
// function_search_path_mutable lint): a SQL function with a SET clause is
// never inlined, so River's partial unique index evaluates it as a function
// call, parsed and planned again in every statement, on every job insert.
const inlinableBitmaskSQL = `ALTER FUNCTION stripe_sync.river_job_state_in_bitmask(bit, stripe_sync.river_job_state) RESET search_path`

// installSeedTriggers swaps the project's triggers for the seed's.
func installSeedTriggers(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, dropSyncTriggersSQL+seedTriggerSQL); err != nil {
		return fmt.Errorf("install the seed's triggers: %w", err)
	}
	return nil
}

// triggerVariant is one of figure 1's databases.
type triggerVariant struct {
	name string
	db   *database
	ids  []string
}

// figureTrigger is figure 1: UPDATE throughput on events with the sync
// trigger, with no trigger, and with the seed's pg_notify trigger, each in
// its own database on the same server, measured in turn in every
// repetition.
func (b *runner) figureTrigger(ctx context.Context) error {
	setups := []struct {
		name  string
		setup func(context.Context, *pgxpool.Pool) error
	}{
		{"none", func(ctx context.Context, pool *pgxpool.Pool) error {
			_, err := pool.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER USER`)
			return err
		}},
		{"seed", installSeedTriggers},
		{"sync", func(context.Context, *pgxpool.Pool) error { return nil }},
		{"floor", func(ctx context.Context, pool *pgxpool.Pool) error {
			_, err := pool.Exec(ctx, dropSyncTriggersSQL+floorTriggerSQL)
			return err
		}},
		{"inlinable", func(ctx context.Context, pool *pgxpool.Pool) error {
			_, err := pool.Exec(ctx, inlinableBitmaskSQL)
			return err
		}},
	}
	variants := make([]*triggerVariant, 0, len(setups))
	for _, s := range setups {
		dbURL, err := b.srv.Clone(ctx, "trigger_"+s.name)
		if err != nil {
			return err
		}
		defer func() {
			dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = b.srv.Drop(dropCtx, dbURL)
		}()
		pool, err := openPool(ctx, dbURL, poolConfig{app: "bench trigger " + s.name, maxConns: int32(b.cfg.TriggerClients)})
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := createOrg(ctx, pool); err != nil {
			return err
		}
		if err := insertEvents(ctx, pool, b.cfg.TriggerRows, false); err != nil {
			return err
		}
		if err := s.setup(ctx, pool); err != nil {
			return fmt.Errorf("set up %s: %w", s.name, err)
		}
		rows, err := pool.Query(ctx, `SELECT event_id::text FROM events`)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		variants = append(variants, &triggerVariant{name: s.name, db: &database{URL: dbURL, Pool: pool}, ids: ids})
	}

	rates := map[string][]float64{}
	for rep := 1; rep <= b.cfg.Repetitions; rep++ {
		// Rotate the order, so no variant always runs first or last.
		for i := range variants {
			v := variants[(i+rep-1)%len(variants)]
			rate, err := b.updateThroughput(ctx, v)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			rates[v.name] = append(rates[v.name], rate)
		}
		b.logf("trigger rep %d: sync %.0f, none %.0f, seed %.0f, floor %.0f, sync with River's function inlinable %.0f UPDATEs/s", rep,
			rates["sync"][rep-1], rates["none"][rep-1], rates["seed"][rep-1], rates["floor"][rep-1], rates["inlinable"][rep-1])
	}
	setting := fmt.Sprintf("%d rows, %d clients each updating a random row's title (autocommit), %s per variant and repetition, "+
		"each repetition from an empty queue.", b.cfg.TriggerRows, b.cfg.TriggerClients, b.cfg.TriggerDuration)
	b.report.Rows = append(b.report.Rows,
		newRow("1a UPDATEs with sync trigger / none", "UPDATE/s", "no trigger (DISABLE TRIGGER USER)",
			rates["sync"], rates["none"], &Goal{On: "ratio", Op: ">=", Bound: 0.5}, setting),
		newRow("1b UPDATEs with sync trigger / seed's", "UPDATE/s", "the seed's pg_notify(json_build_object(...)) trigger",
			rates["sync"], rates["seed"], &Goal{On: "ratio", Op: ">=", Bound: 1.0}, ""),
		newRow("1c UPDATEs with River's row alone / none", "UPDATE/s", "no trigger",
			rates["floor"], rates["none"], nil,
			"The floor: a row trigger inserting only the sync trigger's river_job row (ON CONFLICT DO NOTHING), no change recorded, no NOTIFY."),
		newRow("1d UPDATEs with sync trigger / River's row alone", "UPDATE/s", "the floor (1c)",
			rates["sync"], rates["floor"], nil, "How close the sync trigger gets to the floor: what is ours."),
		newRow("1e sync trigger, River's bitmask function inlinable / as locked down", "UPDATE/s", "the sync trigger (1a)",
			rates["inlinable"], rates["sync"], nil,
			"The sync trigger with river_job_state_in_bitmask's search_path RESET: the lockdown's SET search_path = '' keeps PostgreSQL "+
				"from inlining it into River's partial unique index."),
	)
	return nil
}

// updateThroughput empties the queue and the sync state, then runs
// TriggerClients clients updating random rows for TriggerDuration, after a
// short warm-up, and returns UPDATEs per second.
func (b *runner) updateThroughput(ctx context.Context, v *triggerVariant) (float64, error) {
	pool := v.db.Pool
	if _, err := pool.Exec(ctx, `TRUNCATE river_job, stripe_sync_state`); err != nil {
		return 0, fmt.Errorf("empty the queue: %w", err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE events, river_job, stripe_sync_state`); err != nil {
		return 0, fmt.Errorf("vacuum: %w", err)
	}
	var (
		counting atomic.Bool
		count    atomic.Int64
		seq      atomic.Int64
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
	)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range b.cfg.TriggerClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				id := v.ids[rand.IntN(len(v.ids))]
				_, err := pool.Exec(runCtx, `UPDATE events SET title = $2 WHERE event_id = $1`, id, fmt.Sprintf("Bench event %d", seq.Add(1)))
				if err != nil {
					if runCtx.Err() == nil {
						errOnce.Do(func() { firstErr = err; cancel() })
					}
					return
				}
				if counting.Load() {
					count.Add(1)
				}
			}
		}()
	}
	warmUp := time.NewTimer(300 * time.Millisecond)
	select {
	case <-warmUp.C:
	case <-runCtx.Done():
	}
	counting.Store(true)
	start := time.Now()
	measure := time.NewTimer(b.cfg.TriggerDuration)
	select {
	case <-measure.C:
	case <-runCtx.Done():
	}
	counting.Store(false)
	elapsed := time.Since(start)
	cancel()
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return float64(count.Load()) / elapsed.Seconds(), nil
}
