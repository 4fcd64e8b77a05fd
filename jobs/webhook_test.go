package jobs_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

const webhookSecret = "whsec_test_jobs_0123456789"

// hookBundle is a sync whose emulator sends its events to a receiver doing
// what `syncctl worker --webhook-addr` does: verify, record, enqueue.
type hookBundle struct {
	*synctesting.Bundle
	url string
}

func setupHooks(t *testing.T) *hookBundle {
	t.Helper()
	b := setup(t, synctesting.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		payload, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		ev, err := stripeclient.ParseWebhook(payload, r.Header.Get("Stripe-Signature"), webhookSecret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if _, err := jobs.ReceiveWebhook(r.Context(), b.Pool, b.River, ev); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	b.Emulator.SetWebhook(srv.URL, webhookSecret)
	return &hookBundle{Bundle: b, url: srv.URL}
}

// eventually polls cond until it holds, failing t after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dispositions counts received events by what the receiver decided.
func dispositions(t *testing.T, b *synctesting.Bundle) map[string]int {
	t.Helper()
	rows, err := b.Pool.Query(context.Background(), `SELECT type || ':' || disposition, count(*)::int FROM stripe_sync_webhook_event GROUP BY 1`)
	require.NoError(t, err)
	out := map[string]int{}
	var k string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&k, &n}, func() error { out[k] = n; return nil })
	require.NoError(t, err)
	return out
}

// quiet waits until every event the emulator sent has been delivered and
// every job they caused has finished.
func (b *hookBundle) quiet(t *testing.T, wantDeliveries int) {
	t.Helper()
	eventually(t, 10*time.Second, "webhook deliveries", func() bool { return len(b.Emulator.WebhookDeliveries()) >= wantDeliveries })
	b.WaitIdle(t, 10*time.Second)
}

