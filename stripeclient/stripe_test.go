package stripeclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stripeTestKey looks like a real key so that both the exact-key and the pattern
// scrubbing are exercised; its tail is easy to grep for.
const stripeTestKey = "sk_test_51SECRETk3yTa1LxYzQz7W"

type stripeRecordedRequest struct {
	Method string
	Path   string
	Header http.Header
	Form   url.Values
}

type stripeTestBundle struct {
	client *StripeClient
	server *httptest.Server
	logs   *stripeSyncBuffer

	mu       sync.Mutex
	requests []stripeRecordedRequest
}

func (b *stripeTestBundle) recorded() []stripeRecordedRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]stripeRecordedRequest(nil), b.requests...)
}

type stripeSyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *stripeSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *stripeSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// setupStripeClient starts an httptest server answering with respond (after
// recording the request) and a StripeClient pointed at it, logging at Debug
// into bundle.logs. configure may adjust the Options.
func setupStripeClient(t *testing.T, respond http.HandlerFunc, configure ...func(*Options)) *stripeTestBundle {
	t.Helper()
	bundle := &stripeTestBundle{logs: &stripeSyncBuffer{}}
	bundle.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		bundle.mu.Lock()
		bundle.requests = append(bundle.requests, stripeRecordedRequest{
			Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: r.Form,
		})
		bundle.mu.Unlock()
		respond(w, r)
	}))
	t.Cleanup(bundle.server.Close)

	opts := Options{
		SecretKey: stripeTestKey,
		APIBase:   bundle.server.URL,
		Logger:    slog.New(slog.NewTextHandler(bundle.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range configure {
		f(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	bundle.client = c
	return bundle
}

func stripeWriteJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_test123")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func stripeProductJSON(id string) string {
	return fmt.Sprintf(`{"id":%q,"object":"product","name":"Gala","description":"d","images":["https://x/i.png"],"active":true,"metadata":{"event_id":"e1"},"created":1700000000}`, id)
}

func stripePriceJSON(id string) string {
	return fmt.Sprintf(`{"id":%q,"object":"price","product":"prod_1","currency":"aud","unit_amount":1500,"nickname":"Adult","lookup_key":"lk_1","active":true,"metadata":{"ticket_id":"t1"},"created":1700000001}`, id)
}

func stripeErrorJSON(typ, code, msg string) string {
	return fmt.Sprintf(`{"error":{"type":%q,"code":%q,"message":%q}}`, typ, code, msg)
}

// stripeLike answers every route the Client uses with one fixture object, or
// a one-item list.
func stripeLike(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/products" && r.Method == http.MethodGet:
		stripeWriteJSON(w, 200, `{"object":"list","url":"/v1/products","has_more":false,"data":[`+stripeProductJSON("prod_1")+`]}`)
	case r.URL.Path == "/v1/prices" && r.Method == http.MethodGet:
		stripeWriteJSON(w, 200, `{"object":"list","url":"/v1/prices","has_more":false,"data":[`+stripePriceJSON("price_1")+`]}`)
	case strings.HasPrefix(r.URL.Path, "/v1/products"):
		stripeWriteJSON(w, 200, stripeProductJSON("prod_1"))
	case strings.HasPrefix(r.URL.Path, "/v1/prices"):
		stripeWriteJSON(w, 200, stripePriceJSON("price_1"))
	default:
		stripeWriteJSON(w, 404, stripeErrorJSON("invalid_request_error", "", "unrecognized URL"))
	}
}

var (
	stripeTestProduct = ProductParams{
		ID: "prod_evt_1", Name: "Gala", Description: "A night out",
		Images: []string{"https://example.com/gala.png"}, Active: true,
		Metadata: map[string]string{"event_id": "e1", "event_slug": "gala"},
	}
	stripeTestPrice = PriceParams{
		Product: "prod_evt_1", Currency: "aud", UnitAmount: 1500, Nickname: "Adult",
		LookupKey: "ticket_t1", Active: true, Metadata: map[string]string{"ticket_id": "t1"},
	}
)

// callEveryMethod calls every Client method once and returns the number of calls.
func callEveryMethod(ctx context.Context, t *testing.T, c Client, call Call) int {
	t.Helper()
	_, err := c.CreateProduct(ctx, call, stripeTestProduct)
	require.NoError(t, err)
	_, err = c.UpdateProduct(ctx, call, "prod_evt_1", stripeTestProduct)
	require.NoError(t, err)
	_, err = c.ArchiveProduct(ctx, call, "prod_evt_1")
	require.NoError(t, err)
	_, err = c.GetProduct(ctx, call, "prod_evt_1")
	require.NoError(t, err)
	require.NoError(t, c.ListProducts(ctx, call, func(*Product) error { return nil }))
	_, err = c.CreatePrice(ctx, call, stripeTestPrice)
	require.NoError(t, err)
	_, err = c.UpdatePrice(ctx, call, "price_1", stripeTestPrice)
	require.NoError(t, err)
	_, err = c.ArchivePrice(ctx, call, "price_1")
	require.NoError(t, err)
	_, err = c.GetPrice(ctx, call, "price_1")
	require.NoError(t, err)
	_, err = c.FindPriceByLookupKey(ctx, call, "ticket_t1")
	require.NoError(t, err)
	require.NoError(t, c.ListPrices(ctx, call, "prod_evt_1", func(*Price) error { return nil }))
	return 11
}

func TestStripeClient_New(t *testing.T) {
	t.Parallel()

	t.Run("SecretKeyRequired", func(t *testing.T) {
		t.Parallel()
		_, err := New(Options{})
		require.ErrorContains(t, err, "SecretKey is required")
	})

	t.Run("BadAPIBaseErrorHasNoKey", func(t *testing.T) {
		t.Parallel()
		for _, base := range []string{"127.0.0.1:12111", "ftp://x", "http://", "::"} {
			_, err := New(Options{SecretKey: stripeTestKey, APIBase: base})
			require.Error(t, err, base)
			require.NotContains(t, err.Error(), stripeTestKey)
		}
	})

	t.Run("CallerHTTPClientUntouched", func(t *testing.T) {
		t.Parallel()
		hc := &http.Client{Timeout: time.Second}
		_, err := New(Options{SecretKey: stripeTestKey, HTTPClient: hc})
		require.NoError(t, err)
		require.Nil(t, hc.Transport)
	})
}

func TestStripeClient_Requests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	call := Call{Account: "acct_123"}

	t.Run("CreateProduct", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		product, err := bundle.client.CreateProduct(ctx, call, stripeTestProduct)
		require.NoError(t, err)
		require.Equal(t, &Product{
			ID: "prod_1", Name: "Gala", Description: "d", Images: []string{"https://x/i.png"},
			Active: true, Metadata: map[string]string{"event_id": "e1"}, Created: 1700000000,
		}, product)

		reqs := bundle.recorded()
		require.Len(t, reqs, 1)
		require.Equal(t, "POST", reqs[0].Method)
		require.Equal(t, "/v1/products", reqs[0].Path)
		require.Equal(t, url.Values{
			"id": {"prod_evt_1"}, "name": {"Gala"}, "description": {"A night out"},
			"images[0]": {"https://example.com/gala.png"}, "active": {"true"},
			"metadata[event_id]": {"e1"}, "metadata[event_slug]": {"gala"},
		}, reqs[0].Form)
	})

	t.Run("CreateProductOmitsEmpty", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		_, err := bundle.client.CreateProduct(ctx, call, ProductParams{Name: "Gala", Images: []string{}})
		require.NoError(t, err)
		require.Equal(t, url.Values{"name": {"Gala"}, "active": {"false"}}, bundle.recorded()[0].Form)
	})

	t.Run("UpdateProductClears", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		_, err := bundle.client.UpdateProduct(ctx, call, "prod_evt_1", ProductParams{ID: "ignored", Name: "Gala", Active: true})
		require.NoError(t, err)
		req := bundle.recorded()[0]
		require.Equal(t, "/v1/products/prod_evt_1", req.Path)
		require.Equal(t, url.Values{"name": {"Gala"}, "description": {""}, "images": {""}, "active": {"true"}}, req.Form)
	})

	t.Run("UpdateProduct", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		_, err := bundle.client.UpdateProduct(ctx, call, "prod_evt_1", stripeTestProduct)
		require.NoError(t, err)
		require.Equal(t, url.Values{
			"name": {"Gala"}, "description": {"A night out"},
			"images[0]": {"https://example.com/gala.png"}, "active": {"true"},
			"metadata[event_id]": {"e1"}, "metadata[event_slug]": {"gala"},
		}, bundle.recorded()[0].Form)
	})

	t.Run("ArchiveSendsOnlyActive", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		_, err := bundle.client.ArchiveProduct(ctx, call, "prod_evt_1")
		require.NoError(t, err)
		_, err = bundle.client.ArchivePrice(ctx, call, "price_1")
		require.NoError(t, err)
		reqs := bundle.recorded()
		require.Equal(t, "/v1/products/prod_evt_1", reqs[0].Path)
		require.Equal(t, url.Values{"active": {"false"}}, reqs[0].Form)
		require.Equal(t, "/v1/prices/price_1", reqs[1].Path)
		require.Equal(t, url.Values{"active": {"false"}}, reqs[1].Form)
	})

	t.Run("CreatePrice", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		price, err := bundle.client.CreatePrice(ctx, call, stripeTestPrice)
		require.NoError(t, err)
		require.Equal(t, &Price{
			ID: "price_1", Product: "prod_1", Currency: "aud", UnitAmount: 1500, Nickname: "Adult",
			LookupKey: "lk_1", Active: true, Metadata: map[string]string{"ticket_id": "t1"}, Created: 1700000001,
		}, price)
		require.Equal(t, url.Values{
			"product": {"prod_evt_1"}, "currency": {"aud"}, "unit_amount": {"1500"}, "nickname": {"Adult"},
			"lookup_key": {"ticket_t1"}, "transfer_lookup_key": {"true"}, "active": {"true"},
			"metadata[ticket_id]": {"t1"},
		}, bundle.recorded()[0].Form)
	})

	t.Run("CreateFreePrice", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		_, err := bundle.client.CreatePrice(ctx, call, PriceParams{Product: "prod_1", Currency: "aud", Active: true})
		require.NoError(t, err)
		require.Equal(t, url.Values{
			"product": {"prod_1"}, "currency": {"aud"}, "unit_amount": {"0"}, "active": {"true"},
		}, bundle.recorded()[0].Form)
	})

	t.Run("UpdatePrice", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		_, err := bundle.client.UpdatePrice(ctx, call, "price_1", stripeTestPrice)
		require.NoError(t, err)
		_, err = bundle.client.UpdatePrice(ctx, call, "price_1", PriceParams{Active: true})
		require.NoError(t, err)
		reqs := bundle.recorded()
		require.Equal(t, "/v1/prices/price_1", reqs[0].Path)
		require.Equal(t, url.Values{
			"nickname": {"Adult"}, "lookup_key": {"ticket_t1"}, "transfer_lookup_key": {"true"},
			"active": {"true"}, "metadata[ticket_id]": {"t1"},
		}, reqs[0].Form)
		require.Equal(t, url.Values{"nickname": {""}, "active": {"true"}}, reqs[1].Form)
	})

	t.Run("Reads", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		_, err := bundle.client.GetProduct(ctx, call, "prod_evt_1")
		require.NoError(t, err)
		_, err = bundle.client.GetPrice(ctx, call, "price_1")
		require.NoError(t, err)
		price, err := bundle.client.FindPriceByLookupKey(ctx, call, "ticket_t1")
		require.NoError(t, err)
		require.Equal(t, "price_1", price.ID)
		require.NoError(t, bundle.client.ListPrices(ctx, call, "prod_evt_1", func(*Price) error { return nil }))
		require.NoError(t, bundle.client.ListPrices(ctx, call, "", func(*Price) error { return nil }))

		reqs := bundle.recorded()
		for _, req := range reqs {
			require.Equal(t, "GET", req.Method)
		}
		require.Equal(t, "/v1/products/prod_evt_1", reqs[0].Path)
		require.Equal(t, "/v1/prices/price_1", reqs[1].Path)
		require.Equal(t, url.Values{"lookup_keys[0]": {"ticket_t1"}, "limit": {"100"}}, reqs[2].Form)
		require.Equal(t, url.Values{"product": {"prod_evt_1"}, "limit": {"100"}}, reqs[3].Form)
		require.Equal(t, url.Values{"limit": {"100"}}, reqs[4].Form)
	})

	t.Run("FindPriceByLookupKeyNone", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
			stripeWriteJSON(w, 200, `{"object":"list","url":"/v1/prices","has_more":false,"data":[]}`)
		})
		price, err := bundle.client.FindPriceByLookupKey(ctx, call, "nope")
		require.NoError(t, err)
		require.Nil(t, price)
	})

	t.Run("ListPaginatesAndStopsAtFnError", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
			switch r.Form.Get("starting_after") {
			case "":
				stripeWriteJSON(w, 200, `{"object":"list","url":"/v1/products","has_more":true,"data":[`+stripeProductJSON("prod_a")+`,`+stripeProductJSON("prod_b")+`]}`)
			case "prod_b":
				stripeWriteJSON(w, 200, `{"object":"list","url":"/v1/products","has_more":false,"data":[`+stripeProductJSON("prod_c")+`]}`)
			default:
				stripeWriteJSON(w, 400, stripeErrorJSON("invalid_request_error", "", "bad cursor"))
			}
		})
		var ids []string
		require.NoError(t, bundle.client.ListProducts(ctx, call, func(p *Product) error {
			ids = append(ids, p.ID)
			return nil
		}))
		require.Equal(t, []string{"prod_a", "prod_b", "prod_c"}, ids)
		require.Len(t, bundle.recorded(), 2)

		stop := errors.New("stop")
		err := bundle.client.ListProducts(ctx, call, func(p *Product) error { return stop })
		require.ErrorIs(t, err, stop)
	})
}

