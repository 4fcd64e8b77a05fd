package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// statementEvents is how many events figure 8's tickets hang off.
const statementEvents = 10

// statementCase is one set-based statement of figure 8.
type statementCase struct {
	name string
	// prepare puts the database in the state the statement starts from,
	// with the triggers off if the variant has them off anyway.
	prepare func(ctx context.Context, pool *pgxpool.Pool) error
	sql     string
	// floorSQL makes the same change and inserts the same job rows as the
	// triggers would, in one statement with no trigger: the floor.
	floorSQL string
}

// floorJobsSQL inserts the sync triggers' river_job rows for the ids in the
// CTE "changed" (kind, id), as the triggers would.
const floorJobsSQL = `
	INSERT INTO river_job (args, kind, max_attempts, metadata, priority, queue, state, tags, unique_key, unique_states)
	SELECT a::jsonb, k, 25, '{}', 1, 'stripe_sync', 'available', '{}'::varchar(255)[],
	       sha256(convert_to('&kind=' || k || '&args=' || a, 'UTF8')), 241::integer::bit(8)
	FROM (SELECT 'stripe_sync_' || kind AS k, '{"' || CASE kind WHEN 'event' THEN 'event_id' ELSE 'ticket_id' END || '":"' || id || '"}' AS a
	      FROM changed) src
	ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL
	    AND river_job_state_in_bitmask(unique_states, state)
	DO NOTHING`

