package stripeclient

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
)

// DefaultAPIBase is Stripe's real API, used when Options.APIBase is empty.
const DefaultAPIBase = "https://api.stripe.com"

// DefaultHTTPTimeout is how long the default HTTP client waits for a
// response's headers, once the request is sent, before giving up.
const DefaultHTTPTimeout = 30 * time.Second

// listPageSize is Stripe's largest page.
const listPageSize = 100

// maxIdempotencyKeyLen is Stripe's limit on the Idempotency-Key header.
const maxIdempotencyKeyLen = 255

// Options configures New.
type Options struct {
	// SecretKey is the Stripe secret (sk_...) or restricted (rk_...) key.
	// Required: New returns an error when it is empty. It is never logged and
	// never appears in the text of an error.
	SecretKey string

	// APIBase is the scheme, host and port of the Stripe API, for example
	// "http://127.0.0.1:12111" for stripe-mock or the emulator (the value of
	// STRIPE_API_BASE). A trailing "/" or "/v1" is ignored. Defaults to
	// DefaultAPIBase. New returns an error if it is not an absolute http or
	// https URL.
	APIBase string

	// HTTPClient sends the requests. New uses a copy of it whose Transport is
	// wrapped (for the limiter, the observer and logging); the client passed
	// in is not modified. Note that a Timeout set on it also counts the time
	// spent waiting on the Limiter.
	//
	// Defaults to a client over a clone of http.DefaultTransport that gives up
	// when a response's headers take longer than DefaultHTTPTimeout; the
	// Limiter's wait does not count towards that, and the call's context
	// bounds the whole call.
	HTTPClient *http.Client

	// Limiter, when set, is waited on before every HTTP request, each page of
	// a listing included, with the request's context and the connected
	// account. Defaults to nil: no limiting.
	Limiter Limiter

	// Logger receives one Debug record per HTTP request and stripe-go's own
	// log lines (also at Debug), all scrubbed of secret keys. Errors are not
	// logged above Debug here: they are returned, and the caller logs them.
	// Defaults to discarding everything.
	Logger *slog.Logger

	// Observer, when set, is called after every HTTP request with the
	// operation (for example "create_product" or "list_prices"), the HTTP
	// status (0 when no response arrived) and the time until the response
	// headers arrived. It is not called for a request the limiter refused. It
	// must be safe for concurrent use. Defaults to nil.
	Observer func(op string, status int, d time.Duration)
}

// StripeClient is the Client backed by stripe-go v76 and the real Stripe API
// (or anything speaking it: stripe-mock, the emulator). It is safe for
// concurrent use.
//
// stripe-go's own retries are off: a failed request is returned at once as an
// *Error, and the caller (River) retries the job. Writes made with a
// Call.IdempotencyScope carry a deterministic Idempotency-Key (see
// IdempotencyKey), so a retried attempt replays Stripe's first answer.
type StripeClient struct {
	api *client.API
	key string
}

var _ Client = (*StripeClient)(nil)

// New returns a StripeClient configured by opts. It returns an error when
// opts.SecretKey is empty or opts.APIBase is not an absolute http(s) URL; it
// makes no request.
func New(opts Options) (*StripeClient, error) {
	if opts.SecretKey == "" {
		return nil, errors.New("stripeclient: Options.SecretKey is required")
	}
	base := opts.APIBase
	if base == "" {
		base = DefaultAPIBase
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("stripeclient: Options.APIBase %q is not an absolute http(s) URL", scrub(opts.SecretKey, base))
	}

	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	var httpClient *http.Client
	if opts.HTTPClient == nil {
		// Not http.Client.Timeout: its clock starts before the Limiter's
		// wait, which may rightly be long when many workers share a limit.
		defaultTransport := &http.Transport{Proxy: http.ProxyFromEnvironment}
		if dt, ok := http.DefaultTransport.(*http.Transport); ok {
			defaultTransport = dt.Clone()
		}
		defaultTransport.ResponseHeaderTimeout = DefaultHTTPTimeout
		httpClient = &http.Client{Transport: defaultTransport}
	} else {
		copied := *opts.HTTPClient
		httpClient = &copied
	}
	baseTransport := httpClient.Transport
	if baseTransport == nil {
		baseTransport = http.DefaultTransport
	}
	httpClient.Transport = &transport{
		base:     baseTransport,
		limiter:  opts.Limiter,
		observer: opts.Observer,
		logger:   logger,
		key:      opts.SecretKey,
	}

	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:        stripe.String(base),
		HTTPClient: httpClient,
		// River retries the job instead: stripe-go's retries sleep without
		// watching the context, and its idempotency keys do not survive
		// across River attempts.
		MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger:     &leveledLogger{logger: logger, key: opts.SecretKey},
		EnableTelemetry:   stripe.Bool(false),
	})
	// Only the API backend is given: Products and Prices never use the
	// Connect (OAuth) or Uploads backends, and leaving them out keeps
	// stripe-go from building its global default backends.
	api := client.New(opts.SecretKey, &stripe.Backends{API: backend})
	return &StripeClient{api: api, key: opts.SecretKey}, nil
}

