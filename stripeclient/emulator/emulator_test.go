package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

const testKey = "sk_test_emulatorKey123"

type testBundle struct {
	emu   *Emulator
	srv   *httptest.Server
	sc    *client.API
	clock *testClock
}

// testClock is a settable clock; it starts at a fixed instant.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	clock := &testClock{now: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}
	emu := New(Options{SecretKey: testKey, Clock: clock.Now, Seed: 42})
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &testBundle{emu: emu, srv: srv, sc: newTestStripe(srv.URL, testKey), clock: clock}
}

// newTestStripe is the real stripe-go client pointed at url, with its own
// retries off so every fault reaches the test.
func newTestStripe(url, key string) *client.API {
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(url),
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return client.New(key, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
}

func requireStripeError(t *testing.T, err error, status int, code string) *stripe.Error {
	t.Helper()
	require.Error(t, err)
	var se *stripe.Error
	require.True(t, errors.As(err, &se), "want *stripe.Error, got %T: %v", err, err)
	require.Equal(t, status, se.HTTPStatusCode, se.Msg)
	require.Equal(t, stripe.ErrorCode(code), se.Code, se.Msg)
	require.NotEmpty(t, se.RequestID)
	return se
}

func productParams(account, name string) *stripe.ProductParams {
	p := &stripe.ProductParams{Name: stripe.String(name)}
	if account != "" {
		p.SetStripeAccount(account)
	}
	return p
}

func (b *testBundle) createProduct(t *testing.T, account, id, name string) *stripe.Product {
	t.Helper()
	p := productParams(account, name)
	if id != "" {
		p.ID = stripe.String(id)
	}
	prod, err := b.sc.Products.New(p)
	require.NoError(t, err)
	return prod
}

func (b *testBundle) createPrice(t *testing.T, account, product string, amount int64, lookupKey string) *stripe.Price {
	t.Helper()
	p := &stripe.PriceParams{
		Product:    stripe.String(product),
		Currency:   stripe.String("aud"),
		UnitAmount: stripe.Int64(amount),
	}
	if lookupKey != "" {
		p.LookupKey = stripe.String(lookupKey)
		p.TransferLookupKey = stripe.Bool(true)
	}
	if account != "" {
		p.SetStripeAccount(account)
	}
	price, err := b.sc.Prices.New(p)
	require.NoError(t, err)
	return price
}

// rawRequest sends a request by hand, for what stripe-go cannot send.
func (b *testBundle) rawRequest(t *testing.T, method, path, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+testKey)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(out)
}

