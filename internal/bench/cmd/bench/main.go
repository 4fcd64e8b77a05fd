// Command bench runs stripe-sync's benchmarks (see package bench) and prints
// one table; `make bench` runs it against a throwaway PostgreSQL.
//
//	go run ./internal/bench/cmd/bench [-reps 3] [-only drain,rate] [-profile] [-out .tmp/bench]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lodgetix/stripe-sync/internal/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		cfg  bench.Config
		only string
	)
	flag.IntVar(&cfg.Repetitions, "reps", 3, "repetitions of every figure (at least 3 for the table's min/median/max to mean anything)")
	flag.StringVar(&only, "only", "", "comma-separated figures to run: "+strings.Join(bench.Figures, ","))
	flag.StringVar(&cfg.OutDir, "out", filepath.Join(".tmp", "bench"), "directory for bench-results.json, the profile and the syncctl binary")
	flag.BoolVar(&cfg.Profile, "profile", false, "also write a CPU profile of one extra sync drain to OUT/drain.cpu.pprof")
	flag.IntVar(&cfg.DrainJobs, "drain-jobs", 10000, "jobs per drain (figure 2; the issue's 20,000 adds about 2 minutes)")
	flag.IntVar(&cfg.Concurrency, "concurrency", 50, "jobs worked at once in the drains (figure 2)")
	flag.IntVar(&cfg.PoolMaxConns, "pool-max-conns", 0, "connections in the drains' pools (0: concurrency + 5, as syncctl worker)")
	flag.IntVar(&cfg.LatencyInserts, "latency-inserts", 500, "single inserts per latency repetition (figure 3)")
	flag.IntVar(&cfg.RateJobs, "rate-jobs", 3000, "jobs per rate-limited repetition (figure 4)")
	flag.IntVar(&cfg.RateConcurrency, "rate-concurrency", 50, "syncctl worker --concurrency in figure 4")
	flag.IntVar(&cfg.BackfillEvents, "backfill-events", 25000, "events (3 tickets each) to backfill (figure 6)")
	flag.DurationVar(&cfg.TriggerDuration, "trigger-duration", 3*time.Second, "UPDATE time per variant and repetition (figure 1)")
	flag.DurationVar(&cfg.RSSWindow, "rss-window", 10*time.Second, "how long the worker runs before its peak RSS is read (figure 6)")
	flag.IntVar(&cfg.StatementTickets, "statement-tickets", 10000, "ticket rows one INSERT or UPDATE statement changes (figure 8)")
	flag.IntVar(&cfg.StatementCascade, "statement-cascade", 1000, "tickets of the event one DELETE removes (figure 8)")
	flag.IntVar(&cfg.LanesEntities, "lanes-entities", 10000, "entities backfilled in figure 9 (edit during a backfill)")
	flag.IntVar(&cfg.LanesEdits, "lanes-edits", 30, "edits in figure 9, one a second")
	flag.IntVar(&cfg.LanesConcurrency, "lanes-concurrency", 20, "syncctl worker --concurrency in figure 9")
	flag.IntVar(&cfg.LanesRepetitions, "lanes-reps", 1, "repetitions of figure 9 (each takes minutes without lanes)")
	flag.Parse()
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}
	cfg.DatabaseURL = os.Getenv("TEST_DATABASE_URL")
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = os.Getenv("DATABASE_URL")
	}
	cfg.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	report, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	path := filepath.Join(cfg.OutDir, "bench-results.json")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer f.Close()
	if err := report.WriteJSON(f); err != nil {
		fmt.Fprintln(os.Stderr, "bench: write results:", err)
		return 1
	}
	fmt.Printf("\nstripe-sync benchmarks: %d repetitions, %s, %s\n", report.Repetitions, report.Machine, firstWords(report.Server, 2))
	fmt.Printf("ratio = value / baseline per repetition; ratio, min and max are over the repetitions; met compares the target with the median.\n\n")
	if err := report.WriteTable(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("\nJSON: %s (took %s)\n", path, report.Duration)
	return 0
}

func firstWords(s string, n int) string {
	words := strings.Fields(s)
	return strings.Join(words[:min(n, len(words))], " ")
}