// figureStatements is figure 8: one statement changing many rows, with the
// sync triggers (statement-level, set-based) and without any, in two
// databases measured in turn: an INSERT of StatementTickets tickets, an
// UPDATE of as many, and a DELETE of an event with StatementCascade tickets
// (the foreign key cascades). Each statement starts from an empty queue.
func (b *runner) figureStatements(ctx context.Context) error {
	n, cascade := b.cfg.StatementTickets, b.cfg.StatementCascade
	insertTickets := fmt.Sprintf(`
		INSERT INTO event_tickets (id, event_id, name, price, eligibility_criteria, total_capacity)
		SELECT gen_random_uuid(), e.event_id, 'Tier ' || g, 10 + g %% 90, '{"rank": "any"}', 100
		FROM (SELECT event_id FROM events WHERE slug LIKE 'bench-%%' ORDER BY event_id LIMIT %d) e
		CROSS JOIN generate_series(1, %d) g`, statementEvents, n/statementEvents)
	truncate := func(ctx context.Context, pool *pgxpool.Pool) error {
		_, err := pool.Exec(ctx, `TRUNCATE event_tickets`)
		return err
	}
	cases := []statementCase{
		{name: "insert", prepare: truncate, sql: insertTickets,
			floorSQL: `WITH t AS (` + insertTickets + ` RETURNING id), changed AS (SELECT 'ticket' AS kind, id FROM t)` + floorJobsSQL},
		{name: "update", prepare: func(ctx context.Context, pool *pgxpool.Pool) error {
			if err := truncate(ctx, pool); err != nil {
				return err
			}
			return quietly(ctx, pool, insertTickets)
		}, sql: `UPDATE event_tickets SET price = price + 1`,
			floorSQL: `WITH t AS (UPDATE event_tickets SET price = price + 1 RETURNING id), changed AS (SELECT 'ticket' AS kind, id FROM t)` + floorJobsSQL},
		{name: "delete", prepare: func(ctx context.Context, pool *pgxpool.Pool) error {
			if err := truncate(ctx, pool); err != nil {
				return err
			}
			_, err := pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title, slug) VALUES ($1, $2, 'Cascade', 'cascade')
				ON CONFLICT DO NOTHING`, cascadeEventID, orgID)
			if err != nil {
				return err
			}
			return quietly(ctx, pool, fmt.Sprintf(`
				INSERT INTO event_tickets (id, event_id, name, price) SELECT gen_random_uuid(), '%s', 'Tier ' || g, g
				FROM generate_series(1, %d) g`, cascadeEventID, cascade))
		}, sql: `DELETE FROM events WHERE event_id = '` + cascadeEventID + `'`,
			floorSQL: `WITH t AS (DELETE FROM event_tickets WHERE event_id = '` + cascadeEventID + `' RETURNING id),
				e AS (DELETE FROM events WHERE event_id = '` + cascadeEventID + `' RETURNING event_id),
				changed AS (SELECT 'ticket' AS kind, id FROM t UNION ALL SELECT 'event', event_id FROM e)` + floorJobsSQL},
	}

	type variant struct {
		name string
		db   *database
	}
	var variants []variant
	for _, name := range []string{"sync", "none"} {
		dbURL, err := b.srv.Clone(ctx, "statements_"+name)
		if err != nil {
			return err
		}
		defer func() {
			dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = b.srv.Drop(dropCtx, dbURL)
		}()
		pool, err := openPool(ctx, dbURL, poolConfig{app: "bench statements " + name})
		if err != nil {
			return err
		}
		defer pool.Close()
		if err := createOrg(ctx, pool); err != nil {
			return err
		}
		if err := insertEvents(ctx, pool, statementEvents, false); err != nil {
			return err
		}
		if name == "none" {
			if _, err := pool.Exec(ctx, `ALTER TABLE events DISABLE TRIGGER USER; ALTER TABLE event_tickets DISABLE TRIGGER USER`); err != nil {
				return err
			}
		}
		variants = append(variants, variant{name: name, db: &database{URL: dbURL, Pool: pool}})
		if name == "none" {
			variants = append(variants, variant{name: "floor", db: &database{URL: dbURL, Pool: pool}})
		}
	}

	took := map[string][]float64{}
	for rep := 1; rep <= b.cfg.Repetitions; rep++ {
		for _, c := range cases {
			for i := range variants {
				v := variants[(i+rep-1)%len(variants)]
				pool := v.db.Pool
				if err := c.prepare(ctx, pool); err != nil {
					return fmt.Errorf("%s %s: prepare: %w", v.name, c.name, err)
				}
				if _, err := pool.Exec(ctx, `TRUNCATE river_job, stripe_sync_state`); err != nil {
					return err
				}
				if _, err := pool.Exec(ctx, `VACUUM ANALYZE events, event_tickets, river_job, stripe_sync_state`); err != nil {
					return err
				}
				sql := c.sql
				if v.name == "floor" {
					sql = c.floorSQL
				}
				start := time.Now()
				tag, err := pool.Exec(ctx, sql)
				elapsed := time.Since(start)
				if err != nil {
					return fmt.Errorf("%s %s: %w", v.name, c.name, err)
				}
				want := int64(n)
				if c.name == "delete" {
					want = 1
				}
				if v.name != "floor" && tag.RowsAffected() != want {
					return fmt.Errorf("%s %s changed %d rows, want %d", v.name, c.name, tag.RowsAffected(), want)
				}
				if v.name != "none" {
					var jobs int
					if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&jobs); err != nil {
						return err
					}
					wantJobs := n
					if c.name == "delete" {
						wantJobs = 1 + cascade
					}
					if jobs != wantJobs {
						return fmt.Errorf("%s left %d jobs, want %d", c.name, jobs, wantJobs)
					}
				}
				// Rows per second, so that higher is better as in figure 1.
				took[v.name+" "+c.name] = append(took[v.name+" "+c.name], float64(want)/elapsed.Seconds())
			}
		}
		b.logf("statements rep %d: insert %.0f / %.0f / %.0f rows/s, update %.0f / %.0f / %.0f rows/s, delete %.1f / %.1f / %.1f statements/s (sync / none / floor)", rep,
			last(took["sync insert"]), last(took["none insert"]), last(took["floor insert"]),
			last(took["sync update"]), last(took["none update"]), last(took["floor update"]),
			last(took["sync delete"]), last(took["none delete"]), last(took["floor delete"]))
	}
	perRow := func(k string) []float64 {
		out := make([]float64, len(took[k]))
		copy(out, took[k])
		return out
	}
	b.report.Rows = append(b.report.Rows,
		newRow(fmt.Sprintf("8a INSERT of %d tickets, one statement", n), "rows/s", "no trigger",
			perRow("sync insert"), perRow("none insert"), &Goal{On: "ratio", Op: ">=", Bound: 0.5},
			fmt.Sprintf("One autocommit statement, from an empty queue, sync (statement-level) triggers vs DISABLE TRIGGER USER, "+
				"two databases measured in turn; the sync run must leave one job per changed row. Tickets hang off %d events.", statementEvents)),
		newRow(fmt.Sprintf("8b UPDATE of %d tickets, one statement", n), "rows/s", "no trigger",
			perRow("sync update"), perRow("none update"), &Goal{On: "ratio", Op: ">=", Bound: 0.5}, "UPDATE event_tickets SET price = price + 1."),
		newRow(fmt.Sprintf("8c DELETE of an event with %d tickets", cascade), "DELETE/s", "no trigger",
			perRow("sync delete"), perRow("none delete"), &Goal{On: "ratio", Op: ">=", Bound: 0.5},
			"The foreign key's ON DELETE CASCADE deletes the tickets; the sync run leaves one event and one job per ticket."),
		newRow("8d INSERT, sync trigger / floor", "rows/s", "floor: the same change and River's rows in one statement, no trigger",
			perRow("sync insert"), perRow("floor insert"), nil,
			"The floor is one statement making the same change and inserting the same river_job rows (a CTE, no trigger): what River's "+
				"rows alone cost. 8d-8f show how close the set-based triggers get to it (what is ours); floor / none is 8a's ratio / 8d's."),
		newRow("8e UPDATE, sync trigger / floor", "rows/s", "floor", perRow("sync update"), perRow("floor update"), nil, ""),
		newRow("8f DELETE with cascade, sync trigger / floor", "DELETE/s", "floor (tickets and event deleted by the CTE)",
			perRow("sync delete"), perRow("floor delete"), nil, ""),
	)
	return nil
}

// cascadeEventID is figure 8's event with many tickets.
const cascadeEventID = "0e000000-0000-4000-8000-00000000cade"

// quietly runs sql with the triggers off, as rows that predate the install.
func quietly(ctx context.Context, pool *pgxpool.Pool, sql string) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func last(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}