func TestEmulator_Products(t *testing.T) {
	t.Parallel()

	t.Run("CreateGeneratesStripeShapedID", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := productParams("acct_1", "Grand Installation")
		p.Description = stripe.String("A night to remember")
		p.Images = []*string{stripe.String("https://img.example/a.png")}
		p.AddMetadata("event_id", "e1")
		prod, err := b.sc.Products.New(p)
		require.NoError(t, err)
		require.Regexp(t, `^prod_[A-Za-z0-9]{14}$`, prod.ID)
		require.Equal(t, "Grand Installation", prod.Name)
		require.Equal(t, "A night to remember", prod.Description)
		require.Equal(t, []string{"https://img.example/a.png"}, prod.Images)
		require.True(t, prod.Active)
		require.Equal(t, map[string]string{"event_id": "e1"}, prod.Metadata)
		require.Equal(t, b.clock.Now().Unix(), prod.Created)
		require.False(t, prod.Livemode)

		got := b.emu.Products("acct_1")
		require.Len(t, got, 1)
		require.Equal(t, prod.ID, got[0].ID)
		require.Empty(t, b.emu.Products(""), "the platform account must stay empty")
		require.Equal(t, []string{"acct_1"}, slices.Sorted(maps.Keys(b.emu.State().Accounts)))
	})

	t.Run("CustomIDTakenIsResourceAlreadyExists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		prod := b.createProduct(t, "acct_1", "evt_123", "First")
		require.Equal(t, "evt_123", prod.ID)

		p := productParams("acct_1", "Second")
		p.ID = stripe.String("evt_123")
		_, err := b.sc.Products.New(p)
		se := requireStripeError(t, err, http.StatusBadRequest, "resource_already_exists")
		require.Equal(t, "id", se.Param)
		require.Equal(t, "First", b.emu.Products("acct_1")[0].Name, "a failed create must not overwrite")
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		cases := []struct {
			name   string
			params *stripe.ProductParams
			code   string
			param  string
		}{
			{"MissingName", &stripe.ProductParams{}, "parameter_missing", "name"},
			{"EmptyName", &stripe.ProductParams{Name: stripe.String("")}, "parameter_invalid_empty", "name"},
			{"BlankName", &stripe.ProductParams{Name: stripe.String("   ")}, "parameter_invalid_string_blank", "name"},
			{"EmptyDescription", &stripe.ProductParams{Name: stripe.String("n"), Description: stripe.String("")},
				"parameter_invalid_empty", "description"},
			{"ImageNotURL", &stripe.ProductParams{Name: stripe.String("n"),
				Images: []*string{stripe.String("https://ok.example/x.png"), stripe.String("not a url")}}, "url_invalid", "images[1]"},
			{"UnknownParameter", &stripe.ProductParams{Name: stripe.String("n"), Shippable: stripe.Bool(true)},
				"parameter_unknown", "shippable"},
		}
		for _, tc := range cases {
			_, err := b.sc.Products.New(tc.params)
			se := requireStripeError(t, err, http.StatusBadRequest, tc.code)
			require.Equal(t, tc.param, se.Param, tc.name)
			require.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type, tc.name)
		}

		tooMany := &stripe.ProductParams{Name: stripe.String("n")}
		for i := range 9 {
			tooMany.Images = append(tooMany.Images, stripe.String(fmt.Sprintf("https://img.example/%d.png", i)))
		}
		_, err := b.sc.Products.New(tooMany)
		requireStripeError(t, err, http.StatusBadRequest, "")
		require.Empty(t, b.emu.Products(""))
		require.Equal(t, len(cases)+1, b.emu.WriteCount(), "rejected writes still count as attempted writes")
	})

	t.Run("MetadataLimits", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		p := productParams("", "n")
		for i := range 51 {
			p.AddMetadata(fmt.Sprintf("k%d", i), "v")
		}
		_, err := b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusBadRequest, "")

		p = productParams("", "n")
		p.AddMetadata(strings.Repeat("k", 41), "v")
		_, err = b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusBadRequest, "")

		p = productParams("", "n")
		p.AddMetadata("k", strings.Repeat("x", 501))
		_, err = b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusBadRequest, "")

		// 500 characters of multi-byte runes is within the limit.
		p = productParams("", "n")
		p.AddMetadata(strings.Repeat("k", 40), strings.Repeat("é", 500))
		_, err = b.sc.Products.New(p)
		require.NoError(t, err)
	})

	t.Run("UpdateMergesAndDeletesMetadataAndClears", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := productParams("acct_1", "Old")
		p.Description = stripe.String("desc")
		p.Images = []*string{stripe.String("https://img.example/a.png")}
		p.AddMetadata("keep", "1")
		p.AddMetadata("drop", "2")
		p.AddMetadata("change", "3")
		prod, err := b.sc.Products.New(p)
		require.NoError(t, err)
		b.clock.Advance(time.Minute)

		u := productParams("acct_1", "New")
		u.Description = stripe.String("") // unsets on update
		u.Images = []*string{}            // images= clears
		u.Active = stripe.Bool(false)
		u.AddMetadata("drop", "")
		u.AddMetadata("change", "33")
		u.AddMetadata("add", "4")
		got, err := b.sc.Products.Update(prod.ID, u)
		require.NoError(t, err)
		require.Equal(t, "New", got.Name)
		require.Empty(t, got.Description)
		require.Empty(t, got.Images)
		require.False(t, got.Active)
		require.Equal(t, map[string]string{"keep": "1", "change": "33", "add": "4"}, got.Metadata)
		require.Equal(t, b.clock.Now().Unix(), got.Updated)
		require.Equal(t, prod.Created, got.Created)

		again, err := b.sc.Products.Get(prod.ID, &stripe.ProductParams{Params: stripe.Params{StripeAccount: stripe.String("acct_1")}})
		require.NoError(t, err)
		require.Equal(t, got.Metadata, again.Metadata)
		require.False(t, again.Active)
	})

	t.Run("UpdateAndGetMissingIsResourceMissing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.sc.Products.Update("prod_nope", productParams("", "x"))
		se := requireStripeError(t, err, http.StatusNotFound, "resource_missing")
		require.Equal(t, "id", se.Param)
		require.Equal(t, "No such product: 'prod_nope'", se.Msg)

		_, err = b.sc.Products.Get("prod_nope", nil)
		requireStripeError(t, err, http.StatusNotFound, "resource_missing")
	})

	t.Run("ListPagesNewestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		var ids []string
		for i := range 5 {
			prod := b.createProduct(t, "acct_1", "", fmt.Sprintf("p%d", i))
			ids = append(ids, prod.ID)
		}
		_, err := b.sc.Products.Update(ids[1], &stripe.ProductParams{
			Active: stripe.Bool(false), Params: stripe.Params{StripeAccount: stripe.String("acct_1")}})
		require.NoError(t, err)
		b.emu.ResetRequests()

		lp := &stripe.ProductListParams{}
		lp.Limit = stripe.Int64(2)
		lp.SetStripeAccount("acct_1")
		var listed []string
		it := b.sc.Products.List(lp)
		for it.Next() {
			listed = append(listed, it.Product().ID)
		}
		require.NoError(t, it.Err())
		require.Equal(t, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}, listed)
		require.Len(t, b.emu.Requests(), 3, "5 products in pages of 2")
		require.Zero(t, b.emu.WriteCount(), "lists are not writes")

		lp = &stripe.ProductListParams{}
		lp.StartingAfter = stripe.String("prod_missing")
		lp.SetStripeAccount("acct_1")
		it = b.sc.Products.List(lp)
		require.False(t, it.Next())
		requireStripeError(t, it.Err(), http.StatusBadRequest, "resource_missing")
	})
}

