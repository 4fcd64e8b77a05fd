package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Figures names every figure Run knows, in the order it runs them.
var Figures = []string{"trigger", "statements", "drain", "latency", "rate", "writes", "backfill", "drift", "lanes"}

// Config is one run's settings. Zero values take the defaults make bench
// uses.
type Config struct {
	// DatabaseURL names the PostgreSQL server (any database on it); every
	// figure runs in databases Run creates there and drops afterwards.
	DatabaseURL string
	// Repetitions of every figure. Defaults to 3.
	Repetitions int
	// Only, when not empty, limits the run to these figures (see Figures).
	Only []string
	// OutDir receives bench-results.json, the CPU profile and the syncctl
	// binary. Defaults to .tmp/bench.
	OutDir string
	// Profile, when set, writes a CPU profile of one extra sync drain to
	// OutDir/drain.cpu.pprof.
	Profile bool
	// Log receives progress lines. Defaults to discarding.
	Log io.Writer

	// Sizes, each defaulting to the issue's.
	TriggerRows     int           // 10,000 events
	TriggerClients  int           // 4
	TriggerDuration time.Duration // 3 s of UPDATEs per variant and repetition
	DrainJobs       int           // 10,000 (the 20,000 takes too long for one run; see doc.go)
	Concurrency     int           // 50 jobs at once in the drains
	// PoolMaxConns sizes the drains' pools. Defaults to Concurrency + 5,
	// as `syncctl worker` sizes its own.
	PoolMaxConns    int
	LatencyInserts  int           // 500
	RateJobs        int           // 3,000
	RateConcurrency int           // 50
	BackfillEvents  int           // 25,000 events, 3 tickets each: 100,000 entities
	RSSWindow       time.Duration // 10 s of worker life per RSS reading
	// StatementTickets is how many ticket rows figure 8's set-based
	// INSERT and UPDATE change in one statement (10,000), and
	// StatementCascade how many tickets the deleted event has (1,000).
	StatementTickets int
	StatementCascade int
	LanesEntities    int // 10,000 entities backfilled in figure 9
	LanesEdits       int // 30 edits, one a second
	LanesConcurrency int // 20: syncctl worker --concurrency in figure 9
	// LanesRepetitions of figure 9, whose runs take minutes. Defaults to 1.
	LanesRepetitions int
}

func (c *Config) defaults() {
	setInt := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	setDur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	setInt(&c.Repetitions, 3)
	setInt(&c.TriggerRows, 10000)
	setInt(&c.TriggerClients, 4)
	setDur(&c.TriggerDuration, 3*time.Second)
	setInt(&c.DrainJobs, 10000)
	setInt(&c.Concurrency, 50)
	setInt(&c.LatencyInserts, 500)
	setInt(&c.RateJobs, 3000)
	setInt(&c.RateConcurrency, 50)
	setInt(&c.BackfillEvents, 25000)
	setDur(&c.RSSWindow, 10*time.Second)
	setInt(&c.StatementTickets, 10000)
	setInt(&c.StatementCascade, 1000)
	setInt(&c.LanesEntities, 10000)
	setInt(&c.LanesEdits, 30)
	setInt(&c.LanesConcurrency, 20)
	setInt(&c.LanesRepetitions, 1)
	if c.OutDir == "" {
		c.OutDir = filepath.Join(".tmp", "bench")
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// runner carries one run's shared state.
type runner struct {
	cfg    Config
	srv    *Server
	report *Report
	// syncctl is the built binary, for the figures that run it.
	syncctl string
}

// Run measures the figures cfg selects and returns the report. A figure
// whose measurement fails stops the run with its error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	for _, f := range cfg.Only {
		if !slices.Contains(Figures, f) {
			return nil, fmt.Errorf("unknown figure %q (want one of %s)", f, strings.Join(Figures, ", "))
		}
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("no database: set TEST_DATABASE_URL or DATABASE_URL (make bench starts a throwaway PostgreSQL)")
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, err
	}
	start := time.Now()
	srv, err := NewServer(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = srv.Close(closeCtx)
	}()
	b := &runner{cfg: cfg, srv: srv, report: &Report{
		StartedAt:   start.UTC().Truncate(time.Second),
		Repetitions: cfg.Repetitions,
		Server:      srv.Version(),
		Machine:     fmt.Sprintf("%d CPUs, %s %s/%s", runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH),
	}}

	steps := map[string]func(context.Context) error{
		"trigger":    b.figureTrigger,
		"statements": b.figureStatements,
		"drain":      b.figureDrain,
		"latency":    b.figureLatency,
		"rate":       b.figureRate,
		"writes":     b.figureWrites,
		"backfill":   b.figureBackfill,
		"drift":      b.figureDrift,
		"lanes":      b.figureLanes,
	}
	for _, name := range Figures {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, name) {
			continue
		}
		figStart := time.Now()
		b.logf("== %s", name)
		if err := steps[name](ctx); err != nil {
			return b.report, fmt.Errorf("%s: %w", name, err)
		}
		b.logf("== %s done in %s", name, time.Since(figStart).Round(time.Second))
	}
	b.report.Duration = time.Since(start).Round(time.Second).String()
	return b.report, nil
}

func (b *runner) logf(format string, args ...any) {
	fmt.Fprintf(b.cfg.Log, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (b *runner) note(format string, args ...any) {
	b.report.Notes = append(b.report.Notes, fmt.Sprintf(format, args...))
}

// database is a fresh database of the run, with a pool on it.
type database struct {
	URL  string
	Pool *pgxpool.Pool
	// Counter counts the pool's round trips, when the poolConfig asked.
	Counter *Counter
}

// withDB runs fn on a pool over a fresh database cloned from the template,
// and drops the database afterwards.
func (b *runner) withDB(ctx context.Context, name string, pc poolConfig, fn func(*database) error) error {
	dbURL, err := b.srv.Clone(ctx, name)
	if err != nil {
		return err
	}
	defer func() {
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = b.srv.Drop(dropCtx, dbURL)
	}()
	pool, err := openPool(ctx, dbURL, pc)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(&database{URL: dbURL, Pool: pool, Counter: pc.counter})
}

// buildSyncctl builds the syncctl binary once into OutDir.
func (b *runner) buildSyncctl(ctx context.Context) (string, error) {
	if b.syncctl != "" {
		return b.syncctl, nil
	}
	bin, err := filepath.Abs(filepath.Join(b.cfg.OutDir, "syncctl"))
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/lodgetix/stripe-sync/cmd/syncctl").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build syncctl: %w\n%s", err, out)
	}
	b.syncctl = bin
	return bin, nil
}