func TestStripeClient_StripeAccountHeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SentOnEveryRequest", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		n := callEveryMethod(ctx, t, bundle.client, Call{Account: "acct_1Conn"})
		reqs := bundle.recorded()
		require.Len(t, reqs, n)
		for _, req := range reqs {
			require.Equal(t, "acct_1Conn", req.Header.Get("Stripe-Account"), req.Path)
			require.Equal(t, "Bearer "+stripeTestKey, req.Header.Get("Authorization"))
		}
	})

	t.Run("NoneForPlatform", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		callEveryMethod(ctx, t, bundle.client, Call{})
		for _, req := range bundle.recorded() {
			require.Empty(t, req.Header.Values("Stripe-Account"), req.Path)
		}
	})
}

func TestStripeClient_IdempotencyHeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("WritesWithScope", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		call := Call{Account: "acct_1", IdempotencyScope: "event:e1:v7"}
		callEveryMethod(ctx, t, bundle.client, call)
		callEveryMethod(ctx, t, bundle.client, call)

		reqs := bundle.recorded()
		require.Len(t, reqs, 22)
		first, second := reqs[:11], reqs[11:]
		want := map[string]string{
			"/v1/products":            IdempotencyKey(call, "create_product", "prod_evt_1", stripeTestProduct),
			"/v1/prices":              IdempotencyKey(call, "create_price", "", stripeTestPrice),
			"/v1/prices/price_1":      IdempotencyKey(call, "update_price", "price_1", PriceParams{Nickname: stripeTestPrice.Nickname, LookupKey: stripeTestPrice.LookupKey, Active: true, Metadata: stripeTestPrice.Metadata}),
			"/v1/products/prod_evt_1": IdempotencyKey(call, "update_product", "prod_evt_1", ProductParams{Name: stripeTestProduct.Name, Description: stripeTestProduct.Description, Images: stripeTestProduct.Images, Active: true, Metadata: stripeTestProduct.Metadata}),
		}
		seen := map[string]bool{}
		for i, req := range first {
			key := req.Header.Get("Idempotency-Key")
			require.Equal(t, key, second[i].Header.Get("Idempotency-Key"), "stable across calls: %s %s", req.Method, req.Path)
			if req.Method == http.MethodGet {
				require.Empty(t, req.Header.Values("Idempotency-Key"), "read %s", req.Path)
				continue
			}
			require.True(t, strings.HasPrefix(key, IdempotencyKeyPrefix+"event:e1:v7:"), key)
			require.LessOrEqual(t, len(key), 255)
			require.False(t, seen[key], "each write has its own key: %s", key)
			seen[key] = true
			if w, ok := want[req.Path]; ok && !strings.Contains(key, "archive") {
				require.Equal(t, w, key, req.Path)
			}
		}
		require.Len(t, seen, 6)
		require.Equal(t, IdempotencyKey(call, "archive_product", "prod_evt_1", nil), first[2].Header.Get("Idempotency-Key"))
		require.Equal(t, IdempotencyKey(call, "archive_price", "price_1", nil), first[7].Header.Get("Idempotency-Key"))
	})

	t.Run("ChangesWithParams", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		call := Call{IdempotencyScope: "event:e1:v7"}
		_, err := bundle.client.UpdateProduct(ctx, call, "prod_1", stripeTestProduct)
		require.NoError(t, err)
		changed := stripeTestProduct
		changed.Name = "Gala 2"
		_, err = bundle.client.UpdateProduct(ctx, call, "prod_1", changed)
		require.NoError(t, err)
		reqs := bundle.recorded()
		require.NotEqual(t, reqs[0].Header.Get("Idempotency-Key"), reqs[1].Header.Get("Idempotency-Key"))
	})

	t.Run("NoneWithoutScope", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike)
		callEveryMethod(ctx, t, bundle.client, Call{Account: "acct_1"})
		for _, req := range bundle.recorded() {
			require.Empty(t, req.Header.Values("Idempotency-Key"), "%s %s", req.Method, req.Path)
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	call := Call{Account: "acct_1", IdempotencyScope: "event:e1:v7"}

	t.Run("Format", func(t *testing.T) {
		t.Parallel()
		key := IdempotencyKey(call, "update_product", "prod_1", stripeTestProduct)
		require.Regexp(t, `^stripe-sync:event:e1:v7:update_product:[0-9a-f]{24}$`, key)
	})

	t.Run("NoSaltIsTheKeyBeforeSalts", func(t *testing.T) {
		t.Parallel()
		// Keys in flight when salts arrived must not change: an empty salt
		// adds nothing to the hashed encoding.
		sum := sha256.Sum256([]byte(`{"account":"acct_1","target":"prod_1","params":null}`))
		require.Equal(t, IdempotencyKeyPrefix+"event:e1:v7:archive_product:"+hex.EncodeToString(sum[:])[:24],
			IdempotencyKey(call, "archive_product", "prod_1", nil))
	})

	t.Run("EqualInputsEqualKeys", func(t *testing.T) {
		t.Parallel()
		a := stripeTestProduct
		a.Metadata = map[string]string{}
		b := stripeTestProduct
		b.Metadata = map[string]string{}
		for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			a.Metadata[k] = k
		}
		for _, k := range []string{"h", "g", "f", "e", "d", "c", "b", "a"} {
			b.Metadata[k] = k
		}
		b.Images = append([]string(nil), a.Images...)
		require.Equal(t, IdempotencyKey(call, "op", "t", a), IdempotencyKey(call, "op", "t", b))
		require.Equal(t, IdempotencyKey(call, "op", "t", a), IdempotencyKey(call, "op", "t", &b))
		require.Equal(t, IdempotencyKey(call, "op", "t", nil), IdempotencyKey(call, "op", "t", nil))
		// nil and empty send the same request, so they share a key.
		require.Equal(t,
			IdempotencyKey(call, "op", "t", ProductParams{Name: "x"}),
			IdempotencyKey(call, "op", "t", ProductParams{Name: "x", Images: []string{}, Metadata: map[string]string{}}))
		require.Equal(t,
			IdempotencyKey(call, "op", "t", PriceParams{Nickname: "x"}),
			IdempotencyKey(call, "op", "t", PriceParams{Nickname: "x", Metadata: map[string]string{}}))
	})

	t.Run("AnyChangeChangesKey", func(t *testing.T) {
		t.Parallel()
		base := IdempotencyKey(call, "update_product", "prod_1", stripeTestProduct)
		product := func(f func(*ProductParams)) ProductParams {
			p := stripeTestProduct
			p.Images = append([]string(nil), stripeTestProduct.Images...)
			p.Metadata = map[string]string{}
			for k, v := range stripeTestProduct.Metadata {
				p.Metadata[k] = v
			}
			f(&p)
			return p
		}
		variants := map[string]string{
			"account": IdempotencyKey(Call{Account: "acct_2", IdempotencyScope: call.IdempotencyScope}, "update_product", "prod_1", stripeTestProduct),
			"salt":    IdempotencyKey(Call{Account: call.Account, IdempotencyScope: call.IdempotencyScope, IdempotencySalt: "1"}, "update_product", "prod_1", stripeTestProduct),
			"salt2":   IdempotencyKey(Call{Account: call.Account, IdempotencyScope: call.IdempotencyScope, IdempotencySalt: "2"}, "update_product", "prod_1", stripeTestProduct),
			"scope":   IdempotencyKey(Call{Account: call.Account, IdempotencyScope: "event:e1:v8"}, "update_product", "prod_1", stripeTestProduct),
			"op":      IdempotencyKey(call, "create_product", "prod_1", stripeTestProduct),
			"target":  IdempotencyKey(call, "update_product", "prod_2", stripeTestProduct),
			"nil":     IdempotencyKey(call, "update_product", "prod_1", nil),
			"id":      IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.ID = "x" })),
			"name":    IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.Name = "x" })),
			"desc":    IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.Description = "x" })),
			"images":  IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.Images = nil })),
			"image":   IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.Images[0] += "?" })),
			"active":  IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.Active = false })),
			"metaval": IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.Metadata["event_id"] = "e2" })),
			"metakey": IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { p.Metadata["extra"] = "" })),
			"metadel": IdempotencyKey(call, "update_product", "prod_1", product(func(p *ProductParams) { delete(p.Metadata, "event_slug") })),
		}
		seen := map[string]string{base: "base"}
		for name, key := range variants {
			prev, dup := seen[key]
			require.False(t, dup, "%s gives the same key as %s", name, prev)
			seen[key] = name
		}

		priceBase := IdempotencyKey(call, "create_price", "", stripeTestPrice)
		price := func(f func(*PriceParams)) string {
			p := stripeTestPrice
			p.Metadata = map[string]string{"ticket_id": "t1"}
			f(&p)
			return IdempotencyKey(call, "create_price", "", p)
		}
		for name, key := range map[string]string{
			"product":  price(func(p *PriceParams) { p.Product = "prod_x" }),
			"currency": price(func(p *PriceParams) { p.Currency = "nzd" }),
			"amount":   price(func(p *PriceParams) { p.UnitAmount++ }),
			"nickname": price(func(p *PriceParams) { p.Nickname = "Child" }),
			"lookup":   price(func(p *PriceParams) { p.LookupKey = "other" }),
			"active":   price(func(p *PriceParams) { p.Active = false }),
			"metadata": price(func(p *PriceParams) { p.Metadata["ticket_id"] = "t2" }),
		} {
			require.NotEqual(t, priceBase, key, name)
		}
		require.Equal(t, priceBase, price(func(*PriceParams) {}))
	})

	t.Run("LongScopeFits", func(t *testing.T) {
		t.Parallel()
		long := Call{IdempotencyScope: strings.Repeat("s", 300)}
		key := IdempotencyKey(long, "update_product", "prod_1", stripeTestProduct)
		require.LessOrEqual(t, len(key), 255)
		require.Regexp(t, `^stripe-sync:sha256-[0-9a-f]{32}:update_product:[0-9a-f]{24}$`, key)
		require.Equal(t, key, IdempotencyKey(long, "update_product", "prod_1", stripeTestProduct))
		other := Call{IdempotencyScope: strings.Repeat("s", 299) + "t"}
		require.NotEqual(t, key, IdempotencyKey(other, "update_product", "prod_1", stripeTestProduct))

		edge := Call{IdempotencyScope: strings.Repeat("s", 255-len(IdempotencyKeyPrefix+":update_product:")-24)}
		require.Len(t, IdempotencyKey(edge, "update_product", "", nil), 255)
		require.True(t, strings.HasPrefix(IdempotencyKey(edge, "update_product", "", nil), IdempotencyKeyPrefix+edge.IdempotencyScope))
	})
}

