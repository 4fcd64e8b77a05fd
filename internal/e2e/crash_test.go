package e2e

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

const crashKey = "sk_test_e2e_crash_0123456789"

// insertEvent inserts a published event of org with defaults for the rest.
func (h *harness) insertEvent(id, org, title string) {
	h.t.Helper()
	h.exec(`
		INSERT INTO events (event_id, organisation_id, title, description, type, slug, event_start, event_end, is_published)
		VALUES ($1, $2, $3, 'An evening.', 'banquet', 'an-evening', '2026-12-12 19:00+11', '2026-12-12 23:00+11', true)`,
		id, org, title)
}

func TestWorker_shutdown(t *testing.T) {
	t.Parallel()

	t.Run("SIGTERMDuringSlowCall", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, crashKey)
		const (
			org     = "0a000000-0000-4000-8000-000000000001"
			account = "acct_e2e_term"
			latency = 3 * time.Second
			timeout = 15 * time.Second
		)
		h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
		h.addFault(emulator.Fault{Kind: emulator.FaultLatency, Method: "POST", PathPrefix: "/v1/products",
			Latency: latency, Times: 1})
		w := h.startWorker("worker", workerConfig{ShutdownTimeout: timeout})

		event := uuidN("0e000000", 1)
		h.insertEvent(event, org, "Slow Banquet")
		h.waitFaults(emulator.FaultLatency, 1)
		termAt := time.Now()
		w.signal(t, syscall.SIGTERM)
		code := w.waitExit(t, timeout+5*time.Second)
		took := time.Since(termAt)
		t.Logf("exit %d %s after SIGTERM", code, took.Round(time.Millisecond))
		require.Equal(t, 0, code, "a drained worker exits 0")

		// The call was still in flight at SIGTERM: it was answered after it.
		reqs, err := h.ctl.Requests(context.Background())
		require.NoError(t, err)
		require.Len(t, reqs, 1)
		require.Equal(t, "/v1/products", reqs[0].Path)
		require.Equal(t, 200, reqs[0].Status)
		require.Contains(t, reqs[0].Fault, "latency")
		require.True(t, reqs[0].Time.Before(termAt), "sent before SIGTERM")
		require.True(t, reqs[0].Time.Add(latency).After(termAt), "answered after SIGTERM")

		// Its result is recorded: the Product, the log row, the job.
		p := productOf(h.state(), account, jobs.ProductID(event))
		require.NotNil(t, p)
		require.Equal(t, "Slow Banquet", p.Name)
		logs := h.syncLog(event)
		require.Len(t, logs, 1)
		require.Equal(t, jobs.StatusSuccess, logs[0].Status)
		require.Equal(t, jobs.ActionCreate, logs[0].Action)
		_, state, _ := h.jobOf("stripe_sync_event", "event_id", event)
		require.Equal(t, "completed", state)
		var productID string
		require.NoError(t, h.pool.QueryRow(context.Background(),
			`SELECT stripe_product_id FROM events WHERE event_id = $1`, event).Scan(&productID))
		require.Equal(t, jobs.ProductID(event), productID)

		out := w.Out.String()
		require.Contains(t, out, `"msg":"worker stopped"`)
		require.NotContains(t, out, "jobs still running at the shutdown timeout")
	})

	t.Run("KillDuringProductCreate", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, crashKey)
		const (
			org     = "0a000000-0000-4000-8000-000000000002"
			account = "acct_e2e_kill_product"
		)
		h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
		h.addFault(emulator.Fault{Kind: emulator.FaultLatency, Method: "POST", PathPrefix: "/v1/products",
			Latency: 10 * time.Second, Times: 1})
		cfg := workerConfig{JobTimeout: 4 * time.Second, RescueAfter: 5 * time.Second}
		a := h.startWorker("worker-a", cfg)

		event := uuidN("0e000000", 2)
		h.insertEvent(event, org, "Interrupted Banquet")
		h.waitFaults(emulator.FaultLatency, 1)
		a.kill(t)
		stuck := h.stuckJob("stripe_sync_event", "event_id", event)

		h.startWorker("worker-b", cfg)
		h.waitIdle(60*time.Second, false)

		h.requireRescued(stuck, cfg.RescueAfter)
		s := h.state()
		require.Len(t, s.Accounts[account].Products, 1, "exactly one Product")
		p := productOf(s, account, jobs.ProductID(event))
		require.NotNil(t, p)
		require.Equal(t, "Interrupted Banquet", p.Name)
		require.True(t, p.Active)
	})

	t.Run("KillDuringPriceReplacement", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, crashKey)
		const (
			org     = "0a000000-0000-4000-8000-000000000003"
			account = "acct_e2e_kill_price"
		)
		h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
		cfg := workerConfig{JobTimeout: 4 * time.Second, RescueAfter: 5 * time.Second}
		a := h.startWorker("worker-a", cfg)

		event, ticket := uuidN("0e000000", 3), uuidN("07000000", 3)
		h.insertEvent(event, org, "Priced Banquet")
		h.exec(`INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Dinner', 10.00)`, ticket, event)
		h.waitIdle(30*time.Second, false)
		first := pricesOf(h.state(), account, ticket)
		require.Len(t, first, 1)

		// A new amount: the new Price is created (and lands in Stripe), then
		// the archive of the old one hangs and the worker dies, so nothing
		// records the new Price. The retry must find it by its lookup key
		// rather than create another.
		h.addFault(emulator.Fault{Kind: emulator.FaultLatency, Method: "POST",
			PathPrefix: "/v1/prices/" + first[0].ID, Latency: 10 * time.Second, Times: 1})
		h.exec(`UPDATE event_tickets SET price = 12.50 WHERE id = $1`, ticket)
		h.waitFaults(emulator.FaultLatency, 1)
		a.kill(t)
		stuck := h.stuckJob("stripe_sync_ticket", "ticket_id", ticket)

		h.startWorker("worker-b", cfg)
		h.waitIdle(60*time.Second, false)

		h.requireRescued(stuck, cfg.RescueAfter)
		s := h.state()
		require.Len(t, s.Accounts[account].Products, 1, "exactly one Product")
		prices := pricesOf(s, account, ticket)
		require.Len(t, prices, 2, "the old Price and one new one, no duplicate: %+v", prices)
		if prices[0].ID != first[0].ID {
			prices[0], prices[1] = prices[1], prices[0]
		}
		old, current := prices[0], prices[1]
		require.Equal(t, first[0].ID, old.ID)
		require.False(t, old.Active, "old Price archived")
		require.True(t, current.Active)
		require.Equal(t, int64(1250), current.UnitAmount)
		require.Equal(t, jobs.LookupKey(ticket), current.LookupKey)
		var priceID string
		require.NoError(t, h.pool.QueryRow(context.Background(),
			`SELECT stripe_price_id FROM event_tickets WHERE id = $1`, ticket).Scan(&priceID))
		require.Equal(t, current.ID, priceID)
	})
}

