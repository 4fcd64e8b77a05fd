package emulator

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// maxBody caps a request body; Stripe's parameters are small.
const maxBody = 1 << 20

// Options configures New.
type Options struct {
	// SecretKey, when set, is the only API key accepted: requests must carry
	// it as "Authorization: Bearer <key>" or as the user of Basic auth, or
	// get Stripe's 401. Defaults to empty, which accepts any request.
	SecretKey string
	// Clock gives created/updated times and the rate limit's window.
	// Defaults to time.Now.
	Clock func() time.Time
	// Logger receives one debug line per request. Defaults to nil, which
	// logs nothing.
	Logger *slog.Logger
	// Seed seeds the random source behind Fault.Probability and random
	// latencies, so a run with faults can be repeated. Defaults to 0.
	Seed uint64
}

// Emulator is a stateful, in-memory imitation of the parts of Stripe's API
// the sync uses: Products and Prices per connected account (the
// Stripe-Account header), form-encoded parameters, Stripe-shaped JSON and
// errors, idempotency keys, and injectable faults. It is an http.Handler
// that the stripe-go client talks to unchanged; tests and the demo inspect
// it through its methods or its /_emulator/ control routes.
//
// An Emulator is safe for concurrent use.
type Emulator struct {
	secretKey string
	clock     func() time.Time
	logger    *slog.Logger

	mu       sync.Mutex
	rng      *rand.Rand
	seq      uint64
	accounts map[string]*accountState
	idem     map[idemKey]*idemEntry
	requests []RecordedRequest
	writes   int
	inFlight map[objectKey][]string
	overlaps []Overlap
	faults   []*activeFault
	injected map[FaultKind]int

	ratePerSecond int
	rateWindow    []time.Time
}

// RecordedRequest is one API request the Emulator answered, as tests see it.
type RecordedRequest struct {
	// RequestID is the Request-Id header of the response.
	RequestID string `json:"request_id"`
	// Time is when the request arrived, by the Emulator's Clock.
	Time time.Time `json:"time"`
	// Method is the HTTP method, for example "POST".
	Method string `json:"method"`
	// Path is the URL path without the query, for example "/v1/products".
	Path string `json:"path"`
	// Account is the Stripe-Account header; empty for the platform.
	Account string `json:"account"`
	// IdempotencyKey is the Idempotency-Key header; empty when none.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Status is the HTTP status the Emulator answered (or would have, when
	// a FaultResponseLost dropped it); 499 when the client went away during
	// an injected latency.
	Status int `json:"status"`
	// Write is true for POST and DELETE.
	Write bool `json:"write"`
	// ObjectID is the object the request wrote or read, when there is one.
	ObjectID string `json:"object_id,omitempty"`
	// Replayed is true when the answer was an idempotent replay.
	Replayed bool `json:"replayed"`
	// Fault names the injected faults, comma-separated (for example
	// "latency,response_lost"); empty when none applied.
	Fault string `json:"fault,omitempty"`
}

// Overlap is a pair of writes to the same object that were in flight at the
// same time: the second started before the first had been answered.
type Overlap struct {
	// Account is the Stripe-Account of both writes.
	Account string `json:"account"`
	// ObjectID is the id both wrote to.
	ObjectID string `json:"object_id"`
	// FirstRequestID and SecondRequestID are the RecordedRequest ids, the
	// first being the one already in flight.
	FirstRequestID  string `json:"first_request_id"`
	SecondRequestID string `json:"second_request_id"`
	// Time is when the second write arrived, by the Emulator's Clock.
	Time time.Time `json:"time"`
}

type idemKey struct {
	account string
	key     string
}

type idemEntry struct {
	fingerprint string
	done        bool
	status      int
	body        []byte
}

type objectKey struct {
	account string
	id      string
}

// New returns an empty Emulator.
func New(opts Options) *Emulator {
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Emulator{
		secretKey: opts.SecretKey,
		clock:     clock,
		logger:    logger,
		rng:       rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
	}
	e.resetLocked()
	return e
}

// resetLocked empties every piece of state. The caller holds e.mu (or owns e).
func (e *Emulator) resetLocked() {
	e.seq = 0
	e.accounts = map[string]*accountState{}
	e.idem = map[idemKey]*idemEntry{}
	e.requests = nil
	e.writes = 0
	e.inFlight = map[objectKey][]string{}
	e.overlaps = nil
	e.faults = nil
	e.injected = map[FaultKind]int{}
	e.ratePerSecond = 0
	e.rateWindow = nil
}

// Reset forgets every object, idempotency key, recorded request, fault, count
// and the rate limit, as if the Emulator were new. Requests in flight finish
// against the emptied state.
func (e *Emulator) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	inFlight := e.inFlight
	e.resetLocked()
	// Keep in-flight bookkeeping so requests still running end cleanly.
	e.inFlight = inFlight
}