func TestStripeClient_ErrorClassification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	type errorCase struct {
		name       string
		status     int
		body       string
		retryAfter string
		header     map[string]string
		wantClass  Class
		wantCode   string
		wantWait   time.Duration
		wantInMsg  string
		wantReason string
	}
	cases := []errorCase{
		{name: "500", status: 500, body: stripeErrorJSON("api_error", "", "boom"), wantClass: ClassRetryable},
		{name: "503RetryAfter", status: 503, body: stripeErrorJSON("api_error", "", "later"), retryAfter: "7", wantClass: ClassRetryable, wantWait: 7 * time.Second},
		{name: "502NotJSON", status: 502, body: "<html>Bad Gateway</html>", wantClass: ClassRetryable},
		{name: "500Replayed", status: 500, body: stripeErrorJSON("api_error", "", "boom"), header: map[string]string{"Idempotent-Replayed": "true"}, wantClass: ClassRetryable},
		{name: "502NotJSONReplayed", status: 502, body: "<html>Bad Gateway</html>", header: map[string]string{"Idempotent-Replayed": "true"}, wantClass: ClassRetryable},
		{name: "409LockTimeout", status: 409, body: stripeErrorJSON("invalid_request_error", "lock_timeout", "locked"), wantClass: ClassRetryable, wantCode: "lock_timeout"},
		{name: "409KeyInUse", status: 409, body: stripeErrorJSON("idempotency_error", "idempotency_key_in_use", "in use"), wantClass: ClassRetryable, wantCode: "idempotency_key_in_use"},
		{name: "409Other", status: 409, body: stripeErrorJSON("invalid_request_error", "", "conflict"), wantClass: ClassRetryable},
		{name: "429RetryAfter", status: 429, body: stripeErrorJSON("invalid_request_error", "rate_limit", "slow down"), retryAfter: "3", wantClass: ClassRateLimited, wantCode: "rate_limit", wantWait: 3 * time.Second},
		{name: "429FractionalRetryAfter", status: 429, body: stripeErrorJSON("invalid_request_error", "rate_limit", "slow down"), retryAfter: "0.5", wantClass: ClassRateLimited, wantCode: "rate_limit", wantWait: 500 * time.Millisecond},
		{name: "429NoRetryAfter", status: 429, body: stripeErrorJSON("invalid_request_error", "rate_limit", "slow down"), wantClass: ClassRateLimited, wantCode: "rate_limit"},
		{name: "429NotJSON", status: 429, body: "too many", retryAfter: "2", wantClass: ClassRateLimited, wantWait: 2 * time.Second},
		{name: "429EndpointRate", status: 429, body: stripeErrorJSON("invalid_request_error", "rate_limit", "slow down"), header: map[string]string{"Stripe-Rate-Limited-Reason": "endpoint-rate"}, wantClass: ClassRateLimited, wantCode: "rate_limit", wantReason: "endpoint-rate"},
		{name: "429GlobalRate", status: 429, body: stripeErrorJSON("invalid_request_error", "rate_limit", "slow down"), header: map[string]string{"Stripe-Rate-Limited-Reason": "global-rate"}, wantClass: ClassRateLimited, wantCode: "rate_limit", wantReason: "global-rate"},
		{name: "429LockTimeout", status: 429, body: stripeErrorJSON("invalid_request_error", "lock_timeout", "busy"), wantClass: ClassRateLimited, wantCode: "lock_timeout", wantReason: ReasonLockTimeout},
		{name: "401", status: 401, body: stripeErrorJSON("invalid_request_error", "", "Invalid API Key provided"), wantClass: ClassAuth},
		{name: "403", status: 403, body: stripeErrorJSON("invalid_request_error", "", "no access to account"), wantClass: ClassAuth},
		{name: "404", status: 404, body: stripeErrorJSON("invalid_request_error", "resource_missing", "No such product"), wantClass: ClassNotFound, wantCode: "resource_missing"},
		{name: "404NoCode", status: 404, body: stripeErrorJSON("invalid_request_error", "", "Unrecognized request URL"), wantClass: ClassNotFound},
		{name: "400ResourceMissing", status: 400, body: stripeErrorJSON("invalid_request_error", "resource_missing", "No such product"), wantClass: ClassNotFound, wantCode: "resource_missing"},
		{name: "400AlreadyExists", status: 400, body: stripeErrorJSON("invalid_request_error", "resource_already_exists", "Product already exists"), wantClass: ClassAlreadyExists, wantCode: "resource_already_exists"},
		{name: "400IdempotencyMismatch", status: 400, body: stripeErrorJSON("idempotency_error", "", "Keys for idempotent requests can only be used with the same parameters"), wantClass: ClassInvalid, wantInMsg: "reused with different parameters"},
		{name: "400Invalid", status: 400, body: stripeErrorJSON("invalid_request_error", "parameter_invalid_empty", "name is empty"), wantClass: ClassInvalid, wantCode: "parameter_invalid_empty", wantInMsg: "name is empty"},
		{name: "402", status: 402, body: stripeErrorJSON("card_error", "", "payment required"), wantClass: ClassInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int32
			bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				stripeWriteJSON(w, tc.status, tc.body)
			})
			_, err := bundle.client.UpdateProduct(ctx, Call{IdempotencyScope: "s"}, "prod_1", stripeTestProduct)
			require.Error(t, err)
			var se *Error
			require.ErrorAs(t, err, &se)
			require.Equal(t, tc.wantClass, se.Class, "%v", err)
			require.Equal(t, tc.wantClass, ClassOf(err))
			require.Equal(t, "update_product", se.Op)
			require.Equal(t, tc.status, se.HTTPStatus)
			require.Equal(t, tc.wantCode, se.Code)
			require.Equal(t, "req_test123", se.RequestID)
			require.Equal(t, tc.wantWait, se.RetryAfter)
			require.NotEmpty(t, se.Message)
			if tc.wantInMsg != "" {
				require.Contains(t, se.Message, tc.wantInMsg)
			}
			require.Equal(t, tc.wantReason, se.RateLimitedReason)
			require.Equal(t, tc.header["Idempotent-Replayed"] == "true", se.Replayed)
			// A 5xx, replayed or not, spends the key; any other answer does not.
			wantAnswer := AnswerClientError
			if tc.status >= 500 {
				wantAnswer = AnswerServerError
			}
			require.Equal(t, wantAnswer, se.Answer)
			require.Equal(t, wantAnswer, AnswerOf(err))
			require.Equal(t, tc.status >= 500, NeedsNewKey(err))
			require.EqualValues(t, 1, hits.Load(), "stripe-go must not retry")
		})
	}

	t.Run("NetworkError", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c, err := New(Options{SecretKey: stripeTestKey, APIBase: "http://" + addr})
		require.NoError(t, err)
		_, err = c.GetProduct(ctx, Call{}, "prod_1")
		var se *Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, ClassRetryable, se.Class)
		require.Equal(t, 0, se.HTTPStatus)
		require.Contains(t, se.Error(), "retryable")
		require.Equal(t, AnswerNone, se.Answer)
		require.False(t, NeedsNewKey(err), "no answer: the next attempt reuses the key")
	})

	t.Run("ConnectionDroppedNotRetried", func(t *testing.T) {
		t.Parallel()
		var hits atomic.Int32
		bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		})
		_, err := bundle.client.CreateProduct(ctx, Call{IdempotencyScope: "s"}, stripeTestProduct)
		var se *Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, ClassRetryable, se.Class)
		require.Equal(t, 0, se.HTTPStatus)
		require.Equal(t, AnswerNone, se.Answer, "a lost answer is no answer, whatever Stripe did")
		require.False(t, NeedsNewKey(err))
		require.EqualValues(t, 1, hits.Load())
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		})
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := bundle.client.GetProduct(cctx, Call{}, "prod_1")
		require.ErrorIs(t, err, context.Canceled)
		var se *Error
		require.False(t, errors.As(err, &se), "a cancellation is not a Stripe error: %v", err)
		require.Equal(t, AnswerNone, AnswerOf(err), "Stripe may have received the request")
		require.False(t, NeedsNewKey(err))
	})

	t.Run("ContextDeadline", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		})
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := bundle.client.ListPrices(dctx, Call{}, "", func(*Price) error { return nil })
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestClassify(t *testing.T) {
	t.Parallel()
	require.Equal(t, ClassRetryable, classify(0, "", ""))
	require.Equal(t, ClassRetryable, classify(504, "", ""))
	require.Equal(t, ClassRetryable, classify(400, "lock_timeout", ""))
	require.Equal(t, ClassInvalid, classify(400, "", "idempotency_error"))
	require.Equal(t, ClassInvalid, classify(422, "", ""))
	require.Equal(t, ClassRateLimited, classify(429, "lock_timeout", ""))
}