func TestEmulator_Prices(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetAndList", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		prod := b.createProduct(t, "acct_1", "evt_1", "Event")
		other := b.createProduct(t, "acct_1", "evt_2", "Other")

		pp := &stripe.PriceParams{
			Product:    stripe.String(prod.ID),
			Currency:   stripe.String("aud"),
			UnitAmount: stripe.Int64(12345),
			Nickname:   stripe.String("Adult"),
		}
		pp.AddMetadata("ticket_id", "t1")
		pp.SetStripeAccount("acct_1")
		price, err := b.sc.Prices.New(pp)
		require.NoError(t, err)
		require.Regexp(t, `^price_[A-Za-z0-9]{14}$`, price.ID)
		require.Equal(t, prod.ID, price.Product.ID)
		require.Equal(t, stripe.Currency("aud"), price.Currency)
		require.Equal(t, int64(12345), price.UnitAmount)
		require.InDelta(t, 12345, price.UnitAmountDecimal, 0)
		require.Equal(t, "Adult", price.Nickname)
		require.Equal(t, stripe.PriceTypeOneTime, price.Type)
		require.True(t, price.Active)
		require.Equal(t, map[string]string{"ticket_id": "t1"}, price.Metadata)

		b.createPrice(t, "acct_1", other.ID, 500, "")

		gp := &stripe.PriceParams{}
		gp.SetStripeAccount("acct_1")
		got, err := b.sc.Prices.Get(price.ID, gp)
		require.NoError(t, err)
		require.Equal(t, price.ID, got.ID)

		lp := &stripe.PriceListParams{Product: stripe.String(prod.ID)}
		lp.SetStripeAccount("acct_1")
		it := b.sc.Prices.List(lp)
		require.True(t, it.Next())
		require.Equal(t, price.ID, it.Price().ID)
		require.False(t, it.Next())
		require.NoError(t, it.Err())
		require.Len(t, b.emu.Prices("acct_1"), 2)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		prod := b.createProduct(t, "", "evt_1", "Event")

		_, err := b.sc.Prices.New(&stripe.PriceParams{
			Product: stripe.String("prod_missing"), Currency: stripe.String("aud"), UnitAmount: stripe.Int64(1)})
		se := requireStripeError(t, err, http.StatusBadRequest, "resource_missing")
		require.Equal(t, "product", se.Param)

		_, err = b.sc.Prices.New(&stripe.PriceParams{Product: stripe.String(prod.ID), UnitAmount: stripe.Int64(1)})
		se = requireStripeError(t, err, http.StatusBadRequest, "parameter_missing")
		require.Equal(t, "currency", se.Param)

		_, err = b.sc.Prices.New(&stripe.PriceParams{
			Product: stripe.String(prod.ID), Currency: stripe.String("aud"), UnitAmount: stripe.Int64(-1)})
		se = requireStripeError(t, err, http.StatusBadRequest, "")
		require.Equal(t, "unit_amount", se.Param)

		_, err = b.sc.Prices.New(&stripe.PriceParams{Product: stripe.String(prod.ID), Currency: stripe.String("aud"),
			UnitAmount: stripe.Int64(1), LookupKey: stripe.String(strings.Repeat("k", 201))})
		se = requireStripeError(t, err, http.StatusBadRequest, "")
		require.Equal(t, "lookup_key", se.Param)
		require.Empty(t, b.emu.Prices(""))

		price := b.createPrice(t, "", prod.ID, 100, "")
		_, err = b.sc.Prices.Update(price.ID, &stripe.PriceParams{UnitAmount: stripe.Int64(200)})
		se = requireStripeError(t, err, http.StatusBadRequest, "parameter_unknown")
		require.Equal(t, "unit_amount", se.Param)
		require.Equal(t, "Received unknown parameter: unit_amount", se.Msg)
		require.Equal(t, int64(100), b.emu.Prices("")[0].UnitAmount)

		_, err = b.sc.Prices.Update("price_missing", &stripe.PriceParams{Nickname: stripe.String("x")})
		requireStripeError(t, err, http.StatusNotFound, "resource_missing")
	})

	t.Run("LookupKeyTransfer", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		prod := b.createProduct(t, "acct_1", "evt_1", "Event")
		first := b.createPrice(t, "acct_1", prod.ID, 1000, "ticket_t1")
		require.Equal(t, "ticket_t1", first.LookupKey)

		// Without transfer_lookup_key a held key is refused.
		pp := &stripe.PriceParams{Product: stripe.String(prod.ID), Currency: stripe.String("aud"),
			UnitAmount: stripe.Int64(2000), LookupKey: stripe.String("ticket_t1")}
		pp.SetStripeAccount("acct_1")
		_, err := b.sc.Prices.New(pp)
		se := requireStripeError(t, err, http.StatusBadRequest, "")
		require.Contains(t, se.Msg, first.ID)
		require.Len(t, b.emu.Prices("acct_1"), 1)

		second := b.createPrice(t, "acct_1", prod.ID, 2000, "ticket_t1")
		require.Equal(t, "ticket_t1", second.LookupKey)

		lp := &stripe.PriceListParams{LookupKeys: []*string{stripe.String("ticket_t1")}}
		lp.SetStripeAccount("acct_1")
		it := b.sc.Prices.List(lp)
		require.True(t, it.Next())
		require.Equal(t, second.ID, it.Price().ID)
		require.False(t, it.Next())

		byID := map[string]stripeclient.Price{}
		for _, p := range b.emu.Prices("acct_1") {
			byID[p.ID] = p
		}
		require.Empty(t, byID[first.ID].LookupKey, "the old price loses the key")
		require.Equal(t, "ticket_t1", byID[second.ID].LookupKey)

		// The key can move back by update, and be unset.
		up := &stripe.PriceParams{LookupKey: stripe.String("ticket_t1"), TransferLookupKey: stripe.Bool(true)}
		up.SetStripeAccount("acct_1")
		moved, err := b.sc.Prices.Update(first.ID, up)
		require.NoError(t, err)
		require.Equal(t, "ticket_t1", moved.LookupKey)
		up = &stripe.PriceParams{LookupKey: stripe.String("")}
		up.SetStripeAccount("acct_1")
		unset, err := b.sc.Prices.Update(first.ID, up)
		require.NoError(t, err)
		require.Empty(t, unset.LookupKey)
		it = b.sc.Prices.List(lp)
		require.False(t, it.Next(), "no price holds the key any more")
		require.NoError(t, it.Err())
	})

	t.Run("UpdateMergesMetadataAndArchives", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		prod := b.createProduct(t, "", "evt_1", "Event")
		pp := &stripe.PriceParams{Product: stripe.String(prod.ID), Currency: stripe.String("aud"), UnitAmount: stripe.Int64(5)}
		pp.AddMetadata("a", "1")
		pp.AddMetadata("b", "2")
		price, err := b.sc.Prices.New(pp)
		require.NoError(t, err)

		up := &stripe.PriceParams{Nickname: stripe.String("Child"), Active: stripe.Bool(false)}
		up.AddMetadata("a", "")
		up.AddMetadata("c", "3")
		got, err := b.sc.Prices.Update(price.ID, up)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"b": "2", "c": "3"}, got.Metadata)
		require.Equal(t, "Child", got.Nickname)
		require.False(t, got.Active)
		require.False(t, b.emu.Prices("")[0].Active, "the price is archived")
	})
}