// Products returns a copy of account's Products, sorted by Created then ID.
// An empty account is the platform.
func (e *Emulator) Products(account string) []stripeclient.Product {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.productsLocked(account)
}

func (e *Emulator) productsLocked(account string) []stripeclient.Product {
	a := e.accounts[account]
	if a == nil {
		return []stripeclient.Product{}
	}
	out := make([]stripeclient.Product, 0, len(a.products))
	for _, p := range a.products {
		out = append(out, p.render().toProduct())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Prices returns a copy of account's Prices, sorted by Created then ID.
func (e *Emulator) Prices(account string) []stripeclient.Price {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pricesLocked(account)
}

func (e *Emulator) pricesLocked(account string) []stripeclient.Price {
	a := e.accounts[account]
	if a == nil {
		return []stripeclient.Price{}
	}
	out := make([]stripeclient.Price, 0, len(a.prices))
	for _, p := range a.prices {
		out = append(out, p.render().toPrice())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Created != out[j].Created {
			return out[i].Created < out[j].Created
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Accounts returns the accounts holding at least one object, sorted; the
// platform is the empty string.
func (e *Emulator) Accounts() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.accountsLocked()
}

func (e *Emulator) accountsLocked() []string {
	out := make([]string, 0, len(e.accounts))
	for id, a := range e.accounts {
		if len(a.products)+len(a.prices) > 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Requests returns every API request answered since the last reset, in the
// order they were answered. Control routes under /_emulator/ are not
// recorded.
func (e *Emulator) Requests() []RecordedRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]RecordedRequest{}, e.requests...)
}

// WriteCount returns how many POST requests reached the write path: not
// refused by auth or rate limiting, not stopped by a fault before the write,
// not to an unknown route, not an idempotent replay or conflict. A write the
// Emulator rejects as invalid still counts: it was attempted.
func (e *Emulator) WriteCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writes
}

// ResetRequests forgets the recorded requests and what is counted from them:
// WriteCount, Overlaps and FaultsInjected. Objects, idempotency keys, faults
// and the rate limit stay.
func (e *Emulator) ResetRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = nil
	e.writes = 0
	e.overlaps = nil
	e.injected = map[FaultKind]int{}
}

// Overlaps returns the pairs of writes to the same (account, object) that
// were in flight at the same time. A write is in flight from its arrival
// (before any injected latency) until its answer is ready.
func (e *Emulator) Overlaps() []Overlap {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Overlap{}, e.overlaps...)
}

// ServeHTTP answers Stripe API requests under /v1/ and the control routes
// under /_emulator/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_emulator" || strings.HasPrefix(r.URL.Path, "/_emulator/") {
		e.serveControl(w, r)
		return
	}
	x := &exchange{
		e: e,
		w: w,
		r: r,
		rec: RecordedRequest{
			RequestID:      newID("req_"),
			Time:           e.clock(),
			Method:         r.Method,
			Path:           r.URL.Path,
			Account:        strings.TrimSpace(r.Header.Get("Stripe-Account")),
			IdempotencyKey: strings.TrimSpace(r.Header.Get("Idempotency-Key")),
			Write:          r.Method == http.MethodPost || r.Method == http.MethodDelete,
		},
	}
	x.serve()
}

// exchange is one API request on its way through the Emulator.
type exchange struct {
	e   *Emulator
	w   http.ResponseWriter
	r   *http.Request
	rec RecordedRequest

	body   []byte
	form   *form
	faults []string
	// inFlight is the object this write holds in the in-flight set, until
	// endWrite.
	inFlight *objectKey
}