func TestStripeClient_NoRetries(t *testing.T) {
	t.Parallel()
	for _, status := range []int{500, 409, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			t.Parallel()
			var hits atomic.Int32
			bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				// Stripe-Should-Retry would make stripe-go retry if it could.
				w.Header().Set("Stripe-Should-Retry", "true")
				stripeWriteJSON(w, status, stripeErrorJSON("api_error", "", "try again"))
			})
			_, err := bundle.client.CreatePrice(context.Background(), Call{IdempotencyScope: "s"}, stripeTestPrice)
			require.True(t, IsClass(err, ClassRetryable), "%v", err)
			require.EqualValues(t, 1, hits.Load())
		})
	}
}

type countingLimiter struct {
	mu   sync.Mutex
	reqs []Request
	err  error
}

func (f *countingLimiter) Wait(ctx context.Context, req Request) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	return f.err
}

func (f *countingLimiter) calls() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.reqs...)
}

func TestStripeClient_Limiter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("OncePerRequest", func(t *testing.T) {
		t.Parallel()
		limiter := &countingLimiter{}
		bundle := setupStripeClient(t, stripeLike, func(o *Options) { o.Limiter = limiter })
		n := callEveryMethod(ctx, t, bundle.client, Call{Account: "acct_9"})
		require.Len(t, bundle.recorded(), n)
		require.Len(t, limiter.calls(), n)
		for _, req := range limiter.calls() {
			require.Equal(t, "acct_9", req.Account)
		}
	})

	t.Run("EndpointAndObject", func(t *testing.T) {
		t.Parallel()
		limiter := &countingLimiter{}
		bundle := setupStripeClient(t, stripeLike, func(o *Options) { o.Limiter = limiter })
		call := Call{Account: "acct_9", IdempotencyScope: "s"}
		_, err := bundle.client.CreateProduct(ctx, call, ProductParams{ID: "evt_1", Name: "n"})
		require.NoError(t, err)
		_, err = bundle.client.CreatePrice(ctx, call, PriceParams{Product: "evt_1", Currency: "aud", UnitAmount: 1})
		require.NoError(t, err)
		_, err = bundle.client.UpdatePrice(ctx, call, "price_1", PriceParams{Nickname: "n"})
		require.NoError(t, err)
		_, err = bundle.client.ArchiveProduct(ctx, call, "evt_1")
		require.NoError(t, err)
		_, err = bundle.client.GetProduct(ctx, call, "evt_1")
		require.NoError(t, err)
		_, err = bundle.client.FindPriceByLookupKey(ctx, call, "k")
		require.NoError(t, err)
		require.Equal(t, []Request{
			{Account: "acct_9", Endpoint: "POST /v1/products", Object: "evt_1"},
			{Account: "acct_9", Endpoint: "POST /v1/prices"},
			{Account: "acct_9", Endpoint: "POST /v1/prices/{id}", Object: "price_1"},
			{Account: "acct_9", Endpoint: "POST /v1/products/{id}", Object: "evt_1"},
			{Account: "acct_9", Endpoint: "GET /v1/products/{id}"},
			{Account: "acct_9", Endpoint: "GET /v1/prices"},
		}, limiter.calls(), "Stripe limits each method and route template on its own")
	})

	t.Run("EveryListPage", func(t *testing.T) {
		t.Parallel()
		limiter := &countingLimiter{}
		bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Form.Get("starting_after") == "" {
				stripeWriteJSON(w, 200, `{"object":"list","url":"/v1/prices","has_more":true,"data":[`+stripePriceJSON("price_a")+`]}`)
				return
			}
			stripeWriteJSON(w, 200, `{"object":"list","url":"/v1/prices","has_more":false,"data":[`+stripePriceJSON("price_b")+`]}`)
		}, func(o *Options) { o.Limiter = limiter })
		var n int
		require.NoError(t, bundle.client.ListPrices(ctx, Call{}, "", func(*Price) error { n++; return nil }))
		require.Equal(t, 2, n)
		require.Equal(t, []Request{{Endpoint: "GET /v1/prices"}, {Endpoint: "GET /v1/prices"}}, limiter.calls())
	})

	t.Run("RefusalSendsNothing", func(t *testing.T) {
		t.Parallel()
		limiter := &countingLimiter{err: errors.New("limiter store down")}
		bundle := setupStripeClient(t, stripeLike, func(o *Options) { o.Limiter = limiter })
		_, err := bundle.client.CreateProduct(ctx, Call{}, stripeTestProduct)
		var se *Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, ClassRetryable, se.Class)
		require.Contains(t, se.Message, "limiter store down")
		require.Empty(t, bundle.recorded())
	})

	t.Run("CanceledWhileWaiting", func(t *testing.T) {
		t.Parallel()
		bundle := setupStripeClient(t, stripeLike, func(o *Options) { o.Limiter = &oneThenBlockLimiter{} })
		_, err := bundle.client.GetPrice(ctx, Call{}, "price_1")
		require.NoError(t, err)
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err = bundle.client.GetPrice(cctx, Call{}, "price_1")
		require.ErrorIs(t, err, context.Canceled)
		require.Len(t, bundle.recorded(), 1)
	})
}

