package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

func TestNewStats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		samples          []float64
		median, min, max float64
	}{
		{"Odd", []float64{3, 1, 2}, 2, 1, 3},
		{"Even", []float64{4, 1, 3, 2}, 2.5, 1, 4},
		{"One", []float64{7}, 7, 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewStats(tt.samples)
			require.Equal(t, tt.median, s.Median)
			require.Equal(t, tt.min, s.Min)
			require.Equal(t, tt.max, s.Max)
			require.Equal(t, tt.samples, s.Samples, "samples keep their order")
		})
	}
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		s := NewStats(nil)
		require.True(t, math.IsNaN(s.Median) && math.IsNaN(s.Min) && math.IsNaN(s.Max))
	})
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	samples := make([]float64, 100)
	for i := range samples {
		samples[i] = float64(100 - i) // 100..1, unsorted on purpose
	}
	require.Equal(t, 50.0, Percentile(samples, 50))
	require.Equal(t, 99.0, Percentile(samples, 99))
	require.Equal(t, 100.0, Percentile(samples, 100))
	require.Equal(t, 1.0, Percentile(samples, 0.5))
	require.Equal(t, 5.0, Percentile([]float64{5}, 99))
	require.True(t, math.IsNaN(Percentile(nil, 50)))
}

func TestNewRow(t *testing.T) {
	t.Parallel()
	t.Run("RatioPerRepetition", func(t *testing.T) {
		t.Parallel()
		r := newRow("x", "u", "b", []float64{10, 30, 20}, []float64{20, 30, 80}, &Goal{On: "ratio", Op: ">=", Bound: 0.5}, "")
		require.Equal(t, []float64{0.5, 1, 0.25}, r.Ratio.Samples)
		require.Equal(t, 0.5, r.Ratio.Median)
		require.Equal(t, 20.0, r.Value.Median)
		require.Equal(t, 30.0, r.Baseline.Median)
		require.NotNil(t, r.Met)
		require.True(t, *r.Met, "median ratio 0.5 >= 0.5")
	})
	t.Run("GoalOnValue", func(t *testing.T) {
		t.Parallel()
		r := newRow("x", "ms", "b", []float64{40, 60, 55}, []float64{1, 1, 1}, &Goal{On: "value", Op: "<", Bound: 50}, "")
		require.False(t, *r.Met, "median 55 is not < 50")
	})
	t.Run("NoBaseline", func(t *testing.T) {
		t.Parallel()
		r := newRow("x", "429s", "none", []float64{0, 0, 3}, nil, &Goal{On: "value", Op: "==", Bound: 0}, "")
		require.True(t, math.IsNaN(r.Ratio.Median))
		require.True(t, *r.Met)
		b, err := json.Marshal(r)
		require.NoError(t, err, "NaN must not break the JSON")
		require.Contains(t, string(b), `"ratio":{"median":null,"min":null,"max":null,"samples":[]}`)
	})
	t.Run("ZeroOverZero", func(t *testing.T) {
		t.Parallel()
		r := newRow("x", "writes", "seed", []float64{0}, []float64{0}, nil, "")
		require.Equal(t, 1.0, r.Ratio.Median)
		require.Nil(t, r.Met)
	})
}

func TestReport_WriteTable(t *testing.T) {
	t.Parallel()
	r := &Report{Rows: []Row{
		newRow("1a trigger", "UPDATE/s", "no trigger", []float64{700, 800, 900}, []float64{1000, 1000, 1000},
			&Goal{On: "ratio", Op: ">=", Bound: 0.7}, "Some setting."),
		newRow("4b 429s", "429s", "none", []float64{2, 0, 1}, nil, &Goal{On: "value", Op: "==", Bound: 0}, ""),
	}, Notes: []string{"A note."}}
	var buf bytes.Buffer
	require.NoError(t, r.WriteTable(&buf))
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	fields := func(s string) string { return strings.Join(strings.Fields(strings.ReplaceAll(s, "|", " ")), " ") }
	require.Equal(t, "figure value baseline ratio min max target met", fields(lines[0]))
	require.Equal(t, "1a trigger 800 UPDATE/s 1000 0.80 0.70 0.90 >= 0.7 yes", fields(lines[1]))
	require.Equal(t, "4b 429s 1 429s - - - - value == 0 NO", fields(lines[2]))
	require.Equal(t, "", lines[3])
	require.Equal(t, "1a trigger: baseline = no trigger; value 700..900 over 3 repetitions. Some setting.", lines[4])
	require.Equal(t, "4b 429s: baseline = none; value 0..2 over 3 repetitions.", lines[5])
	require.Equal(t, "A note.", lines[6])
}

