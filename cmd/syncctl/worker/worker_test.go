package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
	"github.com/lodgetix/stripe-sync/stripeclient/pglimiter"
)

func TestNewCmdWorker(t *testing.T) {
	t.Parallel()
	defaults := func(o Options) *Options {
		base := Options{Concurrency: 10, MetricsAddr: "127.0.0.1:9464", ShutdownTimeout: 30 * time.Second,
			JobTimeout: 2 * time.Minute, LogRetention: 30 * 24 * time.Hour, LogFormat: "text", LogLevel: "info", Currency: "aud",
			EndpointRate: pglimiter.DefaultEndpointRate, ReconcileEvery: 24 * time.Hour}
		if o.Rate != 0 {
			base.Rate = o.Rate
		}
		if o.AccountRate != 0 {
			base.AccountRate = o.AccountRate
		}
		if o.EndpointRate != 0 {
			base.EndpointRate = o.EndpointRate
		}
		if o.JobTimeout != 0 {
			base.JobTimeout = o.JobTimeout
		}
		if o.RescueStuckAfter != 0 {
			base.RescueStuckAfter = o.RescueStuckAfter
		}
		if o.LogRetention != 0 {
			base.LogRetention = o.LogRetention
		}
		if o.LogFormat != "" {
			base.LogFormat = o.LogFormat
		}
		return &base
	}
	for _, tt := range []struct {
		name      string
		args      []string
		env       map[string]string
		want      *Options
		wantUsage string
	}{
		{name: "Defaults", args: nil, want: defaults(Options{})},
		{name: "Rates", args: []string{"--rate", "10", "--account-rate", "2.5"}, want: defaults(Options{Rate: 10, AccountRate: 2.5})},
		{name: "CrashTimings", args: []string{"--job-timeout", "5s", "--rescue-stuck-after", "10s"},
			want: defaults(Options{JobTimeout: 5 * time.Second, RescueStuckAfter: 10 * time.Second})},
		{name: "LogRetention", args: []string{"--log-retention", "168h", "--log-format", "json"},
			want: defaults(Options{LogRetention: 168 * time.Hour, LogFormat: "json"})},
		{name: "RescueNotAfterTimeout", args: []string{"--job-timeout", "10s", "--rescue-stuck-after", "10s"},
			wantUsage: "--rescue-stuck-after must exceed --job-timeout (10s)"},
		{name: "RescueBeforeDefaultTimeout", args: []string{"--rescue-stuck-after", "1m"},
			wantUsage: "--rescue-stuck-after must exceed --job-timeout (2m0s)"},
		{name: "ZeroJobTimeout", args: []string{"--job-timeout", "0s"}, wantUsage: "--job-timeout must be positive"},
		{name: "ZeroLogRetention", args: []string{"--log-retention", "0s"}, wantUsage: "--log-retention must be positive"},
		{name: "EndpointRate", args: []string{"--endpoint-rate", "10"}, want: defaults(Options{EndpointRate: 10})},
		{name: "NegativeRate", args: []string{"--rate", "-1"}, wantUsage: "--rate, --endpoint-rate and --account-rate must not be negative"},
		{name: "EndpointRateFromEnv", env: map[string]string{"SYNCCTL_ENDPOINT_RATE": "12"}, want: defaults(Options{EndpointRate: 12})},
		{name: "EndpointRateFlagOverEnv", args: []string{"--endpoint-rate", "5"}, env: map[string]string{"SYNCCTL_ENDPOINT_RATE": "12"},
			want: defaults(Options{EndpointRate: 5})},
		{name: "NegativeEndpointRate", args: []string{"--endpoint-rate", "-1"}, wantUsage: "--rate, --endpoint-rate and --account-rate must not be negative"},
		{name: "BadLogFormat", args: []string{"--log-format", "xml"}, wantUsage: `--log-format must be text or json, not "xml"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := cmdtest.Command[Options]{NewCmd: NewCmdWorker, Env: tt.env}.Parse(t, tt.args...)
			if tt.wantUsage != "" {
				require.EqualError(t, err, tt.wantUsage)
				require.Equal(t, 2, cmdutil.ExitCode(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDefaultRate(t *testing.T) {
	t.Parallel()
	require.Equal(t, 25.0, DefaultRate("sk_test_abc"))
	require.Equal(t, 25.0, DefaultRate("rk_test_abc"))
	require.Equal(t, 100.0, DefaultRate("sk_live_abc"))
	require.Equal(t, 100.0, DefaultRate("rk_live_abc"))
}

const (
	testKey   = "sk_test_workerRunSECRET9f8e7d"
	testOrg   = "0a000000-0000-4000-8000-0000000000aa"
	testEvent = "0e000000-0000-4000-8000-000000000001"
	testAcct  = "acct_1WorkerTest"
)

// scrape returns every sample of /metrics by its series, for example
// `stripe_sync_jobs_total{kind="stripe_sync_event",outcome="job_completed"}`
// (labels in the sorted order Prometheus writes them).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestWorkerRun(t *testing.T) {
	t.Parallel()
	db := cmdtest.NewDB(t)
	pool := db.Pool
	emu := emulator.New(emulator.Options{SecretKey: testKey})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)

	// The worker runs as the least-privilege role `syncctl migrate --worker-role`
	// prepares, not as the owner.
	f, _, errOut := cmdtest.Command[Options]{DatabaseURL: testdb.WorkerURL(t, db.URL), StripeAPIBase: srv.URL,
		Env: map[string]string{"STRIPE_SECRET_KEY": testKey}}.Factory(t, false)
	ready := make(chan string, 1)
	opts := &Options{Factory: f, Concurrency: 2, MetricsAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second,
		JobTimeout: time.Minute, LogRetention: time.Hour, LogFormat: "json", LogLevel: "info", Currency: "aud",
		EndpointRate: pglimiter.DefaultEndpointRate,
		Ready:        func(addr string) { ready <- addr }}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- workerRun(ctx, opts) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("worker exited before it was ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("worker never became ready")
	}

	_, err := pool.Exec(context.Background(), `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`,
		testOrg, testAcct)
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Installation', true)`,
		testEvent, testOrg)
	require.NoError(t, err)

	// The job counter follows River's event stream, asynchronously.
	completed := `stripe_sync_jobs_total{kind="stripe_sync_event",outcome="job_completed"}`
	var m map[string]float64
	deadline := time.Now().Add(20 * time.Second)
	for {
		m = scrape(t, addr)
		if m[completed] >= 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the event's job never completed")
		time.Sleep(20 * time.Millisecond)
	}
	require.Len(t, emu.Products(testAcct), 1)

	require.GreaterOrEqual(t, m[`stripe_sync_stripe_requests_total{operation="create_product",status="200"}`], 1.0)
	require.GreaterOrEqual(t, m[`stripe_sync_stripe_request_duration_seconds_count{operation="create_product"}`], 1.0)
	requests := 0.0
	for series, v := range m {
		if strings.HasPrefix(series, "stripe_sync_stripe_requests_total{") {
			requests += v
		}
	}
	require.Equal(t, requests, m["stripe_sync_rate_limiter_wait_seconds_count"], "every Stripe request took a token")
	require.Contains(t, m, `stripe_sync_rate_limiter_wait_seconds_bucket{le="0"}`)
	for _, state := range []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"} {
		require.Contains(t, m, `stripe_sync_queue_jobs{state="`+state+`"}`)
	}
	require.GreaterOrEqual(t, m[`stripe_sync_queue_jobs{state="completed"}`], 1.0)
	require.Contains(t, m, "stripe_sync_queue_oldest_waiting_seconds")
	require.GreaterOrEqual(t, m["stripe_sync_queue_oldest_waiting_seconds"], 0.0)

	workers, err := outbox.Workers(context.Background(), pool)
	require.NoError(t, err)
	require.Len(t, workers, 1, "the running worker shows its presence")

	code, body := get(t, "http://"+addr+"/healthz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = get(t, "http://"+addr+"/readyz")
	require.Equal(t, http.StatusOK, code, body)

	var buckets []string
	rows, err := pool.Query(context.Background(), `SELECT bucket FROM stripe_sync_rate_limit ORDER BY bucket`)
	require.NoError(t, err)
	for rows.Next() {
		var b string
		require.NoError(t, rows.Scan(&b))
		buckets = append(buckets, b)
	}
	require.NoError(t, rows.Err())
	require.Contains(t, buckets, pglimiter.GlobalBucket, "the limit is taken from the shared table")
	require.Contains(t, buckets, pglimiter.EndpointBucket("POST /v1/products"), "so is each endpoint's (--endpoint-rate)")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "a cancelled worker drains and returns nil")
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop")
	}
	workers, err = outbox.Workers(context.Background(), pool)
	require.NoError(t, err)
	require.Empty(t, workers, "a stopped worker has left")

	logs := errOut.String()
	require.NotContains(t, logs, testKey)
	var synced map[string]any
	for line := range strings.Lines(logs) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "every log line is JSON: %s", line)
		if rec["msg"] == "synced" {
			synced = rec
		}
	}
	require.NotNil(t, synced, "a line for the sync:\n%s", logs)
	require.NotZero(t, synced["job_id"])
	require.Equal(t, "stripe_sync_event", synced["kind"])
	require.Equal(t, testEvent, synced["entity_id"])
	require.Equal(t, testAcct, synced["account"])
}