// oneThenBlockLimiter admits its first request, then holds every later one
// until its context ends, as a limiter whose next slot is far away does.
type oneThenBlockLimiter struct{ calls atomic.Int32 }

func (l *oneThenBlockLimiter) Wait(ctx context.Context, _ Request) error {
	if l.calls.Add(1) == 1 {
		return nil
	}
	<-ctx.Done()
	return fmt.Errorf("rate limit: %w", ctx.Err())
}

func TestStripeClient_Observer(t *testing.T) {
	t.Parallel()
	type observation struct {
		op     string
		status int
	}
	var (
		mu  sync.Mutex
		got []observation
	)
	bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "missing") {
			stripeWriteJSON(w, 404, stripeErrorJSON("invalid_request_error", "resource_missing", "No such price"))
			return
		}
		stripeLike(w, r)
	}, func(o *Options) {
		o.Observer = func(op string, status int, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			require.GreaterOrEqual(t, d, time.Duration(0))
			got = append(got, observation{op, status})
		}
	})
	ctx := context.Background()
	_, err := bundle.client.CreateProduct(ctx, Call{}, stripeTestProduct)
	require.NoError(t, err)
	_, err = bundle.client.GetPrice(ctx, Call{}, "missing")
	require.True(t, IsClass(err, ClassNotFound), "%v", err)
	bundle.server.Close()
	_, err = bundle.client.ArchivePrice(ctx, Call{}, "price_1")
	require.True(t, IsClass(err, ClassRetryable), "%v", err)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []observation{{"create_product", 200}, {"get_price", 404}, {"archive_price", 0}}, got)
}