// A Dashboard edit (https://docs.stripe.com/connect/webhooks: events from a
// connected account carry it in `account`) is repaired within seconds, with
// one write per edited object, and the repair's own events cause nothing.
func TestWebhookWorker_dashboardEditIsRepaired(t *testing.T) {
	t.Parallel()
	b := setupHooks(t)
	ev, tk := eventID(130), ticketID(130)
	insertEvent(t, b.Bundle, ev, orgID, "Installation Banquet")
	insertTicket(t, b.Bundle, tk, ev, "Mason", "95.00")
	b.quiet(t, 2) // product.created, price.created: our own writes
	created := map[string]int{"product.created:ignored": 1, "price.created:ignored": 1}
	eventually(t, 5*time.Second, "created events recorded", func() bool { return len(dispositions(t, b.Bundle)) == 2 })
	require.Equal(t, created, dispositions(t, b.Bundle), "*.created are recorded and ignored")
	price := activePrice(t, b.Bundle, account, tk)
	b.Emulator.ResetRequests()

	renamed, archived := "Installation Banquet (DRAFT)", false
	edited := time.Now()
	require.NoError(t, b.Emulator.DashboardUpdate(account, jobs.ProductID(ev), emulator.Edit{Name: &renamed}))
	require.NoError(t, b.Emulator.DashboardUpdate(account, price.ID, emulator.Edit{Active: &archived}))

	eventually(t, 5*time.Second, "the Dashboard's edits repaired", func() bool {
		p := product(t, b.Bundle, account, jobs.ProductID(ev))
		_, active := pricesOf(b.Bundle, account, tk)
		return p.Name == "Installation Banquet" && active == 1
	})
	t.Logf("drift to repair: %s for two Dashboard edits", time.Since(edited))
	require.Equal(t, price.ID, activePrice(t, b.Bundle, account, tk).ID, "the same Price re-activated, not a new one")

	// Two edits in, two repairs out, then the repairs' own events (our key)
	// come back and are recognised.
	b.quiet(t, 2+2+2)
	eventually(t, 5*time.Second, "own writes recorded", func() bool {
		d := dispositions(t, b.Bundle)
		return d["product.updated:own_write"] == 1 && d["price.updated:own_write"] == 1
	})
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, map[string]int{
		"product.created:ignored": 1, "price.created:ignored": 1,
		"product.updated:enqueued": 1, "price.updated:enqueued": 1,
		"product.updated:own_write": 1, "price.updated:own_write": 1,
	}, dispositions(t, b.Bundle))
	require.Equal(t, 2, b.Emulator.WriteCount(), "one write per edited object, no loop: %+v", b.Emulator.Requests())
	t.Logf("one Dashboard edit: 1 event in, 1 write out; requests for both: %d", len(b.Emulator.Requests()))

	logs := syncLog(t, b.Bundle, ev)
	last := logs[len(logs)-1]
	// The ticket's repair job may run first and, ensuring its parent
	// Product, repair the event's drift too: then the event's job finds
	// nothing left to write and says so.
	if last.Action == jobs.ActionUpdate {
		require.Contains(t, *last.Msg, "repaired drift seen in Stripe event evt_")
	} else {
		require.Equal(t, jobs.ActionUnchanged, last.Action)
		require.Contains(t, *last.Msg, "was already repaired")
	}
	require.Contains(t, *last.Msg, `name "Installation Banquet (DRAFT)", want "Installation Banquet"`)
	logs = syncLog(t, b.Bundle, tk)
	require.Contains(t, *logs[len(logs)-1].Msg, "active false, want true")
	var drift int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT count(*) FROM stripe_sync_drift`).Scan(&drift))
	require.Zero(t, drift, "repairs clear their drift records")
}

// An edit that leaves the object as the database wants it, and an object the
// sync does not manage, cause no write.
func TestWebhookWorker_noDriftNoWrite(t *testing.T) {
	t.Parallel()
	b := setupHooks(t)
	ev := eventID(131)
	insertEvent(t, b.Bundle, ev, orgID, "Same")
	b.quiet(t, 1)
	b.Emulator.ResetRequests()

	same := "Same"
	require.NoError(t, b.Emulator.DashboardUpdate(account, jobs.ProductID(ev), emulator.Edit{Name: &same}))
	// Someone else's Product on the same account, edited in the Dashboard.
	sc := b.Stripe
	foreign, err := sc.CreateProduct(context.Background(), stripeclient.Call{Account: account},
		stripeclient.ProductParams{Name: "Merch", Active: true, Metadata: map[string]string{"sku": "hoodie"}})
	require.NoError(t, err)
	rename := "Merch 2"
	require.NoError(t, b.Emulator.DashboardUpdate(account, foreign.ID, emulator.Edit{Name: &rename}))

	b.quiet(t, 1+2+1)
	eventually(t, 5*time.Second, "events recorded", func() bool {
		d := dispositions(t, b.Bundle)
		return d["product.updated:enqueued"] == 1 && d["product.updated:not_ours"] == 1
	})
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, 1, b.Emulator.WriteCount(), "only the test's own create of the foreign Product")
	require.Equal(t, "Merch 2", product(t, b.Bundle, account, foreign.ID).Name, "not ours: left alone")
}

// Stripe may deliver one event more than once
// (https://docs.stripe.com/webhooks#handle-duplicate-events): the second
// delivery is recorded as a duplicate and enqueues nothing.
func TestReceiveWebhook_replayActsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{NoWorker: true})
	payload := []byte(`{"id": "evt_replayed", "object": "event", "account": "` + account + `", "api_version": "2023-10-16",
		"created": 1, "type": "product.updated", "request": {"id": "req_dash", "idempotency_key": null},
		"data": {"object": {"id": "` + jobs.ProductID(eventID(132)) + `", "object": "product", "name": "x", "active": true, "metadata": {}}}}`)
	var got []jobs.Disposition
	for range 3 {
		ev, err := stripeclient.ParseWebhook(payload, emulator.SignWebhook(payload, webhookSecret, time.Now()), webhookSecret)
		require.NoError(t, err)
		d, err := jobs.ReceiveWebhook(context.Background(), b.Pool, b.River, ev)
		require.NoError(t, err)
		got = append(got, d)
	}
	require.Equal(t, []jobs.Disposition{jobs.DispositionEnqueued, jobs.DispositionDuplicate, jobs.DispositionDuplicate}, got)
	var n int
	require.NoError(t, b.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = 'stripe_sync_webhook'`).Scan(&n))
	require.Equal(t, 1, n)
}