func TestQueueCollector(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	inserter, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: testdb.Schema})
	require.NoError(t, err)
	ctx := context.Background()
	ready, err := inserter.Insert(ctx, outbox.EventArgs{EventID: testEvent}, nil)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE river_job SET scheduled_at = now() - interval '1 minute' WHERE id = $1`, ready.Job.ID)
	require.NoError(t, err)
	_, err = inserter.Insert(ctx, outbox.EventArgs{EventID: "0e000000-0000-4000-8000-000000000002"}, &river.InsertOpts{ScheduledAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	reg.MustRegister(newQueueCollector(pool))
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range families {
		for _, metric := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range metric.GetLabel() {
				name += ":" + l.GetValue()
			}
			got[name] = metric.GetGauge().GetValue()
		}
	}
	require.Equal(t, 1.0, got["stripe_sync_queue_jobs:available"])
	require.Equal(t, 1.0, got["stripe_sync_queue_jobs:scheduled"])
	require.Equal(t, 0.0, got["stripe_sync_queue_jobs:running"])
	// Bounded by the database's clock on both sides, not by how long this
	// test took on a busy machine: at least the minute it was set back, at
	// most its age read after the scrape.
	var ageAfter float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT extract(epoch FROM now() - scheduled_at)::float8 FROM river_job WHERE id = $1`,
		ready.Job.ID).Scan(&ageAfter))
	oldest := got["stripe_sync_queue_oldest_waiting_seconds"]
	require.GreaterOrEqual(t, oldest, 60.0, "the job ready for a minute, not the one scheduled for later")
	require.LessOrEqual(t, oldest, ageAfter)

	t.Run("DatabaseDown", func(t *testing.T) {
		down, err := pgxpool.NewWithConfig(ctx, testdb.PoolConfig(t, testdb.URL(t)))
		require.NoError(t, err)
		down.Close()
		reg := prometheus.NewRegistry()
		reg.MustRegister(newQueueCollector(down))
		_, err = reg.Gather()
		require.ErrorContains(t, err, "read queue depth", "the scrape says why the queue gauges are missing")
	})
}