func TestScrub(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Invalid API Key provided: sk_test_********************Qz7W": "Invalid API Key provided: [redacted]",
		"Authorization was 'Bearer " + stripeTestKey + "'.":          "Authorization was 'Bearer [redacted]'.",
		"keys rk_live_abc123 and pk_test_Z9, not sk_other_x":         "keys [redacted] and [redacted], not sk_other_x",
		"no secrets here: prod_123 acct_1AbC":                        "no secrets here: prod_123 acct_1AbC",
	} {
		require.Equal(t, want, scrub(stripeTestKey, in), in)
	}
	require.Equal(t, "key=[redacted]!", scrub("emulator-key", "key=emulator-key!"))
	require.Equal(t, "unchanged", scrub("", "unchanged"))
}

func TestStripeClient_ScrubsSecrets(t *testing.T) {
	t.Parallel()
	// Stripe's own 401 shows a masked key; stripe-mock echoes the whole
	// Authorization header. This server does both.
	bundle := setupStripeClient(t, func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		key := strings.TrimPrefix(auth, "Bearer ")
		masked := key[:8] + strings.Repeat("*", len(key)-12) + key[len(key)-4:]
		stripeWriteJSON(w, 401, stripeErrorJSON("invalid_request_error", "",
			fmt.Sprintf("Invalid API Key provided: %s. Authorization was '%s'.", masked, auth)))
	})
	_, err := bundle.client.CreateProduct(context.Background(), Call{Account: "acct_1"}, stripeTestProduct)
	var se *Error
	require.ErrorAs(t, err, &se)
	require.Equal(t, ClassAuth, se.Class)
	for _, text := range []string{err.Error(), se.Message, fmt.Sprintf("%+v", se), bundle.logs.String()} {
		require.NotContains(t, text, stripeTestKey)
		require.NotContains(t, text, stripeTestKey[len(stripeTestKey)-4:], "not even the masked key's tail")
		require.NotContains(t, text, "SECRET")
	}
	require.Contains(t, se.Message, "Invalid API Key provided: [redacted]. Authorization was 'Bearer [redacted]'.")
	require.Contains(t, bundle.logs.String(), "stripe request", "the log was written")
	require.Contains(t, bundle.logs.String(), "[redacted]", "stripe-go's own error log line was scrubbed, not dropped")
}