// Deliveries whose signature does not verify
// (https://docs.stripe.com/webhooks#verify-events) are refused.
func TestParseWebhook_refusesForgedAndStale(t *testing.T) {
	t.Parallel()
	payload := []byte(`{"id": "evt_1", "object": "event", "type": "product.updated", "account": "acct_1", "data": {"object": {"id": "prod_1", "object": "product"}}}`)
	for name, header := range map[string]string{
		"WrongSecret": emulator.SignWebhook(payload, "whsec_forged", time.Now()),
		"Stale":       emulator.SignWebhook(payload, webhookSecret, time.Now().Add(-stripeclient.WebhookTolerance-time.Minute)),
		"Missing":     "",
		"Tampered":    emulator.SignWebhook([]byte(strings.Replace(string(payload), "acct_1", "acct_2", 1)), webhookSecret, time.Now()),
	} {
		_, err := stripeclient.ParseWebhook(payload, header, webhookSecret)
		require.ErrorIs(t, err, stripeclient.ErrWebhookSignature, name)
		require.NotContains(t, err.Error(), webhookSecret, name)
	}
	ev, err := stripeclient.ParseWebhook(payload, emulator.SignWebhook(payload, webhookSecret, time.Now()), webhookSecret)
	require.NoError(t, err)
	require.Equal(t, "acct_1", ev.Account)
	require.Equal(t, "prod_1", ev.ObjectID)
}

// jobState returns the state of the entity's latest sync job.
func lastJobState(t *testing.T, b *synctesting.Bundle, kind, id string) string {
	t.Helper()
	var state string
	require.NoError(t, b.Pool.QueryRow(context.Background(), `
		SELECT state::text FROM river_job WHERE kind = $1 AND args->>'event_id' = $2 ORDER BY id DESC LIMIT 1`,
		kind, id).Scan(&state))
	return state
}

// account.application.deauthorized (https://docs.stripe.com/connect/webhooks)
// marks the account unreachable: the organisation's jobs end skipped at once,
// sending nothing, and resume when an operator re-enqueues the organisation.
func TestWebhookWorker_deauthorizedAccountSkippedThenRecovers(t *testing.T) {
	t.Parallel()
	b := setupHooks(t)
	ev := eventID(133)
	insertEvent(t, b.Bundle, ev, orgID, "Before")
	b.quiet(t, 1)

	b.Emulator.Deauthorize(account)
	eventually(t, 5*time.Second, "account marked unreachable", func() bool {
		accounts, err := jobs.UnreachableAccounts(context.Background(), b.Pool)
		require.NoError(t, err)
		return len(accounts) == 1 && accounts[0].Account == account
	})
	b.Emulator.ResetRequests()
	b.Exec(t, `UPDATE events SET title = 'During' WHERE event_id = $1`, ev)
	b.WaitIdle(t, 10*time.Second)
	require.Equal(t, "completed", lastJobState(t, b.Bundle, "stripe_sync_event", ev))
	logs := syncLog(t, b.Bundle, ev)
	last := logs[len(logs)-1]
	require.Equal(t, jobs.StatusSkipped, last.Status)
	require.Contains(t, *last.Msg, "acct_1TestOrg is unreachable")
	for _, r := range b.Emulator.Requests() {
		// A worker's copy of the marks may be up to 2 s old: Stripe's own
		// 403 is then what skips the job.
		require.Equal(t, http.StatusForbidden, r.Status, "nothing reaches a deauthorised account: %+v", r)
	}
	b.Emulator.ResetRequests()
	b.Exec(t, `UPDATE events SET title = 'During' || '!' WHERE event_id = $1`, ev)
	b.WaitIdle(t, 10*time.Second)
	require.Empty(t, b.Emulator.Requests(), "once known, nothing is sent to a deauthorised account")
	b.Exec(t, `UPDATE events SET title = 'During' WHERE event_id = $1`, ev)
	b.WaitIdle(t, 10*time.Second)

	// The organisation reconnects; the operator re-enqueues it.
	b.Emulator.Reauthorize(account)
	tx, err := b.Pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = outbox.Enqueue(context.Background(), b.River, tx, outbox.Entity{Kind: outbox.KindOrg, ID: orgID})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(context.Background()))
	eventually(t, 10*time.Second, "the change made while unreachable reaches Stripe", func() bool {
		return product(t, b.Bundle, account, jobs.ProductID(ev)).Name == "During"
	})
	accounts, err := jobs.UnreachableAccounts(context.Background(), b.Pool)
	require.NoError(t, err)
	require.Empty(t, accounts)
}