// stuckJobInfo is a job a killed worker left running.
type stuckJobInfo struct {
	id          int64
	attemptedAt time.Time
}

// stuckJob returns the job of kind about entityID, which must be running.
func (h *harness) stuckJob(kind, field, entityID string) stuckJobInfo {
	h.t.Helper()
	var (
		s     stuckJobInfo
		state string
	)
	require.NoError(h.t, h.pool.QueryRow(context.Background(), `
		SELECT id, state::text, attempted_at FROM river_job WHERE kind = $1 AND args->>$2 = $3
		ORDER BY id DESC LIMIT 1`, kind, field, entityID).Scan(&s.id, &state, &s.attemptedAt))
	require.Equal(h.t, "running", state, "the killed worker's job is left running")
	return s
}

// requireRescued checks River's rescuer returned the job no sooner than
// rescueAfter after its attempt began, and a second attempt completed it.
func (h *harness) requireRescued(job stuckJobInfo, rescueAfter time.Duration) {
	h.t.Helper()
	var (
		state   string
		attempt int
		errs    []byte
	)
	require.NoError(h.t, h.pool.QueryRow(context.Background(),
		`SELECT state::text, attempt, to_json(errors) FROM river_job WHERE id = $1`, job.id).Scan(&state, &attempt, &errs))
	require.Equal(h.t, "completed", state)
	require.Equal(h.t, 2, attempt)
	var attemptErrs []struct {
		At    time.Time `json:"at"`
		Error string    `json:"error"`
	}
	require.NoError(h.t, json.Unmarshal(errs, &attemptErrs))
	require.Len(h.t, attemptErrs, 1, "%s", errs)
	require.Contains(h.t, attemptErrs[0].Error, "Stuck job rescued")
	require.GreaterOrEqual(h.t, attemptErrs[0].At.Sub(job.attemptedAt), rescueAfter, "rescued only after --rescue-stuck-after")
	h.t.Logf("job %d rescued %s after its attempt began", job.id, attemptErrs[0].At.Sub(job.attemptedAt).Round(time.Millisecond))
}