func TestEmulator_AccountScoping(t *testing.T) {
	t.Parallel()
	b := setup(t)

	a := b.createProduct(t, "acct_A", "evt_same", "On A")
	bb := b.createProduct(t, "acct_B", "evt_same", "On B")
	require.Equal(t, a.ID, bb.ID, "the same custom id is free on each account")
	onlyA := b.createProduct(t, "acct_A", "", "Only on A")

	gp := &stripe.ProductParams{}
	gp.SetStripeAccount("acct_B")
	_, err := b.sc.Products.Get(onlyA.ID, gp)
	requireStripeError(t, err, http.StatusNotFound, "resource_missing")

	gp = &stripe.ProductParams{}
	gp.SetStripeAccount("acct_B")
	got, err := b.sc.Products.Get("evt_same", gp)
	require.NoError(t, err)
	require.Equal(t, "On B", got.Name)

	// A price on B cannot use A's product.
	pp := &stripe.PriceParams{Product: stripe.String(onlyA.ID), Currency: stripe.String("aud"), UnitAmount: stripe.Int64(1)}
	pp.SetStripeAccount("acct_B")
	_, err = b.sc.Prices.New(pp)
	requireStripeError(t, err, http.StatusBadRequest, "resource_missing")

	require.Len(t, b.emu.Products("acct_A"), 2)
	require.Len(t, b.emu.Products("acct_B"), 1)
	require.Empty(t, b.emu.Products(""))
	require.Equal(t, []string{"acct_A", "acct_B"}, slices.Sorted(maps.Keys(b.emu.State().Accounts)))
	for _, r := range b.emu.Requests() {
		require.NotEmpty(t, r.Account)
	}
}

