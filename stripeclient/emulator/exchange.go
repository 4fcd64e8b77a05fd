package emulator

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxBody caps a request body; Stripe's parameters are small.
const maxBody = 1 << 20

// exchange is one API request on its way through the Emulator.
type exchange struct {
	e   *Emulator
	w   http.ResponseWriter
	r   *http.Request
	rec RecordedRequest

	body   []byte
	form   *form
	faults []string
	// locked is the object this write holds, until unlock.
	locked *objectKey
}

func (e *Emulator) newExchange(w http.ResponseWriter, r *http.Request) *exchange {
	return &exchange{
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
}

// serve answers the request in Stripe's order: authentication, parameters,
// rate limits, the object's lock, the idempotency key, then the endpoint.
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

	if err := e.refuseAccount(x.rec.Account); err != nil {
		x.finish(err, false)
		return
	}

	values, perr := x.params()
	if perr != nil {
		x.finish(errInvalid("", "", "Invalid request: the parameters could not be parsed."), false)
		return
	}
	x.form = parseForm(values)
	rt, routed := routeOf(r.Method, r.URL.EscapedPath())
	x.rec.Endpoint = rt.endpoint
	objectID := rt.id
	if rt.op == "product.create" {
		objectID, _, _ = x.form.str("id")
	}

	e.mu.Lock()
	if reason := e.limits.admit(x.rec.Time, rt.endpoint); reason != "" {
		e.injected[FaultRateLimit]++
		e.mu.Unlock()
		x.finish(errRateLimited(reason, time.Second), false)
		return
	}
	if x.rec.Write && routed && objectID != "" {
		key := objectKey{account: x.rec.Account, id: objectID}
		if !e.lockLocked(key, x.rec.RequestID, x.rec.Time) {
			e.mu.Unlock()
			x.rec.ObjectID = objectID
			x.finish(errLockTimeout(), false)
			return
		}
		x.locked = &key
		defer x.unlock()
	}
	latency, fault := e.pickFaults(r.Method, r.URL.Path, x.rec.Account)
	var delay time.Duration
	if latency != nil {
		delay = e.latencyOf(latency)
		x.faults = append(x.faults, string(FaultLatency))
	}
	e.mu.Unlock()
	if fault != nil {
		x.faults = append(x.faults, string(fault.Kind))
	}
	lose := fault != nil && fault.Kind == FaultResponseLost

	switch {
	case fault != nil && fault.Kind == FaultError500:
		if x.delay(delay, nil) {
			x.finish(err500(false), false)
		}
		return
	case fault != nil && fault.Kind == FaultRateLimit:
		if x.delay(delay, nil) {
			x.finish(errRateLimited("", fault.RetryAfter), false)
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
	claimed, replay, conflict := x.claimIdempotency()
	if conflict != nil {
		x.finish(conflict, lose)
		return
	}
	if !x.delay(delay, claimed) {
		return
	}
	if replay != nil {
		x.rec.Replayed = true
		x.w.Header().Set("Idempotent-Replayed", "true")
		x.rec.ObjectID = replayedObjectID(replay.body, objectID)
		x.respond(replay.status, replay.body, nil, lose)
		return
	}

	e.mu.Lock()
	if x.rec.Write {
		e.writes++
	}
	var (
		obj    any
		id     = objectID
		apiErr *apiError
	)
	stored500 := fault != nil && fault.Kind == FaultError500Stored
	if !stored500 || fault.Applied {
		obj, id, apiErr = e.handle(rt.op, &call{account: x.rec.Account, id: rt.id, form: x.form})
		e.emitLocked(rt.op, x.rec, obj, apiErr)
	}
	if stored500 {
		// The endpoint had started executing: the 500 is stored under the
		// key like any answer it gives.
		obj, apiErr = nil, err500(true)
	}
	status, respBody, header, stored := http.StatusOK, []byte(nil), http.Header(nil), true
	if apiErr != nil {
		status, respBody, header, stored = apiErr.status, apiErr.body(), apiErr.header, apiErr.stored
		x.rec.Code = apiErr.code
	} else {
		respBody = jsonBody(obj)
	}
	x.rec.ObjectID = id
	x.settleLocked(claimed, status, respBody, stored)
	e.mu.Unlock()
	x.respond(status, respBody, header, lose)
}

// delay sleeps for an injected latency. When the client goes away first it
// records the request as 499, gives up the idempotency key it claimed (the
// request never ran), and returns false.
func (x *exchange) delay(d time.Duration, claimed *idemEntry) bool {
	if d <= 0 || sleepCtx(x.r, d) {
		return true
	}
	x.e.mu.Lock()
	x.settleLocked(claimed, 0, nil, false)
	x.e.mu.Unlock()
	x.rec.Status = 499
	x.record()
	x.unlock()
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

// finish answers with an error decided before the endpoint ran.
func (x *exchange) finish(err *apiError, lose bool) {
	x.rec.Code = err.code
	x.respond(err.status, err.body(), err.header, lose)
}

// respond records the request, releases its object's lock, and writes the
// answer, or breaks the connection when lose is set. Recording and releasing
// come first, so a client holding its answer always finds its request
// recorded, and its next write to the object finds the lock free.
func (x *exchange) respond(status int, body []byte, header http.Header, lose bool) {
	x.rec.Status = status
	x.rec.RateLimitedReason = header.Get("Stripe-Rate-Limited-Reason")
	x.record()
	x.unlock()
	if lose {
		loseResponse(x.w, status)
		return
	}
	h := x.w.Header()
	for k, vs := range header {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if x.rec.IdempotencyKey != "" && x.r.Method == http.MethodPost {
		h.Set("Idempotency-Key", x.rec.IdempotencyKey)
	}
	x.w.WriteHeader(status)
	_, _ = x.w.Write(body)
}

// unlock releases the request's object lock, once.
func (x *exchange) unlock() {
	if x.locked == nil {
		return
	}
	x.e.unlock(*x.locked, x.rec.RequestID)
	x.locked = nil
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