func (x *exchange) serve() {
	e, r := x.e, x.r
	x.w.Header().Set("Request-Id", x.rec.RequestID)

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		x.finish(&apiError{status: http.StatusBadRequest, typ: "invalid_request_error",
			message: "Could not read the request body."}, false)
		return
	}
	if len(body) > maxBody {
		x.finish(&apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
			message: "Request body too large."}, false)
		return
	}
	x.body = body

	if err := x.authenticate(); err != nil {
		x.w.Header().Set("Www-Authenticate", `Basic realm="Stripe"`)
		x.finish(err, false)
		return
	}

	values, perr := x.params()
	if perr != nil {
		x.finish(errInvalid("", "", "Invalid request: the parameters could not be parsed."), false)
		return
	}
	x.form = parseForm(values)
	op, pathID, routed := routeOf(r.Method, r.URL.EscapedPath())
	objectID := pathID
	if op == "product.create" {
		objectID, _, _ = x.form.str("id")
	}

	e.mu.Lock()
	if !e.admitRate(x.rec.Time) {
		e.mu.Unlock()
		x.faults = append(x.faults, string(FaultRateLimit))
		x.w.Header().Set("Retry-After", "1")
		x.finish(errRateLimited(), false)
		return
	}
	if x.rec.Write && routed && objectID != "" {
		key := objectKey{account: x.rec.Account, id: objectID}
		e.beginWriteLocked(key, x.rec.RequestID, x.rec.Time)
		x.inFlight = &key
		defer x.endWrite()
	}
	latency, fault := e.pickFaults(r.Method, r.URL.Path, x.rec.Account)
	var delay time.Duration
	if latency != nil {
		delay = e.latencyOf(latency)
	}
	e.mu.Unlock()

	if latency != nil {
		x.faults = append(x.faults, string(FaultLatency))
	}
	if fault != nil {
		x.faults = append(x.faults, string(fault.Kind))
	}
	lose := fault != nil && fault.Kind == FaultResponseLost

	switch {
	case fault != nil && fault.Kind == FaultError500:
		if x.delay(delay, nil) {
			x.finish(errInjected500(), false)
		}
		return
	case fault != nil && fault.Kind == FaultRateLimit:
		if x.delay(delay, nil) {
			x.w.Header().Set("Retry-After", retryAfterSeconds(fault.RetryAfter))
			x.finish(errRateLimited(), false)
		}
		return
	case !routed:
		if x.delay(delay, nil) {
			x.finish(errUnrecognizedURL(r.Method, r.URL.Path), lose)
		}
		return
	}

	// Latency comes after the idempotency key is claimed: it stands for a
	// slow Stripe, during which a second request with the key gets a 409.
	idem, replay, conflict := x.claimIdempotency()
	if conflict != nil {
		x.finish(conflict, lose)
		return
	}
	if !x.delay(delay, idem) {
		return
	}
	if replay != nil {
		x.rec.Replayed = true
		x.w.Header().Set("Idempotent-Replayed", "true")
		x.rec.ObjectID = replayedObjectID(replay.body, objectID)
		x.respond(replay.status, replay.body, lose)
		return
	}

	e.mu.Lock()
	if x.rec.Write {
		e.writes++
	}
	obj, id, apiErr := e.handle(op, &call{
		method:  r.Method,
		path:    r.URL.Path,
		account: x.rec.Account,
		id:      pathID,
		form:    x.form,
	})
	status, respBody := http.StatusOK, []byte(nil)
	if apiErr != nil {
		status, respBody = apiErr.status, apiErr.body()
	} else {
		respBody = jsonBody(obj)
	}
	x.rec.ObjectID = id
	if idem != nil {
		idem.done, idem.status, idem.body = true, status, respBody
	}
	e.mu.Unlock()
	x.respond(status, respBody, lose)
}

// delay sleeps for an injected latency. When the client goes away first it
// records the request as 499, gives up the idempotency key it claimed (the
// request never ran), and returns false.
func (x *exchange) delay(d time.Duration, claimed *idemEntry) bool {
	if d <= 0 || sleepCtx(x.r, d) {
		return true
	}
	if claimed != nil {
		e := x.e
		key := idemKey{account: x.rec.Account, key: x.rec.IdempotencyKey}
		e.mu.Lock()
		if e.idem[key] == claimed {
			delete(e.idem, key)
		}
		e.mu.Unlock()
	}
	x.rec.Status = 499
	x.record()
	x.endWrite()
	return false
}

// params returns the query and, for requests with a body, the form body.
func (x *exchange) params() (url.Values, error) {
	values, err := url.ParseQuery(x.r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	if len(x.body) > 0 {
		bodyValues, err := url.ParseQuery(string(x.body))
		if err != nil {
			return nil, err
		}
		for k, vs := range bodyValues {
			values[k] = append(values[k], vs...)
		}
	}
	return values, nil
}

// authenticate checks the API key. Its messages never repeat the key that
// was presented.
func (x *exchange) authenticate() *apiError {
	want := x.e.secretKey
	if want == "" {
		return nil
	}
	got := ""
	if h := x.r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		got = strings.TrimSpace(strings.TrimPrefix(h, "Bearer "))
	} else if user, _, ok := x.r.BasicAuth(); ok {
		got = user
	}
	if got == "" {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			message: "You did not provide an API key. You need to provide your API key in the Authorization header, " +
				"using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). " +
				"See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/."}
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			message: "Invalid API Key provided. You can find your API keys at https://dashboard.stripe.com/apikeys."}
	}
	return nil
}