// TestEmulator_Idempotency follows https://docs.stripe.com/api/idempotent_requests:
// "Stripe saves the status code and body of the first request made with a
// given idempotency key after endpoint execution begins. Retries with the
// same key return the saved response, including 500 errors"; results are
// saved only once the endpoint began executing, so a request that fails
// validation or conflicts with a concurrent one saves nothing; a key reused
// with other parameters is an error.
func TestEmulator_Idempotency(t *testing.T) {
	t.Parallel()

	t.Run("Stored500IsReplayed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultError500Stored, Method: "POST", PathPrefix: "/v1/products", Times: 1})
		newParams := func(key string) *stripe.ProductParams {
			p := productParams("acct_1", "Event")
			p.ID = stripe.String("evt_1")
			p.SetIdempotencyKey(key)
			return p
		}
		_, err := b.sc.Products.New(newParams("k-500"))
		se := requireStripeError(t, err, http.StatusInternalServerError, "")
		require.Equal(t, stripe.ErrorTypeAPI, se.Type)
		require.Empty(t, se.LastResponse.Header.Get("Idempotent-Replayed"), "the first 500 is an answer, not a replay")
		require.Empty(t, b.emu.Products("acct_1"), "the failed request wrote nothing")

		// The fault is used up, yet every retry with the key gets the 500.
		for range 3 {
			_, err = b.sc.Products.New(newParams("k-500"))
			se = requireStripeError(t, err, http.StatusInternalServerError, "")
			require.Equal(t, "true", se.LastResponse.Header.Get("Idempotent-Replayed"))
		}
		require.Empty(t, b.emu.Products("acct_1"))

		// Only a new key runs the request again.
		prod, err := b.sc.Products.New(newParams("k-500-retry"))
		require.NoError(t, err)
		require.Equal(t, "evt_1", prod.ID)
		require.Equal(t, 2, b.emu.WriteCount(), "the stored 500 reached the endpoint; replays did not")
		reqs := b.emu.Requests()
		require.Equal(t, "error_500_stored", reqs[0].Fault)
		require.True(t, reqs[1].Replayed)
	})

	t.Run("Stored500AfterTheWriteApplied", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultError500Stored, Method: "POST", PathPrefix: "/v1/products", Times: 1, Applied: true})
		p := productParams("acct_1", "Event")
		p.ID = stripe.String("evt_1")
		p.SetIdempotencyKey("k-applied")
		_, err := b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusInternalServerError, "")
		require.Len(t, b.emu.Products("acct_1"), 1, "a 500 leaves the outcome unknown: here the write was applied")

		p.SetIdempotencyKey("k-applied-retry")
		_, err = b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusBadRequest, "resource_already_exists")
	})

	t.Run("500BeforeExecutionIsNotStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultError500, Method: "POST", Times: 1})
		p := productParams("", "Event")
		p.SetIdempotencyKey("k-front")
		_, err := b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusInternalServerError, "")
		got, err := b.sc.Products.New(p)
		require.NoError(t, err)
		require.Empty(t, got.LastResponse.Header.Get("Idempotent-Replayed"))
	})

	t.Run("ValidationFailureIsNotStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := &stripe.ProductParams{}
		p.SetIdempotencyKey("k-invalid")
		_, err := b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusBadRequest, "parameter_missing")

		// Nothing was saved, so the key is free for other parameters.
		p = productParams("", "Now valid")
		p.SetIdempotencyKey("k-invalid")
		got, err := b.sc.Products.New(p)
		require.NoError(t, err)
		require.Equal(t, "Now valid", got.Name)
		require.Empty(t, got.LastResponse.Header.Get("Idempotent-Replayed"))
	})

	t.Run("RateLimitedIsNotStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.SetRateLimit(RateLimit{Endpoint: 1})
		b.createProduct(t, "", "", "Takes the second's only slot")
		p := productParams("", "Event")
		p.SetIdempotencyKey("k-429")
		_, err := b.sc.Products.New(p)
		requireStripeError(t, err, http.StatusTooManyRequests, "rate_limit")

		b.clock.Advance(time.Second)
		got, err := b.sc.Products.New(p)
		require.NoError(t, err, "the 429 was not saved under the key")
		require.Empty(t, got.LastResponse.Header.Get("Idempotent-Replayed"))
	})

	t.Run("ErrorRaisedByTheEndpointIsStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := productParams("", "Name")
		p.SetIdempotencyKey("k-missing")
		_, err := b.sc.Products.Update("prod_missing", p)
		requireStripeError(t, err, http.StatusNotFound, "resource_missing")
		b.createProduct(t, "", "prod_missing", "Created since")
		_, err = b.sc.Products.Update("prod_missing", p)
		se := requireStripeError(t, err, http.StatusNotFound, "resource_missing")
		require.Equal(t, "true", se.LastResponse.Header.Get("Idempotent-Replayed"), "the endpoint had looked the object up")
	})

	t.Run("SameKeyReplays", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		newParams := func() *stripe.ProductParams {
			p := productParams("acct_1", "Event")
			p.SetIdempotencyKey("event:1:v1:create")
			return p
		}
		first, err := b.sc.Products.New(newParams())
		require.NoError(t, err)
		second, err := b.sc.Products.New(newParams())
		require.NoError(t, err)
		require.Equal(t, first.ID, second.ID)
		require.Equal(t, "true", second.LastResponse.Header.Get("Idempotent-Replayed"))
		require.Len(t, b.emu.Products("acct_1"), 1)
		require.Equal(t, 1, b.emu.WriteCount())

		reqs := b.emu.Requests()
		require.Len(t, reqs, 2)
		require.False(t, reqs[0].Replayed)
		require.True(t, reqs[1].Replayed)
		require.Equal(t, first.ID, reqs[1].ObjectID)
		require.Equal(t, "event:1:v1:create", reqs[1].IdempotencyKey)

		// The key is scoped to the account: on another account it runs.
		p := newParams()
		p.SetStripeAccount("acct_2")
		_, err = b.sc.Products.New(p)
		require.NoError(t, err)
		require.Equal(t, 2, b.emu.WriteCount())
	})

	t.Run("ErrorsAreReplayedToo", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createProduct(t, "", "evt_1", "Taken")
		newParams := func() *stripe.ProductParams {
			p := productParams("", "Again")
			p.ID = stripe.String("evt_1")
			p.SetIdempotencyKey("k-err")
			return p
		}
		_, err := b.sc.Products.New(newParams())
		requireStripeError(t, err, http.StatusBadRequest, "resource_already_exists")
		_, err = b.sc.Products.New(newParams())
		se := requireStripeError(t, err, http.StatusBadRequest, "resource_already_exists")
		require.Equal(t, "true", se.LastResponse.Header.Get("Idempotent-Replayed"))
		require.Equal(t, 2, b.emu.WriteCount(), "one plain create, one failed create; the replay is not a write")
	})

	t.Run("DifferentParamsIsIdempotencyError", func(t *testing.T) {
		t.Parallel()
		// "The idempotency layer compares incoming parameters to those of the
		// original request and errors if they're not the same."
		b := setup(t)
		p := productParams("", "A")
		p.SetIdempotencyKey("k1")
		_, err := b.sc.Products.New(p)
		require.NoError(t, err)

		p = productParams("", "B")
		p.SetIdempotencyKey("k1")
		_, err = b.sc.Products.New(p)
		se := requireStripeError(t, err, http.StatusBadRequest, "")
		require.Equal(t, stripe.ErrorTypeIdempotency, se.Type)
		var ie *stripe.IdempotencyError
		require.ErrorAs(t, se.Err, &ie)
		require.Len(t, b.emu.Products(""), 1)
		require.Equal(t, 1, b.emu.WriteCount())
	})

	t.Run("KeyInFlightIsConflict", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultLatency, Method: "POST", Times: 1, Latency: 5 * time.Second})

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			p := productParams("", "Slow")
			p.SetIdempotencyKey("k-slow")
			p.Context = ctx
			_, err := b.sc.Products.New(p)
			done <- err
		}()
		require.Eventually(t, func() bool { return b.emu.idempotencyInFlight("", "k-slow") },
			5*time.Second, 5*time.Millisecond)

		p := productParams("", "Slow")
		p.SetIdempotencyKey("k-slow")
		_, err := b.sc.Products.New(p)
		se := requireStripeError(t, err, http.StatusConflict, "idempotency_key_in_use")
		require.Equal(t, stripe.ErrorTypeIdempotency, se.Type)

		// The client giving up frees the key: the request never ran.
		cancel()
		require.Error(t, <-done)
		require.Eventually(t, func() bool { return !b.emu.idempotencyInFlight("", "k-slow") },
			5*time.Second, 5*time.Millisecond)
		_, err = b.sc.Products.New(p)
		require.NoError(t, err)
		require.Len(t, b.emu.Products(""), 1)
		statuses := map[int]int{}
		for _, r := range b.emu.Requests() {
			statuses[r.Status]++
		}
		require.Equal(t, map[int]int{409: 1, 499: 1, 200: 1}, statuses)
	})
}

// idempotencyInFlight reports whether a request holding the key is running.
func (e *Emulator) idempotencyInFlight(account, key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	entry := e.idem[idemKey{account: account, key: key}]
	return entry != nil && !entry.done
}

