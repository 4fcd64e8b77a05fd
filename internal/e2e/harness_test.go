package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/subproc"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// binDir holds the syncctl binary built for this test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stripesync-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// buildSyncctl builds the binary once, on first use (subproc.Build builds
// without -race).
var buildSyncctl = sync.OnceValues(func() (string, error) {
	return subproc.Build(context.Background(), binDir)
})

func syncctlBin(t *testing.T) string {
	t.Helper()
	bin, err := buildSyncctl()
	require.NoError(t, err)
	return bin
}

// process is a syncctl subprocess (see subproc.Start: a process group of its
// own, killed by the kernel if the test binary dies first), killed when the
// test ends if it still runs. Its methods fail t instead of returning
// errors.
type process struct {
	*subproc.Process
}

func startProcess(t *testing.T, name string, env []string, args ...string) *process {
	t.Helper()
	sp, err := subproc.Start(name, syncctlBin(t), env, args...)
	require.NoError(t, err)
	p := &process{sp}
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("--- %s output (last 30 lines; all of it in %s) ---\n%s",
				name, keepOutput(t, name, p.Out.String()), subproc.Tail(p.Out.String(), 30))
		}
	})
	return p
}

// failedOutputs is where a failed test's process outputs are kept, created
// on the first failure.
var failedOutputs = sync.OnceValues(func() (string, error) {
	return os.MkdirTemp("", "stripesync-e2e-failed-")
})

// keepOutput writes a failed test's process output to a file that outlives
// the run, and returns its path.
func keepOutput(t *testing.T, name, out string) string {
	dir, err := failedOutputs()
	if err != nil {
		return err.Error()
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", "#", "_").Replace(t.Name()+"-"+name)+".log")
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		return err.Error()
	}
	return file
}

// kill sends SIGKILL to the process group and waits for the exit. It does
// nothing when the process has exited already.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.Kill(10 * time.Second); err != nil {
		t.Errorf("%s (pid %d) after SIGKILL: %v", p.Name, p.PID(), err)
	}
}

func (p *process) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, p.Signal(sig))
}

// waitExit returns the exit code, failing t if the process runs on past
// timeout.
func (p *process) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	code, err := p.WaitExit(timeout)
	require.NoError(t, err)
	return code
}

// waitLine returns the first complete output line containing substr,
// failing t if the process exits or timeout passes first.
func (p *process) waitLine(t *testing.T, substr string, timeout time.Duration) string {
	t.Helper()
	line, err := p.WaitLine(substr, timeout)
	require.NoError(t, err)
	return line
}

// harness is one test's world: a fresh database, a Stripe emulator process
// accepting only key, and the workers the test starts.
type harness struct {
	t     *testing.T
	dbURL string
	pool  *pgxpool.Pool
	key   string
	emu   *process
	// apiBase is the emulator's root URL.
	apiBase string
	// workerAPIBase, when set, is the Stripe API base the workers use
	// instead of apiBase (a proxy in front of the emulator).
	workerAPIBase string
	ctl           *emulator.Control
}

func newHarness(t *testing.T, key string) *harness {
	t.Helper()
	h := &harness{t: t, dbURL: testdb.URL(t), key: key}
	h.pool = testdb.Pool(t, h.dbURL)

	h.emu = startProcess(t, "stripe-emulator", subproc.Env("STRIPE_SECRET_KEY="+key),
		"stripe-emulator", "--addr", "127.0.0.1:0")
	const banner = "stripe emulator listening on "
	line := h.emu.waitLine(t, banner, 30*time.Second)
	h.apiBase = strings.TrimSpace(line[strings.Index(line, banner)+len(banner):])
	h.ctl = &emulator.Control{BaseURL: h.apiBase, HTTP: &http.Client{Timeout: 30 * time.Second}}
	return h
}

// workerConfig is one worker process's flags. Zero values take the
// harness's defaults, which keep a killed worker's jobs stuck for seconds,
// not minutes.
type workerConfig struct {
	// Key defaults to the harness's key.
	Key             string
	Concurrency     int
	Rate            float64
	JobTimeout      time.Duration
	RescueAfter     time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
	// DefaultTimeouts passes neither --job-timeout nor --rescue-stuck-after,
	// so the worker runs with its own defaults.
	DefaultTimeouts bool
}