// A 403 account_invalid seen by a job (no webhook endpoint configured) marks
// the account too, and a change of the organisation's account clears the
// way: the catalogue moves to the new account.
func TestEventWorker_accountInvalidSkipsThenAccountChange(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev := eventID(134)
	b.Emulator.Deauthorize(account)
	insertEvent(t, b, ev, orgID, "Refused")
	b.WaitIdle(t, 10*time.Second)
	logs := syncLog(t, b, ev)
	require.Len(t, logs, 1, "one attempt, no retries")
	require.Equal(t, jobs.StatusSkipped, logs[0].Status)
	require.Contains(t, *logs[0].Msg, "Stripe answered 403 account_invalid")
	reqs := len(b.Emulator.Requests())

	// A second event of the organisation is skipped without a request.
	insertEvent(t, b, eventID(135), orgID, "Also refused")
	b.WaitIdle(t, 10*time.Second)
	require.Len(t, b.Emulator.Requests(), reqs)

	const newAccount = "acct_1Reconnected"
	b.Exec(t, `UPDATE organisations SET stripe_onbehalfof = $2 WHERE organisation_id = $1`, orgID, newAccount)
	b.WaitIdle(t, 20*time.Second)
	for _, id := range []string{ev, eventID(135)} {
		p := product(t, b, newAccount, jobs.ProductID(id))
		require.NotNil(t, p, id)
		require.True(t, p.Active)
	}
	body, err := json.Marshal(syncLog(t, b, ev))
	require.NoError(t, err)
	t.Logf("log: %s", body)
}

// A Product re-activated in the Dashboard after its event was deleted is
// archived again: nothing of ours goes back on sale by hand.
func TestWebhookWorker_reactivatedAfterDeleteIsArchived(t *testing.T) {
	t.Parallel()
	b := setupHooks(t)
	ev := eventID(136)
	insertEvent(t, b.Bundle, ev, orgID, "Cancelled")
	b.quiet(t, 1)
	b.Exec(t, `DELETE FROM events WHERE event_id = $1`, ev)
	b.quiet(t, 2)
	require.False(t, product(t, b.Bundle, account, jobs.ProductID(ev)).Active)

	active := true
	require.NoError(t, b.Emulator.DashboardUpdate(account, jobs.ProductID(ev), emulator.Edit{Active: &active}))
	eventually(t, 5*time.Second, "archived again", func() bool {
		return !product(t, b.Bundle, account, jobs.ProductID(ev)).Active && len(syncLog(t, b.Bundle, ev)) == 3
	})
	logs := syncLog(t, b.Bundle, ev)
	require.Equal(t, jobs.ActionDelete, logs[2].Action)
	require.Contains(t, *logs[2].Msg, "active true, want false")
}

// product.deleted (the object as it was, https://docs.stripe.com/api/events/types)
// makes the event's job write its Product again.
func TestWebhookWorker_deletedProductIsRewritten(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{})
	ev := eventID(137)
	insertEvent(t, b, ev, orgID, "Deleted in Stripe")
	b.WaitIdle(t, 10*time.Second)
	b.Emulator.ResetRequests()

	payload := []byte(`{"id": "evt_deleted", "object": "event", "account": "` + account + `", "type": "product.deleted",
		"request": {"id": "req_dash", "idempotency_key": null},
		"data": {"object": {"id": "` + jobs.ProductID(ev) + `", "object": "product", "name": "Deleted in Stripe", "active": true,
			"metadata": {"event_id": "` + ev + `"}}}}`)
	parsed, err := stripeclient.ParseWebhook(payload, emulator.SignWebhook(payload, webhookSecret, time.Now()), webhookSecret)
	require.NoError(t, err)
	d, err := jobs.ReceiveWebhook(context.Background(), b.Pool, b.River, parsed)
	require.NoError(t, err)
	require.Equal(t, jobs.DispositionEnqueued, d)
	eventually(t, 10*time.Second, "the repair logged", func() bool { return len(syncLog(t, b, ev)) == 2 })
	b.WaitIdle(t, 10*time.Second)
	logs := syncLog(t, b, ev)
	require.Contains(t, *logs[1].Msg, "repaired drift seen in Stripe event evt_deleted: deleted in Stripe")
	require.Equal(t, 1, b.Emulator.WriteCount())
}
