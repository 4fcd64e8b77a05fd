package stripeclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// WebhookTolerance is how old a Stripe-Signature timestamp may be: Stripe's
// libraries' default, five minutes, which Stripe's documentation
// recommends against replayed deliveries
// (https://docs.stripe.com/webhooks#verify-events).
const WebhookTolerance = webhook.DefaultTolerance

// IdempotencyKeyPrefix starts every Idempotency-Key the sync sends. Stripe
// copies a request's key into the events the request causes
// (event.request.idempotency_key), so a webhook receiver can tell the sync's
// own writes from everyone else's (see IsOwnIdempotencyKey).
const IdempotencyKeyPrefix = "stripe-sync:"

// IsOwnIdempotencyKey reports whether key is one IdempotencyKey made.
func IsOwnIdempotencyKey(key string) bool { return strings.HasPrefix(key, IdempotencyKeyPrefix) }

// Webhook event types the sync acts on.
const (
	EventProductUpdated      = string(stripe.EventTypeProductUpdated)
	EventProductDeleted      = string(stripe.EventTypeProductDeleted)
	EventPriceUpdated        = string(stripe.EventTypePriceUpdated)
	EventPriceDeleted        = string(stripe.EventTypePriceDeleted)
	EventAccountDeauthorized = string(stripe.EventTypeAccountApplicationDeauthorized)
)

const (
	webhookObjectTypeProduct = "product"
	webhookObjectTypePrice   = "price"
)

// ErrWebhookSignature is returned (wrapped) by ParseWebhook for a payload
// whose Stripe-Signature does not verify: a wrong secret, a forged or altered
// body, or a timestamp outside the tolerance.
var ErrWebhookSignature = errors.New("stripe webhook signature verification failed")

// WebhookEvent is a verified Stripe event as the sync sees it.
type WebhookEvent struct {
	// ID is Stripe's event id (evt_...), unique per event and the same on
	// every redelivery of it.
	ID   string
	Type string
	// Account is the connected account the event happened on (Connect
	// webhooks); empty for the platform's own account.
	Account string
	Created time.Time
	// RequestID and IdempotencyKey are the API request's that caused the
	// event; empty for events no request caused (and the key for requests
	// sent without one, such as the Dashboard's edits).
	RequestID      string
	IdempotencyKey string
	// ObjectType is data.object.object ("product", "price", "application").
	ObjectType string
	ObjectID   string
	// Product or Price is data.object, for events about one.
	Product *Product
	Price   *Price
	// Deleted is set when data.object says deleted: true.
	Deleted bool
}

// ParseWebhook verifies payload against its Stripe-Signature header with
// secret, through stripe-go's webhook package, refusing signatures older (or
// newer) than WebhookTolerance, and returns the event. The event's API
// version may differ from stripe-go's: the fields read here are stable across
// versions. Returns an error wrapping ErrWebhookSignature when the signature
// does not verify, and another error when the payload is not an event. The
// secret never appears in an error.
func ParseWebhook(payload []byte, header, secret string) (*WebhookEvent, error) {
	if secret == "" {
		return nil, errors.New("stripe webhook: no signing secret configured")
	}
	ev, err := webhook.ConstructEventWithOptions(payload, header, secret, webhook.ConstructEventOptions{
		Tolerance: WebhookTolerance, IgnoreAPIVersionMismatch: true,
	})
	if err != nil {
		if errors.Is(err, webhook.ErrNotSigned) || errors.Is(err, webhook.ErrInvalidHeader) ||
			errors.Is(err, webhook.ErrNoValidSignature) || errors.Is(err, webhook.ErrTooOld) {
			return nil, fmt.Errorf("%w: %s", ErrWebhookSignature, scrub(secret, err.Error()))
		}
		return nil, fmt.Errorf("stripe webhook: %s", scrub(secret, err.Error()))
	}
	out := &WebhookEvent{ID: ev.ID, Type: string(ev.Type), Account: ev.Account, Created: time.Unix(ev.Created, 0)}
	if ev.Request != nil {
		out.RequestID, out.IdempotencyKey = ev.Request.ID, ev.Request.IdempotencyKey
	}
	if ev.Data == nil || len(ev.Data.Raw) == 0 {
		return out, nil
	}
	var head struct {
		Object  string `json:"object"`
		ID      string `json:"id"`
		Deleted bool   `json:"deleted"`
	}
	if err := json.Unmarshal(ev.Data.Raw, &head); err != nil {
		return nil, fmt.Errorf("stripe webhook: data.object: %w", err)
	}
	out.ObjectType, out.ObjectID, out.Deleted = head.Object, head.ID, head.Deleted
	switch head.Object {
	case webhookObjectTypeProduct:
		var p stripe.Product
		if err := json.Unmarshal(ev.Data.Raw, &p); err != nil {
			return nil, fmt.Errorf("stripe webhook: product: %w", err)
		}
		out.Product = productFrom(&p)
	case webhookObjectTypePrice:
		var p stripe.Price
		if err := json.Unmarshal(ev.Data.Raw, &p); err != nil {
			return nil, fmt.Errorf("stripe webhook: price: %w", err)
		}
		out.Price = priceFrom(&p)
	}
	return out, nil
}