// TestWorker_hostDeleteDuringSlowPrice deletes an event while a ticket job
// of that event waits on a slow Stripe call: the host's DELETE may wait for
// the job, but must never fail (a deadlock between the cascade and the job's
// write-back once aborted it).
func TestWorker_hostDeleteDuringSlowPrice(t *testing.T) {
	t.Parallel()
	h := newHarness(t, crashKey)
	const (
		org     = "0a000000-0000-4000-8000-000000000004"
		account = "acct_e2e_host_delete"
	)
	h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
	h.startWorker("worker", workerConfig{})
	event, ticket := uuidN("0e000000", 4), uuidN("07000000", 4)
	h.insertEvent(event, org, "Doomed Banquet")
	h.exec(`INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Dinner', 10.00)`, ticket, event)
	h.waitIdle(30*time.Second, false)

	// A new amount makes a new Price, which the job must then write back to
	// the ticket row; the host deletes the event while the create is slow.
	h.addFault(emulator.Fault{Kind: emulator.FaultLatency, Method: "POST", PathPrefix: "/v1/prices",
		Latency: 500 * time.Millisecond, Times: 1})
	h.exec(`UPDATE event_tickets SET price = 12.50 WHERE id = $1`, ticket)
	h.waitFaults(emulator.FaultLatency, 1)
	_, err := h.pool.Exec(context.Background(), `DELETE FROM events WHERE event_id = $1`, event)
	require.NoError(t, err, "the host's delete succeeds")
	h.waitIdle(30*time.Second, false)

	s := h.state()
	p := productOf(s, account, jobs.ProductID(event))
	require.NotNil(t, p)
	require.False(t, p.Active, "deleted event's Product archived")
	for _, price := range pricesOf(s, account, ticket) {
		require.False(t, price.Active, "deleted ticket's Price %s archived", price.ID)
	}
}

// TestWorker_killedWorkerCostsSeconds: with the worker's default flags, a
// worker killed with kill -9 while its Stripe call is in flight delays that
// entity by seconds, not minutes: another worker (which must first take
// over River's leadership, the killed one having held it, and whose
// rescuer runs every 30 s) has the change in Stripe within 90 s of the kill.
func TestWorker_killedWorkerCostsSeconds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, crashKey)
	const (
		org     = "0a000000-0000-4000-8000-000000000005"
		account = "acct_e2e_kill_defaults"
	)
	h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Org', $2)`, org, account)
	cfg := workerConfig{DefaultTimeouts: true}
	workers := map[string]*worker{}
	for _, name := range []string{"worker-a", "worker-b"} {
		w := h.startWorker(name, cfg)
		line := w.waitLine(t, `"msg":"River client started"`, 30*time.Second)
		var rec struct {
			ClientID string `json:"client_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		workers[rec.ClientID] = w
	}

	// The first create hangs far longer than any default, so only a rescue
	// can bring it back.
	h.addFault(emulator.Fault{Kind: emulator.FaultLatency, Method: "POST", PathPrefix: "/v1/products",
		Latency: 10 * time.Minute, Times: 1})
	event := uuidN("0e000000", 5)
	h.insertEvent(event, org, "Killed Banquet")
	h.waitFaults(emulator.FaultLatency, 1)
	var holder string
	require.NoError(t, h.pool.QueryRow(context.Background(), `
		SELECT attempted_by[array_upper(attempted_by, 1)] FROM river_job
		WHERE kind = 'stripe_sync_event' AND args->>'event_id' = $1`, event).Scan(&holder))
	require.Contains(t, workers, holder)
	killAt := time.Now()
	workers[holder].kill(t)
	var leader string
	_ = h.pool.QueryRow(context.Background(), `SELECT leader_id FROM river_leader`).Scan(&leader)
	t.Logf("killed the worker holding the job (%s; River's leader: %s)", holder, leader)

	deadline := killAt.Add(90 * time.Second)
	for {
		if p := productOf(h.state(), account, jobs.ProductID(event)); p != nil && p.Name == "Killed Banquet" {
			break
		}
		require.True(t, time.Now().Before(deadline), "the killed worker's entity was not in Stripe within 90 s")
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("in Stripe %s after the kill", time.Since(killAt).Round(100*time.Millisecond))
}
