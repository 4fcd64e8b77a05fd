package jobs_test

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// What `syncctl worker --webhook-addr` does with a delivery: verify its
// Stripe-Signature, then record the event once and enqueue its job in one
// transaction. Stripe may deliver an event twice; the second does nothing.
// An event caused by the sync's own write (its idempotency key starts
// stripe-sync:) needs no job at all.
func ExampleReceiveWebhook() {
	ctx := context.Background()
	pool, drop := testdb.ForExample()
	defer drop()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Schema: outbox.DefaultSchema})
	if err != nil {
		panic(err)
	}

	const secret = "whsec_example"
	deliver := func(payload string) {
		// Stripe signs the body it sends; emulator.SignWebhook signs the
		// same way.
		header := emulator.SignWebhook([]byte(payload), secret, time.Now())
		ev, err := stripeclient.ParseWebhook([]byte(payload), header, secret)
		if err != nil {
			panic(err)
		}
		disposition, err := jobs.ReceiveWebhook(ctx, pool, client, ev)
		if err != nil {
			panic(err)
		}
		fmt.Println(ev.ID, ev.Type, disposition)
	}
	product := `{"id": "` + jobs.ProductID("0e000000-0000-4000-8000-000000000001") + `", "object": "product", "name": "Renamed", "active": true}`
	dashboardEdit := `{"id": "evt_1", "object": "event", "account": "acct_1", "type": "product.updated",
		"request": {"id": "req_1", "idempotency_key": null}, "data": {"object": ` + product + `}}`
	ourWrite := `{"id": "evt_2", "object": "event", "account": "acct_1", "type": "product.updated",
		"request": {"id": "req_2", "idempotency_key": "stripe-sync:event:0e000000-0000-4000-8000-000000000001:v2:update_product:0123456789abcdef01234567"},
		"data": {"object": ` + product + `}}`
	deliver(dashboardEdit)
	deliver(dashboardEdit)
	deliver(ourWrite)
	// Output:
	// evt_1 product.updated enqueued
	// evt_1 product.updated duplicate
	// evt_2 product.updated own_write
}
