package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Disposition is what ReceiveWebhook decided about one Stripe event.
type Disposition string

const (
	// DispositionEnqueued: the event's job is enqueued.
	DispositionEnqueued Disposition = "enqueued"
	// DispositionDuplicate: the event id was received before (Stripe
	// redelivers an event until it gets a 2xx, and may send one twice);
	// nothing is done again.
	DispositionDuplicate Disposition = "duplicate"
	// DispositionOwnWrite: the event was caused by one of the sync's own
	// requests (its idempotency key carries stripeclient.IdempotencyKeyPrefix),
	// so it needs no repair: one database change stays one write.
	DispositionOwnWrite Disposition = "own_write"
	// DispositionNotOurs: the object is not one the sync manages.
	DispositionNotOurs Disposition = "not_ours"
	// DispositionIgnored: an event type (or the platform's own account) the
	// sync does not act on.
	DispositionIgnored Disposition = "ignored"
)

// WebhookArgs is the job acting on one received Stripe event, which
// stripe_sync_webhook_event holds.
type WebhookArgs struct {
	EventID string `json:"event_id"`
}

// Kind implements river.JobArgs.
func (WebhookArgs) Kind() string { return "stripe_sync_webhook" }

// InsertOpts implements river.JobArgsWithInsertOpts. The job reads the
// database only (it sends no Stripe request), so it runs at the live
// priority; the repair it enqueues goes through the sync's own jobs.
func (WebhookArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: outbox.Queue, MaxAttempts: outbox.MaxAttempts, Priority: outbox.Priority}
}

// ReceiveWebhook records a verified Stripe event once, by its id, and, when
// the event needs work, enqueues its job in the same transaction, so the
// HTTP answer can go out at once and a redelivery does nothing: events caused
// by the sync's own writes, about objects it does not manage, or of types it
// does not act on are recorded but enqueue nothing. client may be an
// insert-only River client. Returns the database's error, in which case
// nothing is recorded and Stripe's redelivery tries again.
func ReceiveWebhook(ctx context.Context, pool *pgxpool.Pool, client *river.Client[pgx.Tx], ev *stripeclient.WebhookEvent) (Disposition, error) {
	disposition := classifyWebhook(ev)
	var object []byte
	if ev.Product != nil || ev.Price != nil {
		var err error
		// A *.deleted event's object is the object as it was; the type
		// says it is gone.
		deleted := ev.Deleted || ev.Type == stripeclient.EventProductDeleted || ev.Type == stripeclient.EventPriceDeleted
		if object, err = json.Marshal(webhookObject{Product: ev.Product, Price: ev.Price, Deleted: deleted}); err != nil {
			return "", fmt.Errorf("encode event object: %w", err)
		}
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO stripe_sync_webhook_event (event_id, type, account, object_id, disposition, object, created_at)
			VALUES ($1, $2, nullif($3, ''), nullif($4, ''), $5, $6, $7)
			ON CONFLICT (event_id) DO NOTHING`,
			ev.ID, ev.Type, ev.Account, ev.ObjectID, string(disposition), object, ev.Created)
		if err != nil {
			return fmt.Errorf("record event %s: %w", ev.ID, err)
		}
		if tag.RowsAffected() == 0 {
			disposition = DispositionDuplicate
			return nil
		}
		if disposition != DispositionEnqueued {
			return nil
		}
		if _, err := client.InsertTx(ctx, tx, WebhookArgs{EventID: ev.ID}, nil); err != nil {
			return fmt.Errorf("enqueue event %s: %w", ev.ID, err)
		}
		// River notifies at most once per queue per FetchCooldown; events
		// arriving together must not wait for the next poll. The sync
		// schema is first on the connection's search_path.
		if _, err := tx.Exec(ctx, `SELECT pg_notify(current_schema() || '.river_insert', $1)`,
			`{"queue": "`+outbox.Queue+`"}`); err != nil {
			return fmt.Errorf("notify workers: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return disposition, nil
}

// webhookObject is what stripe_sync_webhook_event.object holds.
type webhookObject struct {
	Product *stripeclient.Product `json:"product,omitempty"`
	Price   *stripeclient.Price   `json:"price,omitempty"`
	Deleted bool                  `json:"deleted,omitempty"`
}

// classifyWebhook decides from the event alone (no database read, so the
// receiver answers fast) whether it needs a job.
func classifyWebhook(ev *stripeclient.WebhookEvent) Disposition {
	if ev.Account == "" {
		// The sync writes only to connected accounts.
		return DispositionIgnored
	}
	switch ev.Type {
	case stripeclient.EventAccountDeauthorized:
		return DispositionEnqueued
	case stripeclient.EventProductUpdated, stripeclient.EventProductDeleted:
		if stripeclient.IsOwnIdempotencyKey(ev.IdempotencyKey) {
			return DispositionOwnWrite
		}
		if ev.Product == nil || productEntity(ev.Product) == "" {
			return DispositionNotOurs
		}
		return DispositionEnqueued
	case stripeclient.EventPriceUpdated, stripeclient.EventPriceDeleted:
		if stripeclient.IsOwnIdempotencyKey(ev.IdempotencyKey) {
			return DispositionOwnWrite
		}
		if ev.Price == nil || priceEntity(ev.Price) == "" {
			return DispositionNotOurs
		}
		return DispositionEnqueued
	}
	return DispositionIgnored
}

// productEntity returns the event a Product belongs to by its metadata or
// its deterministic id, or "" when it names none.
func productEntity(p *stripeclient.Product) string {
	if id, err := outbox.ParseID(p.Metadata["event_id"]); err == nil {
		return id
	}
	if rest, ok := strings.CutPrefix(p.ID, ProductID("")); ok {
		if id, err := outbox.ParseID(rest); err == nil {
			return id
		}
	}
	return ""
}

// priceEntity returns the ticket type a Price belongs to by its metadata or
// its lookup key, or "" when it names none.
func priceEntity(p *stripeclient.Price) string {
	if id, err := outbox.ParseID(p.Metadata["ticket_id"]); err == nil {
		return id
	}
	if rest, ok := strings.CutPrefix(p.LookupKey, LookupKey("")); ok {
		if id, err := outbox.ParseID(rest); err == nil {
			return id
		}
	}
	return ""
}