// worker is a running `syncctl worker`.
type worker struct {
	*process
	// metricsAddr serves /metrics, /healthz and /readyz.
	metricsAddr string
}

func (h *harness) startWorker(name string, cfg workerConfig) *worker {
	t := h.t
	t.Helper()
	if cfg.Key == "" {
		cfg.Key = h.key
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if cfg.JobTimeout == 0 {
		cfg.JobTimeout = 10 * time.Second
	}
	if cfg.RescueAfter == 0 {
		cfg.RescueAfter = cfg.JobTimeout + time.Second
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "info"
	}
	args := []string{"worker",
		"--stripe-api-base", cmp.Or(h.workerAPIBase, h.apiBase),
		"--metrics-addr", "127.0.0.1:0",
		"--log-format", "json",
		"--log-level", cfg.LogLevel,
		"--concurrency", strconv.Itoa(cfg.Concurrency),
		"--shutdown-timeout", cfg.ShutdownTimeout.String(),
	}
	if !cfg.DefaultTimeouts {
		args = append(args, "--job-timeout", cfg.JobTimeout.String(), "--rescue-stuck-after", cfg.RescueAfter.String())
	}
	if cfg.Rate > 0 {
		args = append(args, "--rate", strconv.FormatFloat(cfg.Rate, 'f', -1, 64))
	}
	// Workers run as the least-privilege role migrate --worker-role prepares.
	p := startProcess(t, name, subproc.Env("DATABASE_URL="+testdb.WorkerURL(t, h.dbURL), "STRIPE_SECRET_KEY="+cfg.Key), args...)
	w := &worker{process: p}
	line := p.waitLine(t, `"msg":"serving /metrics`, 30*time.Second)
	var rec struct {
		Addr string `json:"addr"`
	}
	require.NoError(t, json.Unmarshal([]byte(line), &rec), "metrics line %q", line)
	w.metricsAddr = rec.Addr
	p.waitLine(t, `"msg":"worker started"`, 30*time.Second)
	return w
}

// get fetches path from the worker's metrics server.
func (w *worker) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + w.metricsAddr + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// exec runs SQL on the harness's database, failing t on error.
func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	_, err := h.pool.Exec(context.Background(), sql, args...)
	require.NoError(h.t, err)
}

// syncKinds are the job kinds that sync an entity; the periodic resync job
// is left out because it is always scheduled.
const syncKinds = `('stripe_sync_event', 'stripe_sync_ticket', 'stripe_sync_org')`

// busyJobs counts sync jobs that have not finished.
func (h *harness) busyJobs(ctx context.Context) (int, error) {
	var n int
	err := h.pool.QueryRow(ctx, `
		SELECT count(*) FROM river_job
		WHERE kind IN `+syncKinds+`
		  AND state IN ('available', 'running', 'retryable', 'scheduled', 'pending')`).Scan(&n)
	return n, err
}