func TestEmulator_Faults(t *testing.T) {
	t.Parallel()

	t.Run("ResponseLostThenRetryReplays", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Warm a keep-alive connection first: on a reused connection Go's
		// transport would silently resend a keyed POST whose connection
		// closed without a byte, which must not hide the fault.
		_, err := b.sc.Products.Get("prod_warmup", nil)
		requireStripeError(t, err, http.StatusNotFound, "resource_missing")

		b.emu.AddFault(Fault{Kind: FaultResponseLost, Method: "POST", PathPrefix: "/v1/products", Times: 1})
		newParams := func() *stripe.ProductParams {
			p := productParams("acct_1", "Lost")
			p.ID = stripe.String("evt_lost")
			p.SetIdempotencyKey("event:lost:v1")
			return p
		}
		_, err = b.sc.Products.New(newParams())
		require.Error(t, err)
		var se *stripe.Error
		require.False(t, errors.As(err, &se), "a lost response is a network error, not a Stripe answer: %v", err)
		require.Len(t, b.emu.Products("acct_1"), 1, "the write happened")

		prod, err := b.sc.Products.New(newParams())
		require.NoError(t, err)
		require.Equal(t, "evt_lost", prod.ID)
		require.Len(t, b.emu.Products("acct_1"), 1)
		require.Equal(t, 1, b.emu.WriteCount())
		require.Equal(t, 1, b.emu.FaultsInjected()[FaultResponseLost])

		reqs := b.emu.Requests()
		last := reqs[len(reqs)-1]
		require.True(t, last.Replayed)
		require.Equal(t, "response_lost", reqs[len(reqs)-2].Fault)
		require.Equal(t, http.StatusOK, reqs[len(reqs)-2].Status)
	})

	t.Run("Error500WritesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultError500, Times: 1})
		p := productParams("", "X")
		p.SetIdempotencyKey("k500")
		_, err := b.sc.Products.New(p)
		se := requireStripeError(t, err, http.StatusInternalServerError, "")
		require.Equal(t, stripe.ErrorTypeAPI, se.Type)
		require.Empty(t, b.emu.Products(""))
		require.Zero(t, b.emu.WriteCount())

		// The key was not used up, and the fault was.
		_, err = b.sc.Products.New(p)
		require.NoError(t, err)
		require.Equal(t, map[FaultKind]int{FaultError500: 1}, b.emu.FaultsInjected())
	})

	t.Run("RateLimitFault", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultRateLimit, Account: "acct_slow", Times: 2, RetryAfter: 3 * time.Second})

		_, err := b.sc.Products.New(productParams("acct_other", "not matched"))
		require.NoError(t, err)

		_, err = b.sc.Products.New(productParams("acct_slow", "X"))
		se := requireStripeError(t, err, http.StatusTooManyRequests, "rate_limit")
		require.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type)
		require.Equal(t, "3", se.LastResponse.Header.Get("Retry-After"))
		require.Empty(t, b.emu.Products("acct_slow"))
		require.Equal(t, 1, b.emu.WriteCount())
	})

	t.Run("LatencyRespectsCancellation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultLatency, Latency: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		p := productParams("", "X")
		p.Context = ctx
		start := time.Now()
		_, err := b.sc.Products.New(p)
		require.Error(t, err)
		require.Less(t, time.Since(start), 30*time.Second)
		require.Eventually(t, func() bool { return len(b.emu.Requests()) == 1 }, 5*time.Second, 5*time.Millisecond)
		require.Equal(t, 499, b.emu.Requests()[0].Status)
		require.Equal(t, "latency", b.emu.Requests()[0].Fault)
		require.Empty(t, b.emu.Products(""))
	})

	t.Run("ProbabilityIsSeeded", func(t *testing.T) {
		t.Parallel()
		run := func() []int {
			b := setup(t)
			b.emu.AddFault(Fault{Kind: FaultError500, Probability: 0.5})
			var statuses []int
			for range 30 {
				resp, _ := b.rawRequest(t, "GET", "/v1/products", "", nil)
				statuses = append(statuses, resp.StatusCode)
			}
			failed := 0
			for _, s := range statuses {
				if s == http.StatusInternalServerError {
					failed++
				}
			}
			require.Equal(t, failed, b.emu.FaultsInjected()[FaultError500])
			require.Greater(t, failed, 0)
			require.Less(t, failed, 30)
			return statuses
		}
		require.Equal(t, run(), run(), "the same seed injects the same faults")
	})

	t.Run("FaultsApplyInOrderAndClear", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.AddFault(Fault{Kind: FaultRateLimit, Method: "GET", Times: 1})
		b.emu.AddFault(Fault{Kind: FaultError500, Method: "GET"})
		resp, _ := b.rawRequest(t, "GET", "/v1/products", "", nil)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, "1", resp.Header.Get("Retry-After"))
		resp, _ = b.rawRequest(t, "GET", "/v1/products", "", nil)
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
		resp, _ = b.rawRequest(t, "GET", "/v1/products", "", nil)
		require.Equal(t, http.StatusInternalServerError, resp.StatusCode, "Times 0 applies until cleared")
		b.emu.ClearFaults()
		resp, _ = b.rawRequest(t, "GET", "/v1/products", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	})
}

func TestEmulator_Auth(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const wrongKey = "sk_test_WrongKeyPresented987"

	_, err := newTestStripe(b.srv.URL, wrongKey).Products.New(productParams("", "X"))
	se := requireStripeError(t, err, http.StatusUnauthorized, "")
	require.Equal(t, stripe.ErrorTypeInvalidRequest, se.Type)
	raw := string(se.LastResponse.RawJSON)
	// No piece of the key (six characters is longer than any common word
	// the key happens to contain) may come back.
	for i := 0; i+6 <= len(wrongKey); i++ {
		part := wrongKey[i : i+6]
		require.NotContains(t, se.Msg, part, "the message must not echo the presented key")
		require.NotContains(t, raw, part)
	}
	require.Empty(t, b.emu.Products(""))
	require.Zero(t, b.emu.WriteCount())

	resp, body := b.rawRequest(t, "GET", "/v1/products", "", http.Header{"Authorization": {""}})
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Contains(t, body, "did not provide an API key")

	req, err := http.NewRequestWithContext(t.Context(), "GET", b.srv.URL+"/v1/products", nil)
	require.NoError(t, err)
	req.SetBasicAuth(testKey, "")
	basic, err := b.srv.Client().Do(req)
	require.NoError(t, err)
	require.NoError(t, basic.Body.Close())
	require.Equal(t, http.StatusOK, basic.StatusCode)

	_, err = b.sc.Products.New(productParams("", "X"))
	require.NoError(t, err)
}

