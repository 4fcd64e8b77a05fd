package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

const (
	// driftEvents are the events whose Products the drift figure edits in
	// turn.
	driftEvents = 20
	// driftEdits are the sequential Dashboard edits per repetition.
	driftEdits = 100
	// driftSecret signs the emulator's webhooks.
	driftSecret = "whsec_bench_drift"
)

// productUpdates notes when the emulator has answered a Product update with
// success: the moment the repair is in Stripe.
type productUpdates struct {
	mu      sync.Mutex
	waiters map[string]chan time.Time
}

func (u *productUpdates) expect(id string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	u.mu.Lock()
	u.waiters[id] = ch
	u.mu.Unlock()
	return ch
}

func (u *productUpdates) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := strings.CutPrefix(r.URL.Path, "/v1/products/")
		if r.Method != http.MethodPost || !ok {
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		if rec.status == http.StatusOK {
			u.mu.Lock()
			ch := u.waiters[id]
			delete(u.waiters, id)
			u.mu.Unlock()
			if ch != nil {
				ch <- time.Now()
			}
		}
	})
}

// driftToRepair syncs driftEvents events, then makes n sequential Dashboard
// renames through the emulator, which signs and sends product.updated to a
// receiver doing what `syncctl worker --webhook-addr` does, and returns how
// long each took from the edit to the repairing update being answered, in
// milliseconds. baseline is the same for n renames made in the database
// (commit-to-Stripe of an update). writes counts the emulator's writes per
// Dashboard edit.
func (b *runner) driftToRepair(ctx context.Context, n int) (drift, baseline []float64, writes float64, err error) {
	err = b.withDB(ctx, "drift_sync", poolConfig{app: "bench drift", maxConns: latencyConcurrency + 5},
		func(db *database) error {
			if err := createOrg(ctx, db.Pool); err != nil {
				return err
			}
			emu := emulator.New(emulator.Options{SecretKey: secretKey})
			updates := &productUpdates{waiters: map[string]chan time.Time{}}
			srv := httptest.NewServer(updates.wrap(emu))
			defer srv.Close()
			sc, err := stripeclient.New(stripeclient.Options{SecretKey: secretKey, APIBase: srv.URL})
			if err != nil {
				return err
			}
			client, err := jobs.NewClient(&jobs.Deps{Pool: db.Pool, Stripe: sc}, jobs.Options{
				Concurrency: latencyConcurrency, FetchCooldown: fetchCooldown, FetchPollInterval: fetchPollInterval,
			})
			if err != nil {
				return err
			}
			hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				payload, _ := io.ReadAll(r.Body)
				ev, err := stripeclient.ParseWebhook(payload, r.Header.Get("Stripe-Signature"), driftSecret)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				if _, err := jobs.ReceiveWebhook(r.Context(), db.Pool, client, ev); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
				}
			}))
			defer hooks.Close()
			emu.SetWebhook(hooks.URL, driftSecret)
			if err := client.Start(ctx); err != nil {
				return err
			}
			defer stopClient(ctx, client)

			ids := make([]string, driftEvents)
			for i := range ids {
				ids[i] = newUUID()
				created := make(chan struct{})
				go func() {
					for len(emu.Products(account)) <= i {
						time.Sleep(time.Millisecond)
					}
					close(created)
				}()
				if _, err := db.Pool.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, $3, true)`,
					ids[i], orgID, fmt.Sprintf("Drift event %d", i)); err != nil {
					return fmt.Errorf("insert event: %w", err)
				}
				select {
				case <-created:
				case <-time.After(30 * time.Second):
					return fmt.Errorf("event %s: no Product after 30 s", ids[i])
				}
			}
			wait := func(ch <-chan time.Time, what string) (time.Time, error) {
				select {
				case at := <-ch:
					return at, nil
				case <-time.After(30 * time.Second):
					return time.Time{}, fmt.Errorf("%s: not repaired after 30 s", what)
				case <-ctx.Done():
					return time.Time{}, ctx.Err()
				}
			}
			emu.ResetRequests()
			for i := range n {
				id := ids[i%driftEvents]
				done := updates.expect(jobs.ProductID(id))
				name := fmt.Sprintf("Edited in the Dashboard %d", i)
				start := time.Now()
				if err := emu.DashboardUpdate(account, jobs.ProductID(id), emulator.Edit{Name: &name}); err != nil {
					return err
				}
				at, err := wait(done, "Dashboard edit "+name)
				if err != nil {
					return err
				}
				drift = append(drift, ms(at.Sub(start)))
			}
			writes = float64(emu.WriteCount()) / float64(n)
			for i := range n {
				id := ids[i%driftEvents]
				done := updates.expect(jobs.ProductID(id))
				start := time.Now()
				if _, err := db.Pool.Exec(ctx, `UPDATE events SET title = $2 WHERE event_id = $1`, id, fmt.Sprintf("Renamed %d", i)); err != nil {
					return err
				}
				at, err := wait(done, "database rename")
				if err != nil {
					return err
				}
				baseline = append(baseline, ms(at.Sub(start)))
			}
			return nil
		})
	return drift, baseline, writes, err
}

// figureDrift is figure 7: drift-to-repair latency of a Dashboard edit.
func (b *runner) figureDrift(ctx context.Context) error {
	var p50, p99, baseP50, baseP99, perEdit []float64
	for rep := 1; rep <= b.cfg.Repetitions; rep++ {
		drift, base, writes, err := b.driftToRepair(ctx, driftEdits)
		if err != nil {
			return err
		}
		p50 = append(p50, Percentile(drift, 50))
		p99 = append(p99, Percentile(drift, 99))
		baseP50 = append(baseP50, Percentile(base, 50))
		baseP99 = append(baseP99, Percentile(base, 99))
		perEdit = append(perEdit, writes)
		b.logf("drift rep %d: Dashboard edit to repair p50 %.1f ms, p99 %.1f ms (%.2f writes per edit); database rename to Stripe p50 %.1f ms, p99 %.1f ms",
			rep, p50[rep-1], p99[rep-1], writes, baseP50[rep-1], baseP99[rep-1])
	}
	setting := fmt.Sprintf("%d sequential Dashboard renames (emulator.DashboardUpdate) over %d synced events, each waited for: "+
		"from the edit to Stripe answering the repairing update; the emulator signs and POSTs product.updated to a receiver "+
		"doing what `worker --webhook-addr` does (verify, record, enqueue); worker --concurrency %d. Stripe writes per edit: %s.",
		driftEdits, driftEvents, latencyConcurrency, joinNums(perEdit))
	b.report.Rows = append(b.report.Rows,
		newRow("7a drift-to-repair p50", "ms", "commit-to-Stripe p50 of the same rename made in the database", p50, baseP50, nil, setting),
		newRow("7b drift-to-repair p99", "ms", "commit-to-Stripe p99 of the same rename made in the database", p99, baseP99,
			&Goal{On: "value", Op: "<", Bound: 1000}, ""),
	)
	return nil
}