// waitIdle polls until no sync job is waiting or running. With hurry, a job
// waiting out a retry backoff longer than a second is made available at once
// through River's JobRetry, as an operator would after an outage: the
// backoff (attempt^4 seconds) is not what these tests measure. It returns
// how many retries it hurried.
func (h *harness) waitIdle(timeout time.Duration, hurry bool) int {
	t := h.t
	t.Helper()
	ctx := context.Background()
	var rc *river.Client[pgx.Tx]
	if hurry {
		var err error
		rc, err = river.NewClient(riverpgxv5.New(h.pool), &river.Config{Schema: testdb.Schema})
		require.NoError(t, err)
	}
	hurried := 0
	deadline := time.Now().Add(timeout)
	for {
		busy, err := h.busyJobs(ctx)
		require.NoError(t, err)
		if busy == 0 {
			return hurried
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sync jobs still unfinished after %s:\n%s", busy, timeout, h.jobSummary())
		}
		if hurry {
			rows, err := h.pool.Query(ctx, `
				SELECT id FROM river_job
				WHERE kind IN `+syncKinds+` AND state = 'retryable' AND scheduled_at > now() + interval '1 second'`)
			require.NoError(t, err)
			ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			require.NoError(t, err)
			for _, id := range ids {
				if _, err := rc.JobRetry(ctx, id); err == nil {
					hurried++
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// jobSummary describes unfinished jobs, for a failure message.
func (h *harness) jobSummary() string {
	rows, err := h.pool.Query(context.Background(), `
		SELECT id, kind, state, attempt, args::text, scheduled_at, coalesce(errors[array_length(errors, 1)]::text, '')
		FROM river_job WHERE kind IN `+syncKinds+` AND state <> 'completed' ORDER BY id LIMIT 30`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var (
			id, attempt      int64
			kind, state, arg string
			at               time.Time
			lastErr          string
		)
		if err := rows.Scan(&id, &kind, &state, &attempt, &arg, &at, &lastErr); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "job %d %s %s attempt %d %s scheduled %s last error %s\n",
			id, kind, state, attempt, arg, at.Format(time.RFC3339Nano), lastErr)
	}
	return b.String()
}

// jobStates counts sync jobs by state.
func (h *harness) jobStates() map[string]int {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `
		SELECT state::text, count(*) FROM river_job WHERE kind IN `+syncKinds+` GROUP BY state`)
	require.NoError(h.t, err)
	out := map[string]int{}
	for rows.Next() {
		var state string
		var n int
		require.NoError(h.t, rows.Scan(&state, &n))
		out[state] = n
	}
	require.NoError(h.t, rows.Err())
	return out
}

// state returns every object the emulator holds, by account.
func (h *harness) state() *emulator.State {
	h.t.Helper()
	s, err := h.ctl.State(context.Background())
	require.NoError(h.t, err)
	return s
}

// addFault adds f to the emulator.
func (h *harness) addFault(f emulator.Fault) {
	h.t.Helper()
	require.NoError(h.t, h.ctl.AddFault(context.Background(), f))
}

// waitFaults polls until the emulator has injected n faults of kind. The
// emulator counts a fault when the request arrives, so after a latency fault
// is counted its request is in flight.
func (h *harness) waitFaults(kind emulator.FaultKind, n int) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		stats, err := h.ctl.Stats(context.Background())
		require.NoError(h.t, err)
		if stats.FaultsInjected[kind] >= n {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the emulator injected %d %s faults in 30s, want %d", stats.FaultsInjected[kind], kind, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logRow is one stripe_sync_log row.
type logRow struct {
	EntityType string
	Action     string
	Status     string
	Object     string
	Message    string
	JobID      int64
}

func (h *harness) syncLog(entityID string) []logRow {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `
		SELECT entity_type, action, status, coalesce(stripe_object_id, ''), coalesce(error_message, ''), coalesce(job_id, 0)
		FROM stripe_sync_log WHERE entity_id = $1 ORDER BY created_at, id`, entityID)
	require.NoError(h.t, err)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (logRow, error) {
		var r logRow
		return r, row.Scan(&r.EntityType, &r.Action, &r.Status, &r.Object, &r.Message, &r.JobID)
	})
	require.NoError(h.t, err)
	return out
}

// jobOf returns the id, state and attempt of the newest job of kind about
// entityID.
func (h *harness) jobOf(kind, field, entityID string) (id int64, state string, attempt int) {
	h.t.Helper()
	require.NoError(h.t, h.pool.QueryRow(context.Background(), `
		SELECT id, state::text, attempt FROM river_job WHERE kind = $1 AND args->>$2 = $3
		ORDER BY id DESC LIMIT 1`, kind, field, entityID).Scan(&id, &state, &attempt))
	return id, state, attempt
}

// uuidN returns a recognisable UUID: prefix names the entity type, n the
// entity.
func uuidN(prefix string, n int) string {
	return fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, n)
}

// productOf finds the Product with id on account.
func productOf(s *emulator.State, account, id string) *stripeclient.Product {
	for _, p := range s.Accounts[account].Products {
		if p.ID == id {
			return &p
		}
	}
	return nil
}

// pricesOf returns every Price on account whose ticket_id metadata is
// ticketID.
func pricesOf(s *emulator.State, account, ticketID string) []stripeclient.Price {
	var out []stripeclient.Price
	for _, p := range s.Accounts[account].Prices {
		if p.Metadata["ticket_id"] == ticketID {
			out = append(out, p)
		}
	}
	return out
}
