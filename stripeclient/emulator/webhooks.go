package emulator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// webhookAPIVersion is the api_version the Emulator's events carry.
const webhookAPIVersion = "2023-10-16"

// webhookAttempts is how often the Emulator tries to deliver one event
// before giving up; Stripe retries for up to three days
// (https://docs.stripe.com/webhooks#retries), which a test has no time for.
const webhookAttempts = 5

// webhookState is the Emulator's webhook endpoint, the events waiting to be
// delivered, what was delivered, and the accounts that deauthorised the
// platform. Guarded by Emulator.mu.
type webhookState struct {
	url, secret  string
	queue        [][]byte
	sending      bool
	deliveries   []WebhookDelivery
	deauthorized map[string]bool
	client       *http.Client
}

// WebhookDelivery is one event the Emulator sent (or failed to send).
type WebhookDelivery struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	Account string `json:"account,omitempty"`
	// Status is the endpoint's last answer; 0 when it never answered.
	Status   int `json:"status"`
	Attempts int `json:"attempts"`
}

// SetWebhook makes the Emulator send an event, signed with secret the way
// Stripe signs them (Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
// "<t>.<body>">, https://docs.stripe.com/webhooks#verify-manually), to url
// for every Product or Price its API creates or updates, for every
// DashboardUpdate, and for Deauthorize. Events go out one at a time, in
// order, from a goroutine of their own, and are retried a few times while
// the endpoint does not answer 2xx. An empty url stops sending.
func (e *Emulator) SetWebhook(url, secret string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hooks.url, e.hooks.secret = url, secret
	if e.hooks.client == nil {
		e.hooks.client = &http.Client{Timeout: 10 * time.Second}
	}
}

// WebhookDeliveries returns the events sent since the webhook was set, in
// the order they were sent.
func (e *Emulator) WebhookDeliveries() []WebhookDelivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]WebhookDelivery{}, e.hooks.deliveries...)
}

