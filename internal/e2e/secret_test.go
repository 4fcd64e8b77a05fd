package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

func TestWorker_secretHygiene(t *testing.T) {
	t.Parallel()
	const (
		key      = "sk_test_SECRETcanary123456789"
		wrongKey = "sk_test_WRONGcanary987654321"
		org      = "0a000000-0000-4000-8000-000000000020"
		account  = "acct_e2e_secret"
	)
	// Each canary is the part of its key no other string holds; finding it
	// anywhere means a key, or most of one, leaked.
	canaries := []string{key, wrongKey, "SECRETcanary", "WRONGcanary", "123456789", "987654321"}

	h := newHarness(t, key)
	h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
	var outputs []string

	// Successes and 500s with the right key, logging at debug, where the
	// most is said.
	h.addFault(emulator.Fault{Kind: emulator.FaultError500, Method: "POST", PathPrefix: "/v1/products", Times: 2})
	h.addFault(emulator.Fault{Kind: emulator.FaultError500, Method: "POST", PathPrefix: "/v1/prices", Times: 1})
	good := h.startWorker("worker-right-key", workerConfig{LogLevel: "debug"})
	for i := 1; i <= 3; i++ {
		h.insertEvent(uuidN("0e000000", i), org, "Canary Ball")
		h.exec(`INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Dinner', 42.00)`,
			uuidN("07000000", i), uuidN("0e000000", i))
	}
	h.waitIdle(60*time.Second, true)
	_, metrics := good.get(t, "/metrics")
	outputs = append(outputs, metrics)
	good.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, good.waitExit(t, 30*time.Second))
	outputs = append(outputs, good.Out.String())

	// 401s: a worker holding a key the emulator does not accept.
	wrong := h.startWorker("worker-wrong-key", workerConfig{Key: wrongKey, LogLevel: "debug"})
	unauthorised := uuidN("0e000000", 9)
	h.insertEvent(unauthorised, org, "Gatecrashed Ball")
	wrong.waitLine(t, "stripe rejected our credentials", 30*time.Second)
	_, metrics = wrong.get(t, "/metrics")
	outputs = append(outputs, metrics)
	wrong.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, wrong.waitExit(t, 30*time.Second))
	outputs = append(outputs, wrong.Out.String())

	// The right key finishes what the wrong one could not.
	again := h.startWorker("worker-right-key-again", workerConfig{LogLevel: "debug"})
	h.waitIdle(60*time.Second, true)
	again.signal(t, syscall.SIGTERM)
	require.Equal(t, 0, again.waitExit(t, 30*time.Second))
	outputs = append(outputs, again.Out.String())
	states := h.jobStates()
	require.Len(t, states, 1, "every job completed: %v", states)
	require.GreaterOrEqual(t, states["completed"], 7)

	// Both kinds of failure happened, so their paths were searched too.
	ctx := context.Background()
	jobErrors := h.column(ctx, `SELECT coalesce(to_json(errors)::text, '') FROM river_job`)
	all := strings.Join(jobErrors, "\n")
	require.Contains(t, all, "500", "a 500 was recorded in river_job.errors")
	require.Contains(t, all, "401", "a 401 was recorded in river_job.errors")
	logRows := h.column(ctx, `SELECT row_to_json(l)::text FROM stripe_sync_log l`)
	require.Contains(t, strings.Join(logRows, "\n"), `"status":"failed"`)
	require.Contains(t, strings.Join(logRows, "\n"), `"status":"success"`)

	places := map[string][]string{
		"worker output and /metrics": outputs,
		"river_job.errors":           jobErrors,
		"river_job.args":             h.column(ctx, `SELECT args::text FROM river_job`),
		"river_job.metadata":         h.column(ctx, `SELECT metadata::text FROM river_job`),
		"stripe_sync_log":            logRows,
		"stripe_sync_state":          h.column(ctx, `SELECT row_to_json(s)::text FROM stripe_sync_state s`),
	}
	for place, texts := range places {
		for _, text := range texts {
			for _, canary := range canaries {
				if i := strings.Index(text, canary); i >= 0 {
					t.Errorf("%q found in %s: ...%s...", canary, place, text[max(0, i-200):min(len(text), i+100)])
				}
			}
		}
	}
}

// column returns a one-column query's rows.
func (h *harness) column(ctx context.Context, sql string) []string {
	h.t.Helper()
	rows, err := h.pool.Query(ctx, sql)
	require.NoError(h.t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(h.t, err)
	return out
}