func TestEmulator_Routing(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, body := b.rawRequest(t, "GET", "/v1/customers", "", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	require.Contains(t, body, `"type": "invalid_request_error"`)
	require.Contains(t, body, "Unrecognized request URL (GET: /v1/customers)")
	require.Regexp(t, `^req_[A-Za-z0-9]{14}$`, resp.Header.Get("Request-Id"))

	// expand[] in either spelling is accepted and ignored.
	resp, body = b.rawRequest(t, "POST", "/v1/products", "name=X&expand[]=default_price&expand[0]=tax_code", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, `"object": "product"`)
	require.Contains(t, body, `"images": []`)
	require.Contains(t, body, `"metadata": {}`)

	resp, body = b.rawRequest(t, "POST", "/v1/products", "name=X&metadata[a][b]=c", nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body, "parameter_unknown")

	// Ids are path-unescaped.
	resp, _ = b.rawRequest(t, "POST", "/v1/products", "name=Y&id="+url.QueryEscape("evt a/b"), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	resp, body = b.rawRequest(t, "GET", "/v1/products/"+url.PathEscape("evt a/b"), "", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.Contains(t, body, `"id": "evt a/b"`)
}

// TestEmulator_lockTimeout follows https://docs.stripe.com/rate-limits
// ("Object lock timeouts") and https://docs.stripe.com/error-codes#lock-timeout:
// a write to an object another request holds is answered 429 lock_timeout,
// and nothing is stored under its Idempotency-Key.
func TestEmulator_lockTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	prod := b.createProduct(t, "acct_1", "evt_1", "Event")
	b.emu.AddFault(Fault{Kind: FaultLatency, Method: "POST", PathPrefix: "/v1/products/", Times: 1, Latency: time.Minute})

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		p := productParams("acct_1", "Slow writer")
		p.Context = ctx
		_, err := b.sc.Products.Update(prod.ID, p)
		done <- err
	}()
	require.Eventually(t, func() bool { return b.emu.FaultsInjected()[FaultLatency] == 1 }, 5*time.Second, 5*time.Millisecond)

	p := productParams("acct_1", "Fast writer")
	p.SetIdempotencyKey("k-locked")
	_, err := b.sc.Products.Update(prod.ID, p)
	se := requireStripeError(t, err, http.StatusTooManyRequests, "lock_timeout")
	require.Empty(t, se.LastResponse.Header.Get("Stripe-Rate-Limited-Reason"), "an object's lock is not a rate limit")

	// Reads and writes to other objects are not held up.
	_, err = b.sc.Products.Get(prod.ID, &stripe.ProductParams{Params: stripe.Params{StripeAccount: stripe.String("acct_1")}})
	require.NoError(t, err)
	b.createProduct(t, "acct_1", "evt_2", "Other")

	cancel()
	require.Error(t, <-done)
	// The server notices the cancelled writer a moment after its client.
	require.Eventually(t, func() bool {
		for _, r := range b.emu.Requests() {
			if r.Status == 499 {
				return true
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond)

	overlaps := b.emu.Overlaps()
	require.Len(t, overlaps, 1)
	require.Equal(t, "acct_1", overlaps[0].Account)
	require.Equal(t, prod.ID, overlaps[0].ObjectID)
	require.NotEqual(t, overlaps[0].FirstRequestID, overlaps[0].SecondRequestID)

	// The refused request stored nothing: the same key now runs.
	got, err := b.sc.Products.Update(prod.ID, p)
	require.NoError(t, err)
	require.Equal(t, "Fast writer", got.Name)
	require.Empty(t, got.LastResponse.Header.Get("Idempotent-Replayed"))

	// Writes one after another never overlap.
	for range 3 {
		_, err := b.sc.Products.Update(prod.ID, productParams("acct_1", "Sequential"))
		require.NoError(t, err)
	}
	require.Len(t, b.emu.Overlaps(), 1)
}

// TestEmulator_RateLimit follows https://docs.stripe.com/rate-limits: a
// global limit and one per endpoint (method and route template), each
// answered 429 rate_limit with its Stripe-Rate-Limited-Reason.
func TestEmulator_RateLimit(t *testing.T) {
	t.Parallel()

	t.Run("GlobalRate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.emu.SetRateLimit(RateLimit{Global: 2})

		var statuses []int
		for range 3 {
			resp, _ := b.rawRequest(t, "GET", "/v1/products", "", nil)
			statuses = append(statuses, resp.StatusCode)
		}
		require.Equal(t, []int{200, 200, 429}, statuses)
		_, err := b.sc.Products.New(productParams("", "X"))
		se := requireStripeError(t, err, http.StatusTooManyRequests, "rate_limit")
		require.Equal(t, "global-rate", se.LastResponse.Header.Get("Stripe-Rate-Limited-Reason"))
		require.Equal(t, 2, b.emu.FaultsInjected()[FaultRateLimit])
		require.Zero(t, b.emu.WriteCount())

		b.clock.Advance(999 * time.Millisecond)
		resp, _ := b.rawRequest(t, "GET", "/v1/products", "", nil)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the window slides by the clock")
		b.clock.Advance(2 * time.Millisecond)
		resp, _ = b.rawRequest(t, "GET", "/v1/products", "", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)

		b.emu.SetRateLimit(RateLimit{})
		for range 5 {
			resp, _ := b.rawRequest(t, "GET", "/v1/products", "", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
	})

	t.Run("EndpointRate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		prod := b.createProduct(t, "", "evt_1", "Event")
		price := b.createPrice(t, "", prod.ID, 100, "")
		b.clock.Advance(time.Minute)
		b.emu.SetRateLimit(RateLimit{Global: 100, Endpoint: 2})
		b.emu.ResetRequests()

		create := func() int {
			resp, _ := b.rawRequest(t, "POST", "/v1/prices", "product="+prod.ID+"&currency=aud&unit_amount=5", nil)
			return resp.StatusCode
		}
		update := func(id string) int {
			resp, _ := b.rawRequest(t, "POST", "/v1/prices/"+id, "nickname=n", nil)
			return resp.StatusCode
		}
		list := func() int {
			resp, _ := b.rawRequest(t, "GET", "/v1/prices?limit=1", "", nil)
			return resp.StatusCode
		}
		// Three endpoints on one resource, each with its own 2 a second;
		// updates of different Prices share theirs.
		require.Equal(t, []int{200, 200, 429}, []int{create(), create(), create()})
		prices := b.emu.Prices("")
		require.Equal(t, []int{200, 200, 429}, []int{update(price.ID), update(prices[1].ID), update(prices[2].ID)})
		require.Equal(t, []int{200, 200, 429}, []int{list(), list(), list()})

		var reasons []string
		for _, r := range b.emu.Requests() {
			if r.Status == http.StatusTooManyRequests {
				reasons = append(reasons, r.Endpoint+" "+r.RateLimitedReason)
			}
		}
		require.Equal(t, []string{
			"POST /v1/prices endpoint-rate",
			"POST /v1/prices/{id} endpoint-rate",
			"GET /v1/prices endpoint-rate",
		}, reasons)
		require.Equal(t, 4, b.emu.WriteCount(), "refused writes never reach the endpoint")

		// Refused requests do not count against the global limit.
		b.clock.Advance(time.Second)
		b.emu.SetRateLimit(RateLimit{Global: 3, Endpoint: 2})
		require.Equal(t, []int{200, 200, 429, 200, 429}, []int{list(), list(), list(), create(), update(price.ID)})
		require.Equal(t, "global-rate", b.emu.Requests()[len(b.emu.Requests())-1].RateLimitedReason)
	})
}

func TestEmulator_Control(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctl := &Control{BaseURL: b.srv.URL, HTTP: b.srv.Client()}
	ctx := t.Context()

	require.NoError(t, ctl.AddFault(ctx, Fault{Kind: FaultError500, Method: "POST", Times: 1}))
	_, err := b.sc.Products.New(productParams("acct_1", "X"))
	requireStripeError(t, err, http.StatusInternalServerError, "")

	prod := b.createProduct(t, "acct_1", "evt_1", "Event")
	price := b.createPrice(t, "acct_1", prod.ID, 4200, "ticket_1")

	state, err := ctl.State(ctx)
	require.NoError(t, err)
	require.Equal(t, b.emu.State(), *state)
	require.Len(t, state.Accounts, 1)
	acct := state.Accounts["acct_1"]
	require.Equal(t, []stripeclient.Product{{ID: "evt_1", Name: "Event", Images: []string{}, Active: true,
		Metadata: map[string]string{}, Created: prod.Created}}, acct.Products)
	require.Len(t, acct.Prices, 1)
	require.Equal(t, price.ID, acct.Prices[0].ID)
	require.Equal(t, "ticket_1", acct.Prices[0].LookupKey)
	require.Equal(t, int64(4200), acct.Prices[0].UnitAmount)

	stats, err := ctl.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, stats.WriteCount, "the product and the price; the faulted create is not a write")
	require.Equal(t, 3, stats.RequestCount)
	require.Equal(t, map[FaultKind]int{FaultError500: 1}, stats.FaultsInjected)
	require.Empty(t, stats.Overlaps)

	reqs, err := ctl.Requests(ctx)
	require.NoError(t, err)
	require.Len(t, reqs, 3)
	require.Equal(t, "error_500", reqs[0].Fault)

	require.NoError(t, ctl.AddFault(ctx, Fault{Kind: FaultLatency, Latency: 10 * time.Millisecond, LatencyMax: 20 * time.Millisecond}))
	require.NoError(t, ctl.ClearFaults(ctx))

	// A remote fault must be valid.
	resp, body := b.rawRequest(t, "POST", "/_emulator/faults", `{"kind":"meteor_strike"}`, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, body, "meteor_strike")
	resp, _ = b.rawRequest(t, "POST", "/_emulator/faults", `{"kind":"latency","latency_msec":5}`, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "unknown fields are refused")
	require.Error(t, ctl.AddFault(ctx, Fault{Kind: "nope"}))
}

func TestEmulator_FaultJSON(t *testing.T) {
	t.Parallel()
	f := Fault{Kind: FaultLatency, Method: "POST", PathPrefix: "/v1/prices", Account: "acct_1", Times: 2,
		Probability: 0.25, Latency: 150 * time.Millisecond, LatencyMax: time.Second, RetryAfter: 2 * time.Second}
	b, err := f.MarshalJSON()
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"latency","method":"POST","path_prefix":"/v1/prices","account":"acct_1","times":2,
		"probability":0.25,"latency_ms":150,"latency_max_ms":1000,"retry_after_s":2}`, string(b))
	var back Fault
	require.NoError(t, back.UnmarshalJSON(b))
	require.Equal(t, f, back)
	require.Error(t, back.UnmarshalJSON([]byte(`{"kind":"latency","probability":2}`)))

	var stored Fault
	require.NoError(t, stored.UnmarshalJSON([]byte(`{"kind":"error_500_stored","applied":true}`)))
	require.Equal(t, Fault{Kind: FaultError500Stored, Applied: true}, stored)
}