// Edit is a change made to a Product or Price outside the API: nil fields
// stay as they are.
type Edit struct {
	Name        *string           `json:"name,omitempty"`
	Description *string           `json:"description,omitempty"`
	Nickname    *string           `json:"nickname,omitempty"`
	Active      *bool             `json:"active,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// DashboardUpdate changes a Product (id prod_...) or Price (price_...) on
// account as someone editing it in Stripe's Dashboard would: the object
// changes and a product.updated or price.updated event is sent whose
// request carries an id but no idempotency key of ours. Metadata values
// replace (an empty value deletes the key). Returns an error if the object
// does not exist.
func (e *Emulator) DashboardUpdate(account, id string, edit Edit) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.account(account, false)
	now := e.clock().Unix()
	var obj any
	var typ string
	switch {
	case a.products[id] != nil:
		p := a.products[id]
		if edit.Name != nil {
			p.name = *edit.Name
		}
		if edit.Description != nil {
			d := *edit.Description
			p.description = &d
		}
		if edit.Active != nil {
			p.active = *edit.Active
		}
		p.metadata = editMetadata(p.metadata, edit.Metadata)
		p.updated = now
		obj, typ = p.render(), "product.updated"
	case a.prices[id] != nil:
		p := a.prices[id]
		if edit.Nickname != nil {
			n := *edit.Nickname
			p.nickname = &n
		}
		if edit.Active != nil {
			p.active = *edit.Active
		}
		p.metadata = editMetadata(p.metadata, edit.Metadata)
		obj, typ = p.render(), "price.updated"
	default:
		return fmt.Errorf("stripe emulator: no Product or Price %q on account %q", id, account)
	}
	e.queueEventLocked(typ, account, obj, newID("req_"), "")
	return nil
}

func editMetadata(m, edit map[string]string) map[string]string {
	out := copyMetadata(m)
	for k, v := range edit {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// Deauthorize makes account disconnect the platform: every later API
// request with its Stripe-Account header is answered 403 account_invalid,
// and an account.application.deauthorized event is sent for it
// (https://docs.stripe.com/connect/webhooks).
func (e *Emulator) Deauthorize(account string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.hooks.deauthorized == nil {
		e.hooks.deauthorized = map[string]bool{}
	}
	e.hooks.deauthorized[account] = true
	e.queueEventLocked("account.application.deauthorized", account,
		map[string]any{"id": "ca_emulator", "object": "application", "name": "stripe-sync"}, "", "")
}

// Reauthorize undoes Deauthorize: the account lets the platform in again.
func (e *Emulator) Reauthorize(account string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.hooks.deauthorized, account)
}

// refuseAccount answers a request to a deauthorised account as Stripe does.
func (e *Emulator) refuseAccount(account string) *apiError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if account == "" || !e.hooks.deauthorized[account] {
		return nil
	}
	return &apiError{status: http.StatusForbidden, typ: "invalid_request_error", code: "account_invalid",
		message: fmt.Sprintf("The provided key does not have access to account '%s' (or that account does not exist). "+
			"Application access may have been revoked.", account)}
}

// emitLocked queues the event an API write causes: Products and Prices
// created or updated. The caller holds e.mu.
func (e *Emulator) emitLocked(op string, rec RecordedRequest, obj any, apiErr *apiError) {
	if apiErr != nil || obj == nil {
		return
	}
	var typ string
	switch op {
	case "product.create":
		typ = "product.created"
	case "product.update":
		typ = "product.updated"
	case "price.create":
		typ = "price.created"
	case "price.update":
		typ = "price.updated"
	default:
		return
	}
	e.queueEventLocked(typ, rec.Account, obj, rec.RequestID, rec.IdempotencyKey)
}

// queueEventLocked renders an event and starts the sender when none runs.
// The caller holds e.mu.
func (e *Emulator) queueEventLocked(typ, account string, obj any, requestID, idempotencyKey string) {
	if e.hooks.url == "" {
		return
	}
	var request any
	if requestID != "" {
		var key *string
		if idempotencyKey != "" {
			key = &idempotencyKey
		}
		request = map[string]any{"id": requestID, "idempotency_key": key}
	}
	var acct *string
	if account != "" {
		acct = &account
	}
	body := jsonBody(map[string]any{
		"id":               newID("evt_"),
		"object":           "event",
		"account":          acct,
		"api_version":      webhookAPIVersion,
		"created":          e.clock().Unix(),
		"data":             map[string]any{"object": obj},
		"livemode":         false,
		"pending_webhooks": 1,
		"request":          request,
		"type":             typ,
	})
	e.hooks.queue = append(e.hooks.queue, body)
	if !e.hooks.sending {
		e.hooks.sending = true
		go e.sendWebhooks()
	}
}

// sendWebhooks delivers queued events in order until the queue is empty.
func (e *Emulator) sendWebhooks() {
	for {
		e.mu.Lock()
		if len(e.hooks.queue) == 0 || e.hooks.url == "" {
			e.hooks.queue, e.hooks.sending = nil, false
			e.mu.Unlock()
			return
		}
		body := e.hooks.queue[0]
		e.hooks.queue = e.hooks.queue[1:]
		url, secret, client := e.hooks.url, e.hooks.secret, e.hooks.client
		e.mu.Unlock()

		d := deliver(client, url, secret, body)
		e.mu.Lock()
		e.hooks.deliveries = append(e.hooks.deliveries, d)
		e.mu.Unlock()
	}
}

// deliver posts one event until the endpoint answers 2xx. The signature's
// timestamp is the real time of the attempt, not the Emulator's Clock: the
// receiver checks it against its own clock.
func deliver(client *http.Client, url, secret string, body []byte) WebhookDelivery {
	var head struct {
		ID      string  `json:"id"`
		Type    string  `json:"type"`
		Account *string `json:"account"`
	}
	_ = json.Unmarshal(body, &head)
	d := WebhookDelivery{EventID: head.ID, Type: head.Type}
	if head.Account != nil {
		d.Account = *head.Account
	}
	backoff := 50 * time.Millisecond
	for d.Attempts < webhookAttempts {
		d.Attempts++
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json; charset=utf-8")
			req.Header.Set("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
			req.Header.Set("Stripe-Signature", SignWebhook(body, secret, time.Now()))
			var resp *http.Response
			if resp, err = client.Do(req); err == nil {
				_ = resp.Body.Close()
				d.Status = resp.StatusCode
				if resp.StatusCode/100 == 2 {
					return d
				}
			}
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	return d
}

// SignWebhook returns the Stripe-Signature header Stripe would send with
// payload at time t: "t=<unix seconds>,v1=<hex HMAC-SHA256 with secret of
// "<t>.<payload>">". Tests use it to forge, age or replay deliveries.
func SignWebhook(payload []byte, secret string, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(payload)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// serveWebhookControl answers the control routes of this file, and reports
// whether route was one of them:
//
//	POST   /_emulator/webhook                 {"url": ..., "secret": ...}
//	GET    /_emulator/webhook/deliveries      events sent
//	POST   /_emulator/dashboard/{id}          {"account": ..., "name": ..., "active": ...}: a Dashboard edit
//	POST   /_emulator/deauthorize/{account}   the account disconnects the platform
//	DELETE /_emulator/deauthorize/{account}   and connects again
func (e *Emulator) serveWebhookControl(w http.ResponseWriter, r *http.Request, route string) bool {
	method, path, _ := strings.Cut(route, " ")
	switch {
	case route == "POST /_emulator/webhook":
		var in struct {
			URL    string `json:"url"`
			Secret string `json:"secret"`
		}
		if err := decodeControlBody(r, &in); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return true
		}
		e.SetWebhook(in.URL, in.Secret)
		w.WriteHeader(http.StatusNoContent)
	case route == "GET /_emulator/webhook/deliveries":
		writeControlJSON(w, http.StatusOK, e.WebhookDeliveries())
	case method == http.MethodPost && strings.HasPrefix(path, "/_emulator/dashboard/"):
		var in struct {
			Account string `json:"account"`
			Edit
		}
		if err := decodeControlBody(r, &in); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return true
		}
		if err := e.DashboardUpdate(in.Account, strings.TrimPrefix(path, "/_emulator/dashboard/"), in.Edit); err != nil {
			writeControlError(w, http.StatusNotFound, err.Error())
			return true
		}
		w.WriteHeader(http.StatusNoContent)
	case method == http.MethodPost && strings.HasPrefix(path, "/_emulator/deauthorize/"):
		e.Deauthorize(strings.TrimPrefix(path, "/_emulator/deauthorize/"))
		w.WriteHeader(http.StatusNoContent)
	case method == http.MethodDelete && strings.HasPrefix(path, "/_emulator/deauthorize/"):
		e.Reauthorize(strings.TrimPrefix(path, "/_emulator/deauthorize/"))
		w.WriteHeader(http.StatusNoContent)
	default:
		return false
	}
	return true
}

// SetWebhook is Emulator.SetWebhook through the control routes.
func (c *Control) SetWebhook(ctx context.Context, url, secret string) error {
	return c.do(ctx, http.MethodPost, "/_emulator/webhook", map[string]string{"url": url, "secret": secret}, nil)
}

// DashboardUpdate is Emulator.DashboardUpdate through the control routes.
func (c *Control) DashboardUpdate(ctx context.Context, account, id string, edit Edit) error {
	return c.do(ctx, http.MethodPost, "/_emulator/dashboard/"+id, struct {
		Account string `json:"account"`
		Edit
	}{account, edit}, nil)
}

// Deauthorize is Emulator.Deauthorize through the control routes.
func (c *Control) Deauthorize(ctx context.Context, account string) error {
	return c.do(ctx, http.MethodPost, "/_emulator/deauthorize/"+account, nil, nil)
}

// WebhookDeliveries is Emulator.WebhookDeliveries through the control routes.
func (c *Control) WebhookDeliveries(ctx context.Context) ([]WebhookDelivery, error) {
	var out []WebhookDelivery
	return out, c.do(ctx, http.MethodGet, "/_emulator/webhook/deliveries", nil, &out)
}