// newTestRunner returns a runner on TEST_DATABASE_URL's server, with small
// sizes for whatever cfg leaves zero.
func newTestRunner(t *testing.T, cfg Config) *runner {
	t.Helper()
	dbURL := os.Getenv("TEST_DATABASE_URL")
	require.NotEmpty(t, dbURL, "TEST_DATABASE_URL is not set; run the tests with `make test`")
	srv, err := NewServer(context.Background(), dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close(context.Background())) })
	cfg.OutDir = t.TempDir()
	cfg.defaults()
	return &runner{cfg: cfg, srv: srv, report: &Report{}}
}

func TestServer_Clone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newTestRunner(t, Config{})
	dbURL, err := b.srv.Clone(ctx, "clone")
	require.NoError(t, err)

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	var tables int
	require.NoError(t, conn.QueryRow(ctx, `
		SELECT count(*) FROM pg_tables
		WHERE (schemaname = 'public' AND tablename IN ('events', 'event_tickets', 'organisations'))
		   OR (schemaname = 'stripe_sync' AND tablename IN ('river_job', 'stripe_sync_state', 'stripe_sync_log'))`).Scan(&tables))
	require.Equal(t, 6, tables, "the clone holds the fixture and every migration")
	require.NoError(t, conn.Close(ctx))

	require.NoError(t, b.srv.Drop(ctx, dbURL))
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	var exists bool
	require.NoError(t, b.srv.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`,
		strings.TrimPrefix(u.Path, "/")).Scan(&exists))
	require.False(t, exists)
}

func TestCounter_roundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newTestRunner(t, Config{})
	counter := &Counter{}
	err := b.withDB(ctx, "counter", poolConfig{app: "bench counter test", counter: counter}, func(db *database) error {
		counter.Reset()
		require.NoError(t, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
				return err
			}
			batch := &pgx.Batch{}
			batch.Queue(`SELECT 2`)
			batch.Queue(`SELECT 3`)
			return tx.SendBatch(ctx, batch).Close()
		}))
		_, err := db.Pool.Exec(ctx, "-- name: RiverLike :exec\nSELECT 4")
		return err
	})
	require.NoError(t, err)
	// BEGIN, SELECT 1, the batch, COMMIT, the River-named statement.
	require.Equal(t, int64(5), counter.RoundTrips())
	require.Equal(t, int64(1), counter.River())
}

func TestFigureWrites_oursAndSeed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newTestRunner(t, Config{})
	changes := writesChanges()

	ours, requests, err := b.oursWrites(ctx, changes)
	require.NoError(t, err)
	targets := make([]int, len(changes))
	for i, c := range changes {
		targets[i] = c.target
	}
	require.Equal(t, targets, ours, "the issue's targets: burst 1, unchanged 0, price 2, name 1, new event with 5 tickets 6")
	require.Equal(t, targets, requests, "every request a change: no read where nothing may have been created")

	seed, _, err := b.seedWrites(ctx, changes)
	require.NoError(t, err)
	// Seed: a products.update per UPDATE; its ticket trigger has no WHEN, so
	// an unchanged ticket still archives and creates a Price; a name change
	// does the same.
	require.Equal(t, []int{100, 2, 2, 2, 6}, seed)
}

// seedTriggerAsWritten is the seed's trigger function exactly as the seed
// gives it.
const seedTriggerAsWritten = `
CREATE OR REPLACE FUNCTION trigger_stripe_sync()
RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify(
    'stripe_sync',
    json_build_object(
      'type', TG_TABLE_NAME,
      'action', TG_OP,
      'id', CASE
        WHEN TG_TABLE_NAME = 'events' THEN NEW.event_id
        WHEN TG_TABLE_NAME = 'event_tickets' THEN NEW.id
      END
    )::text
  );
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;`

func TestSeedTrigger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newTestRunner(t, Config{})

	t.Run("AsWrittenFailsOnEvents", func(t *testing.T) {
		t.Parallel()
		err := b.withDB(ctx, "seed_as_written", poolConfig{app: "bench seed test"}, func(db *database) error {
			_, err := db.Pool.Exec(ctx, dropSyncTriggersSQL+seedTriggerAsWritten+`
				CREATE TRIGGER sync_event_to_stripe AFTER UPDATE ON events
				FOR EACH ROW EXECUTE FUNCTION trigger_stripe_sync();`)
			require.NoError(t, err)
			require.NoError(t, createOrg(ctx, db.Pool))
			require.NoError(t, insertEvents(ctx, db.Pool, 1, false))
			_, err = db.Pool.Exec(ctx, `UPDATE events SET title = 'Renamed'`)
			return err
		})
		require.ErrorContains(t, err, `record "new" has no field "id"`, "why the benchmark splits the seed's function per table")
	})

	t.Run("AsMeasuredNotifiesPerRow", func(t *testing.T) {
		t.Parallel()
		err := b.withDB(ctx, "seed_measured", poolConfig{app: "bench seed test"}, func(db *database) error {
			require.NoError(t, installSeedTriggers(ctx, db.Pool))
			require.NoError(t, createOrg(ctx, db.Pool))
			require.NoError(t, insertEvents(ctx, db.Pool, 2, false))
			listener, err := pgx.Connect(ctx, db.URL)
			require.NoError(t, err)
			defer listener.Close(ctx)
			_, err = listener.Exec(ctx, `LISTEN stripe_sync`)
			require.NoError(t, err)

			_, err = db.Pool.Exec(ctx, `UPDATE events SET title = title || ' renamed'`)
			require.NoError(t, err)
			_, err = db.Pool.Exec(ctx, `UPDATE events SET slug = slug || '-x'`)
			require.NoError(t, err, "slug is not in the seed's WHEN: no notification")
			_, err = db.Pool.Exec(ctx, `SELECT pg_notify('stripe_sync', $1)`, seedSentinel)
			require.NoError(t, err)

			var got []seedNotification
			for {
				waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
				n, err := listener.WaitForNotification(waitCtx)
				cancel()
				require.NoError(t, err)
				if n.Payload == seedSentinel {
					break
				}
				var sn seedNotification
				require.NoError(t, json.Unmarshal([]byte(n.Payload), &sn))
				got = append(got, sn)
			}
			require.Len(t, got, 2, "one notification per updated row")
			for _, n := range got {
				require.Equal(t, "events", n.Type)
				require.Equal(t, "UPDATE", n.Action)
				require.Len(t, n.ID, 36)
			}
			return nil
		})
		require.NoError(t, err)
	})
}

// TestRun_smallScale runs the in-process figures at a tiny scale: it proves
// the benchmark works end to end (every drain completes, every row is
// reported), not how fast anything is.
func TestRun_smallScale(t *testing.T) {
	t.Parallel()
	dbURL := os.Getenv("TEST_DATABASE_URL")
	require.NotEmpty(t, dbURL, "TEST_DATABASE_URL is not set; run the tests with `make test`")
	report, err := Run(context.Background(), Config{
		DatabaseURL:      dbURL,
		Only:             []string{"trigger", "statements", "drain", "latency", "writes"},
		Repetitions:      1,
		OutDir:           t.TempDir(),
		TriggerRows:      50,
		TriggerDuration:  100 * time.Millisecond,
		StatementTickets: 100,
		StatementCascade: 10,
		DrainJobs:        30,
		Concurrency:      5,
		LatencyInserts:   3,
	})
	require.NoError(t, err)
	var figures []string
	for _, r := range report.Rows {
		figures = append(figures, r.Figure)
		require.Len(t, r.Value.Samples, 1, "%s: one repetition", r.Figure)
		if r.Figure == "2d server CPU per job" {
			continue // NaN, rightly, when the server runs on another machine
		}
		for _, v := range r.Value.Samples {
			require.False(t, math.IsNaN(v), r.Figure)
		}
	}
	require.Equal(t, []string{
		"1a UPDATEs with sync trigger / none", "1b UPDATEs with sync trigger / seed's",
		"1c UPDATEs with River's row alone / none", "1d UPDATEs with sync trigger / River's row alone",
		"1e sync trigger, River's bitmask function inlinable / as locked down",
		"8a INSERT of 100 tickets, one statement", "8b UPDATE of 100 tickets, one statement", "8c DELETE of an event with 10 tickets",
		"8d INSERT, sync trigger / floor", "8e UPDATE, sync trigger / floor", "8f DELETE with cascade, sync trigger / floor",
		"2a drain / River no-op drain", "2b drain / minimal job drain", "2c DB round trips per job", "2d server CPU per job",
		"3a commit-to-Stripe p50", "3b commit-to-Stripe p99",
		"5a writes: burst of 100 updates to one event", "5b writes: unchanged update (1 event, 1 ticket)",
		"5c writes: price change", "5d writes: ticket name change", "5e writes: new event with 5 tickets",
		"5a requests: burst of 100 updates to one event", "5b requests: unchanged update (1 event, 1 ticket)",
		"5c requests: price change", "5d requests: ticket name change", "5e requests: new event with 5 tickets",
	}, figures)
	var buf bytes.Buffer
	require.NoError(t, report.WriteJSON(&buf))
	var decoded map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &decoded))
	require.Len(t, decoded["rows"], len(figures))
}

func TestRun_unknownFigure(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Config{DatabaseURL: "postgres://unused", Only: []string{"speed"}})
	require.EqualError(t, err, `unknown figure "speed" (want one of trigger, statements, drain, latency, rate, writes, backfill, drift, lanes)`)
}