// CreateProduct implements Client. Description and Images are sent only when
// not empty, as Stripe rejects empty values on create.
func (c *StripeClient) CreateProduct(ctx context.Context, call Call, params ProductParams) (*Product, error) {
	const op = "create_product"
	sp := &stripe.ProductParams{
		Name:   stripe.String(params.Name),
		Active: stripe.Bool(params.Active),
	}
	if params.ID != "" {
		sp.ID = stripe.String(params.ID)
	}
	if params.Description != "" {
		sp.Description = stripe.String(params.Description)
	}
	if len(params.Images) > 0 {
		sp.Images = stripe.StringSlice(params.Images)
	}
	if len(params.Metadata) > 0 {
		sp.Metadata = maps.Clone(params.Metadata)
	}
	cs := c.prepareWrite(ctx, &sp.Params, call, op, params.ID, params)
	product, err := c.api.Products.New(sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return productFrom(product), nil
}

// UpdateProduct implements Client. An empty Description or Images clears the
// field on Stripe. A Metadata value of "" deletes that key (Stripe's rule).
func (c *StripeClient) UpdateProduct(ctx context.Context, call Call, id string, params ProductParams) (*Product, error) {
	const op = "update_product"
	// A non-nil empty slice is encoded as "images=", which clears them.
	images := make([]*string, 0, len(params.Images))
	for _, image := range params.Images {
		images = append(images, stripe.String(image))
	}
	sp := &stripe.ProductParams{
		Name:        stripe.String(params.Name),
		Description: stripe.String(params.Description),
		Images:      images,
		Active:      stripe.Bool(params.Active),
	}
	if len(params.Metadata) > 0 {
		sp.Metadata = maps.Clone(params.Metadata)
	}
	// ID is ignored on update, so it must not split the idempotency key.
	params.ID = ""
	cs := c.prepareWrite(ctx, &sp.Params, call, op, id, params)
	product, err := c.api.Products.Update(id, sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return productFrom(product), nil
}

// ArchiveProduct implements Client: it sends active=false and nothing else.
func (c *StripeClient) ArchiveProduct(ctx context.Context, call Call, id string) (*Product, error) {
	const op = "archive_product"
	sp := &stripe.ProductParams{Active: stripe.Bool(false)}
	cs := c.prepareWrite(ctx, &sp.Params, call, op, id, nil)
	product, err := c.api.Products.Update(id, sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return productFrom(product), nil
}

// GetProduct implements Client.
func (c *StripeClient) GetProduct(ctx context.Context, call Call, id string) (*Product, error) {
	const op = "get_product"
	sp := &stripe.ProductParams{}
	cs := c.prepare(ctx, &sp.Params, call, op)
	product, err := c.api.Products.Get(id, sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return productFrom(product), nil
}

// ListProducts implements Client, active and archived Products alike, 100 to
// a page. fn's error is returned as it is.
func (c *StripeClient) ListProducts(ctx context.Context, call Call, fn func(*Product) error) error {
	const op = "list_products"
	lp := &stripe.ProductListParams{}
	lp.Limit = stripe.Int64(listPageSize)
	cs := c.prepareList(ctx, &lp.ListParams, call, op)
	it := c.api.Products.List(lp)
	for it.Next() {
		if err := fn(productFrom(it.Product())); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return c.toError(ctx, cs, err)
	}
	return nil
}

// CreatePrice implements Client. Nickname is sent only when not empty; a
// LookupKey is sent with transfer_lookup_key=true.
func (c *StripeClient) CreatePrice(ctx context.Context, call Call, params PriceParams) (*Price, error) {
	const op = "create_price"
	sp := &stripe.PriceParams{
		Product:    stripe.String(params.Product),
		Currency:   stripe.String(params.Currency),
		UnitAmount: stripe.Int64(params.UnitAmount),
		Active:     stripe.Bool(params.Active),
	}
	if params.Nickname != "" {
		sp.Nickname = stripe.String(params.Nickname)
	}
	if params.LookupKey != "" {
		sp.LookupKey = stripe.String(params.LookupKey)
		sp.TransferLookupKey = stripe.Bool(true)
	}
	if len(params.Metadata) > 0 {
		sp.Metadata = maps.Clone(params.Metadata)
	}
	cs := c.prepareWrite(ctx, &sp.Params, call, op, "", params)
	price, err := c.api.Prices.New(sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return priceFrom(price), nil
}

// UpdatePrice implements Client. An empty Nickname clears it; an empty
// LookupKey leaves the Price's lookup key as it is, and a non-empty one is
// sent with transfer_lookup_key=true. A Metadata value of "" deletes that key.
func (c *StripeClient) UpdatePrice(ctx context.Context, call Call, id string, params PriceParams) (*Price, error) {
	const op = "update_price"
	sp := &stripe.PriceParams{
		Nickname: stripe.String(params.Nickname),
		Active:   stripe.Bool(params.Active),
	}
	if params.LookupKey != "" {
		sp.LookupKey = stripe.String(params.LookupKey)
		sp.TransferLookupKey = stripe.Bool(true)
	}
	if len(params.Metadata) > 0 {
		sp.Metadata = maps.Clone(params.Metadata)
	}
	// Only these fields are sent, so only they may shape the idempotency key.
	keyed := PriceParams{Nickname: params.Nickname, LookupKey: params.LookupKey, Active: params.Active, Metadata: params.Metadata}
	cs := c.prepareWrite(ctx, &sp.Params, call, op, id, keyed)
	price, err := c.api.Prices.Update(id, sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return priceFrom(price), nil
}

// ArchivePrice implements Client: it sends active=false and nothing else.
func (c *StripeClient) ArchivePrice(ctx context.Context, call Call, id string) (*Price, error) {
	const op = "archive_price"
	sp := &stripe.PriceParams{Active: stripe.Bool(false)}
	cs := c.prepareWrite(ctx, &sp.Params, call, op, id, nil)
	price, err := c.api.Prices.Update(id, sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return priceFrom(price), nil
}

// GetPrice implements Client.
func (c *StripeClient) GetPrice(ctx context.Context, call Call, id string) (*Price, error) {
	const op = "get_price"
	sp := &stripe.PriceParams{}
	cs := c.prepare(ctx, &sp.Params, call, op)
	price, err := c.api.Prices.Get(id, sp)
	if err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return priceFrom(price), nil
}

// FindPriceByLookupKey implements Client. It lists Prices filtered by
// lookup_keys, active or not, and returns the first.
func (c *StripeClient) FindPriceByLookupKey(ctx context.Context, call Call, lookupKey string) (*Price, error) {
	const op = "find_price_by_lookup_key"
	lp := &stripe.PriceListParams{LookupKeys: stripe.StringSlice([]string{lookupKey})}
	lp.Limit = stripe.Int64(listPageSize)
	lp.Single = true
	cs := c.prepareList(ctx, &lp.ListParams, call, op)
	it := c.api.Prices.List(lp)
	if it.Next() {
		return priceFrom(it.Price()), nil
	}
	if err := it.Err(); err != nil {
		return nil, c.toError(ctx, cs, err)
	}
	return nil, nil
}

// ListPrices implements Client, active and archived Prices alike, 100 to a
// page. fn's error is returned as it is.
func (c *StripeClient) ListPrices(ctx context.Context, call Call, product string, fn func(*Price) error) error {
	const op = "list_prices"
	lp := &stripe.PriceListParams{}
	if product != "" {
		lp.Product = stripe.String(product)
	}
	lp.Limit = stripe.Int64(listPageSize)
	cs := c.prepareList(ctx, &lp.ListParams, call, op)
	it := c.api.Prices.List(lp)
	for it.Next() {
		if err := fn(priceFrom(it.Price())); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return c.toError(ctx, cs, err)
	}
	return nil
}

// IdempotencyKey returns the Idempotency-Key a write with a
// Call.IdempotencyScope sends: IdempotencyKeyPrefix, the scope, the operation (for example
// "update_product") and the first 24 hex digits of a SHA-256 over a canonical
// encoding of (call.Account, target, params, call.IdempotencySalt), joined by
// ":"; an empty salt leaves the encoding as it was before salts existed. target is the id
// the write acts on ("" for creates without one) and params the
// ProductParams or PriceParams whose fields the write sends (nil for
// archives; UpdateProduct leaves out ID and UpdatePrice leaves out Product,
// Currency and UnitAmount, as they are not sent).
//
// Equal inputs give equal keys; a change to any of them gives a different
// key. Metadata key order, and nil versus empty Images or Metadata, do not
// count, as they do not change the request. Keys never exceed Stripe's 255
// characters: a scope too long for that is replaced by a hash of itself.
func IdempotencyKey(call Call, op, target string, params any) string {
	canonical, err := json.Marshal(struct {
		Account string `json:"account"`
		Target  string `json:"target"`
		Params  any    `json:"params"`
		Salt    string `json:"salt,omitempty"`
	}{call.Account, target, canonicalParams(params), call.IdempotencySalt})
	if err != nil {
		// Not reached for ProductParams and PriceParams; %#v prints map keys
		// sorted, so it is deterministic too.
		canonical = fmt.Appendf(nil, "%q|%q|%#v|%q", call.Account, target, params, call.IdempotencySalt)
	}
	sum := sha256.Sum256(canonical)
	digest := hex.EncodeToString(sum[:])[:24]

	scope := call.IdempotencyScope
	if len(IdempotencyKeyPrefix)+len(scope)+len(op)+len(digest)+2 > maxIdempotencyKeyLen {
		scopeSum := sha256.Sum256([]byte(scope))
		scope = "sha256-" + hex.EncodeToString(scopeSum[:])[:32]
	}
	return IdempotencyKeyPrefix + scope + ":" + op + ":" + digest
}

func canonicalParams(params any) any {
	switch p := params.(type) {
	case *ProductParams:
		if p == nil {
			return nil
		}
		return canonicalParams(*p)
	case *PriceParams:
		if p == nil {
			return nil
		}
		return canonicalParams(*p)
	case ProductParams:
		if p.Images == nil {
			p.Images = []string{}
		}
		if p.Metadata == nil {
			p.Metadata = map[string]string{}
		}
		return p
	case PriceParams:
		if p.Metadata == nil {
			p.Metadata = map[string]string{}
		}
		return p
	}
	return params
}

// callState follows one Client call through stripe-go to the transport and
// back: what the transport needs to know, and what it saw.
type callState struct {
	op string
	// object is the id a write acts on, for the Limiter ("" for reads).
	object string
	// noIdempotencyKey makes the transport drop the random key stripe-go puts
	// on every write that has none: Call.IdempotencyScope promises no key.
	noIdempotencyKey bool

	// status and header are the last response's, for errors stripe-go could
	// not decode (a proxy's HTML 502, say).
	status int
	header http.Header
}

type callStateKey struct{}

func (c *StripeClient) prepare(ctx context.Context, params *stripe.Params, call Call, op string) *callState {
	cs := &callState{op: op}
	params.Context = context.WithValue(ctx, callStateKey{}, cs)
	if call.Account != "" {
		params.SetStripeAccount(call.Account)
	}
	return cs
}

func (c *StripeClient) prepareWrite(ctx context.Context, params *stripe.Params, call Call, op, target string, keyed any) *callState {
	cs := c.prepare(ctx, params, call, op)
	cs.object = target
	if call.IdempotencyScope != "" {
		params.SetIdempotencyKey(IdempotencyKey(call, op, target, keyed))
	} else {
		cs.noIdempotencyKey = true
	}
	return cs
}

func (c *StripeClient) prepareList(ctx context.Context, params *stripe.ListParams, call Call, op string) *callState {
	cs := &callState{op: op}
	params.Context = context.WithValue(ctx, callStateKey{}, cs)
	if call.Account != "" {
		params.SetStripeAccount(call.Account)
	}
	return cs
}

// toError turns what stripe-go returned into an *Error, or into an error
// wrapping ctx's error when ctx ended before a response arrived.
func (c *StripeClient) toError(ctx context.Context, cs *callState, err error) error {
	var se *stripe.Error
	if errors.As(err, &se) {
		return c.fromStripeError(cs, se)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("stripe %s: %w", cs.op, ctxErr)
	}
	e := &Error{Class: ClassRetryable, Op: cs.op, Message: scrub(c.key, err.Error()), Answer: AnswerNone}
	var le *limiterError
	if errors.As(err, &le) {
		e.Message = scrub(c.key, le.Error())
		return e
	}
	if cs.status != 0 {
		// A response arrived, but not one stripe-go could decode.
		e.HTTPStatus = cs.status
		e.Class = classify(cs.status, "", "")
		e.RequestID = cs.header.Get("Request-Id")
		e.RetryAfter = retryAfter(cs.header)
		e.Answer = answerOf(cs.status)
		e.Replayed = replayed(cs.header)
		e.RateLimitedReason = rateLimitedReason(cs.status, "", cs.header)
	}
	return e
}

// answerOf returns the Answer of an HTTP status that arrived.
func answerOf(status int) Answer {
	if status >= 500 {
		return AnswerServerError
	}
	return AnswerClientError
}

// replayed reports whether Stripe answered from its idempotency store.
func replayed(h http.Header) bool {
	return strings.EqualFold(h.Get("Idempotent-Replayed"), "true")
}

// rateLimitedReason returns which limit refused a 429: ReasonLockTimeout
// for the error code lock_timeout, else the Stripe-Rate-Limited-Reason
// header; "" for other statuses.
func rateLimitedReason(status int, code stripe.ErrorCode, h http.Header) string {
	switch {
	case status != http.StatusTooManyRequests:
		return ""
	case code == stripe.ErrorCodeLockTimeout:
		return ReasonLockTimeout
	}
	return h.Get("Stripe-Rate-Limited-Reason")
}

func (c *StripeClient) fromStripeError(cs *callState, se *stripe.Error) *Error {
	header := cs.header
	if se.LastResponse != nil && se.LastResponse.Header != nil {
		header = se.LastResponse.Header
	}
	e := &Error{
		Class:      classify(se.HTTPStatusCode, se.Code, se.Type),
		Op:         cs.op,
		HTTPStatus: se.HTTPStatusCode,
		Code:       string(se.Code),
		Message:    scrub(c.key, se.Msg),
		RequestID:  se.RequestID,
		RetryAfter: retryAfter(header),
		Answer:     answerOf(se.HTTPStatusCode),
		Replayed:   replayed(header),

		RateLimitedReason: rateLimitedReason(se.HTTPStatusCode, se.Code, header),
	}
	if e.Message == "" {
		e.Message = http.StatusText(se.HTTPStatusCode)
	}
	if se.Type == stripe.ErrorTypeIdempotency && e.Class == ClassInvalid {
		e.Message = "Stripe refused an Idempotency-Key reused with different parameters, " +
			"so retrying cannot succeed (the key's scope must name a new change): " + e.Message
	}
	return e
}

// classify maps an HTTP status and Stripe's error code and type onto a Class,
// following DESIGN.md's error table.
func classify(status int, code stripe.ErrorCode, typ stripe.ErrorType) Class {
	switch {
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ClassAuth
	case status == http.StatusConflict, code == stripe.ErrorCodeLockTimeout, code == stripe.ErrorCodeIdempotencyKeyInUse:
		return ClassRetryable
	case status >= 500:
		return ClassRetryable
	case typ == stripe.ErrorTypeIdempotency:
		// Same key, different parameters: Stripe answers this way for 24
		// hours, so a retry would fail every time.
		return ClassInvalid
	case status == http.StatusNotFound, code == stripe.ErrorCodeResourceMissing:
		return ClassNotFound
	case code == stripe.ErrorCodeResourceAlreadyExists:
		return ClassAlreadyExists
	case status >= 400:
		return ClassInvalid
	}
	return ClassRetryable
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs > 0 {
			return time.Duration(secs * float64(time.Second))
		}
		return 0
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func productFrom(p *stripe.Product) *Product {
	return &Product{
		ID:          p.ID,
		Name:        p.Name,
		Description: p.Description,
		Images:      slices.Clone(p.Images),
		Active:      p.Active,
		Metadata:    maps.Clone(p.Metadata),
		Created:     p.Created,
	}
}

func priceFrom(p *stripe.Price) *Price {
	var product string
	if p.Product != nil {
		product = p.Product.ID
	}
	return &Price{
		ID:         p.ID,
		Product:    product,
		Currency:   string(p.Currency),
		UnitAmount: p.UnitAmount,
		Nickname:   p.Nickname,
		LookupKey:  p.LookupKey,
		Active:     p.Active,
		Metadata:   maps.Clone(p.Metadata),
		Created:    p.Created,
	}
}

// secretPattern matches Stripe API keys, including the masked form Stripe's
// 401 message shows ("sk_test_****...abcd").
var secretPattern = regexp.MustCompile(`(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]+`)

// scrub replaces the secret key and anything that looks like a Stripe API
// key with "[redacted]".
func scrub(key, s string) string {
	if key != "" {
		s = strings.ReplaceAll(s, key, "[redacted]")
	}
	return secretPattern.ReplaceAllString(s, "[redacted]")
}

// transport wraps the HTTP transport under stripe-go, so that every HTTP
// request, list pages included, is rate-limited, observed and logged.
type transport struct {
	base     http.RoundTripper
	limiter  Limiter
	observer func(op string, status int, d time.Duration)
	logger   *slog.Logger
	key      string
}

// limiterError is a Limiter's refusal, told apart from network errors.
type limiterError struct{ err error }

func (e *limiterError) Error() string { return "rate limiter: " + e.err.Error() }
func (e *limiterError) Unwrap() error { return e.err }

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	cs, _ := ctx.Value(callStateKey{}).(*callState)
	if cs == nil {
		cs = &callState{op: "unknown"}
	}
	account := req.Header.Get("Stripe-Account")
	limited := Request{Account: account, Endpoint: endpointOf(req.Method, req.URL.Path), Object: cs.object}
	if t.limiter != nil {
		if err := t.limiter.Wait(ctx, limited); err != nil {
			if req.Body != nil {
				_ = req.Body.Close()
			}
			return nil, &limiterError{err: err}
		}
	}
	if cs.noIdempotencyKey && req.Header.Get("Idempotency-Key") != "" {
		req = req.Clone(ctx)
		req.Header.Del("Idempotency-Key")
	}

	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	elapsed := time.Since(start)

	status := 0
	attrs := []slog.Attr{
		slog.String("op", cs.op),
		slog.String("account", account),
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
	}
	if err == nil {
		status = resp.StatusCode
		cs.status, cs.header = resp.StatusCode, resp.Header
		attrs = append(attrs, slog.String("request_id", resp.Header.Get("Request-Id")))
	} else {
		attrs = append(attrs, slog.String("error", scrub(t.key, err.Error())))
	}
	attrs = append(attrs, slog.Int("status", status), slog.Duration("duration", elapsed))
	if t.observer != nil {
		t.observer(cs.op, status, elapsed)
	}
	if p, ok := t.limiter.(Penalizer); ok && status == http.StatusTooManyRequests {
		p.Penalize(RateLimited{
			Request:    limited,
			Reason:     rateLimitedReason(status, peekErrorCode(resp), resp.Header),
			RetryAfter: cmp.Or(retryAfter(resp.Header), time.Second),
		})
	}
	t.logger.LogAttrs(ctx, slog.LevelDebug, "stripe request", attrs...)
	return resp, err
}

// maxPeek bounds how much of an error body peekErrorCode reads: Stripe's
// error bodies are small.
const maxPeek = 64 << 10

// peekErrorCode returns the error code of a Stripe error body, leaving the
// body readable for stripe-go; "" when there is none.
func peekErrorCode(resp *http.Response) stripe.ErrorCode {
	if resp.Body == nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPeek))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	if err != nil {
		return ""
	}
	var body struct {
		Error struct {
			Code stripe.ErrorCode `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &body)
	return body.Error.Code
}

// leveledLogger hands stripe-go's log lines to slog, scrubbed, at Debug (or
// Warn for its warnings): every error it would log is returned to the caller,
// who logs it once with its Class.
type leveledLogger struct {
	logger *slog.Logger
	key    string
}

func (l *leveledLogger) Debugf(format string, v ...any) { l.log(slog.LevelDebug, format, v) }
func (l *leveledLogger) Infof(format string, v ...any)  { l.log(slog.LevelDebug, format, v) }
func (l *leveledLogger) Warnf(format string, v ...any)  { l.log(slog.LevelWarn, format, v) }
func (l *leveledLogger) Errorf(format string, v ...any) { l.log(slog.LevelDebug, format, v) }

func (l *leveledLogger) log(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !l.logger.Enabled(ctx, level) {
		return
	}
	l.logger.Log(ctx, level, scrub(l.key, fmt.Sprintf(format, v...)), slog.String("component", "stripe-go"))
}