// claimIdempotency looks up the request's idempotency key. It returns the
// entry to complete when this request executes, a stored answer to replay,
// or a conflict error; all nil when the request has no key.
func (x *exchange) claimIdempotency() (claimed, replay *idemEntry, conflict *apiError) {
	if x.r.Method != http.MethodPost || x.rec.IdempotencyKey == "" {
		return nil, nil, nil
	}
	e := x.e
	key := idemKey{account: x.rec.Account, key: x.rec.IdempotencyKey}
	fp := x.r.Method + " " + x.r.URL.EscapedPath() + "?" + canonicalParams(x.r.URL.RawQuery, x.body)
	e.mu.Lock()
	defer e.mu.Unlock()
	entry := e.idem[key]
	switch {
	case entry == nil:
		entry = &idemEntry{fingerprint: fp}
		e.idem[key] = entry
		return entry, nil, nil
	case entry.fingerprint != fp:
		return nil, nil, &apiError{status: http.StatusBadRequest, typ: "idempotency_error",
			message: fmt.Sprintf("Keys for idempotent requests can only be used with the same parameters they were "+
				"first used with. Try using a key other than '%s' if you meant to execute a different request.",
				x.rec.IdempotencyKey)}
	case !entry.done:
		return nil, nil, &apiError{status: http.StatusConflict, typ: "idempotency_error", code: "idempotency_key_in_use",
			message: "There is currently another in-progress request using this Idempotency Key (that probably means " +
				"you submitted twice, and the other request is still going through): " + x.rec.IdempotencyKey +
				". Please try again later."}
	}
	return nil, entry, nil
}

// canonicalParams renders the parameters with sorted keys, so the same
// parameters in another order still match an idempotency key.
func canonicalParams(rawQuery string, body []byte) string {
	q, _ := url.ParseQuery(rawQuery)
	b, _ := url.ParseQuery(string(body))
	for k, vs := range b {
		q[k] = append(q[k], vs...)
	}
	return q.Encode()
}

func (e *Emulator) beginWriteLocked(key objectKey, requestID string, at time.Time) {
	for _, other := range e.inFlight[key] {
		e.overlaps = append(e.overlaps, Overlap{
			Account:         key.account,
			ObjectID:        key.id,
			FirstRequestID:  other,
			SecondRequestID: requestID,
			Time:            at,
		})
	}
	e.inFlight[key] = append(e.inFlight[key], requestID)
}

func (e *Emulator) endWrite(key objectKey, requestID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := e.inFlight[key]
	for i, id := range ids {
		if id == requestID {
			ids = append(ids[:i:i], ids[i+1:]...)
			break
		}
	}
	if len(ids) == 0 {
		delete(e.inFlight, key)
	} else {
		e.inFlight[key] = ids
	}
}

// finish answers with an error that was decided before the handler ran.
func (x *exchange) finish(err *apiError, lose bool) {
	x.respond(err.status, err.body(), lose)
}

// respond records the request, ends its write's time in flight, and writes
// the answer, or breaks the connection when lose is set. Recording and
// ending the write come first, so a client holding its answer always finds
// its request recorded, and its next write to the object is no overlap.
func (x *exchange) respond(status int, body []byte, lose bool) {
	x.rec.Status = status
	x.record()
	x.endWrite()
	if lose {
		loseResponse(x.w, status)
		return
	}
	h := x.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if x.rec.IdempotencyKey != "" && x.r.Method == http.MethodPost {
		h.Set("Idempotency-Key", x.rec.IdempotencyKey)
	}
	x.w.WriteHeader(status)
	_, _ = x.w.Write(body)
}

// endWrite takes the request's write out of the in-flight set, once.
func (x *exchange) endWrite() {
	if x.inFlight == nil {
		return
	}
	x.e.endWrite(*x.inFlight, x.rec.RequestID)
	x.inFlight = nil
}

func (x *exchange) record() {
	x.rec.Fault = strings.Join(x.faults, ",")
	e := x.e
	e.mu.Lock()
	e.requests = append(e.requests, x.rec)
	e.mu.Unlock()
	e.logger.Debug("stripe emulator request",
		"method", x.rec.Method, "path", x.rec.Path, "account", x.rec.Account,
		"status", x.rec.Status, "object_id", x.rec.ObjectID,
		"replayed", x.rec.Replayed, "fault", x.rec.Fault, "request_id", x.rec.RequestID)
}

// loseResponse breaks the connection after writing only the start of the
// status line. Closing without writing anything would not do: Go's
// transport silently resends a request carrying an Idempotency-Key when a
// reused connection closes before any byte arrives, hiding the fault.
func loseResponse(w http.ResponseWriter, status int) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 and other writers that cannot hijack: abort the stream.
		panic(http.ErrAbortHandler)
	}
	defer conn.Close()
	_ = buf.Flush()
	_, _ = fmt.Fprintf(conn, "HTTP/1.1 %d ", status)
}

// replayedObjectID returns the id of the object in a stored answer, or
// fallback when it holds none (an error).
func replayedObjectID(body []byte, fallback string) string {
	var obj struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &obj) == nil && obj.ID != "" {
		return obj.ID
	}
	return fallback
}

func sleepCtx(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func retryAfterSeconds(d time.Duration) string {
	if d <= 0 {
		return "1"
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}
