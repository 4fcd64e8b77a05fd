package emulator

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Options configures New.
type Options struct {
	// SecretKey, when set, is the only API key accepted: requests must carry
	// it as "Authorization: Bearer <key>" or as the user of Basic auth, or
	// get Stripe's 401. Defaults to empty, which accepts any request.
	SecretKey string
	// Clock gives created/updated times and the rate limits' window.
	// Defaults to time.Now.
	Clock func() time.Time
	// Logger receives one debug line per request. Defaults to nil, which
	// logs nothing.
	Logger *slog.Logger
	// Seed seeds the random source behind Fault.Probability and random
	// latencies, so a run with faults can be repeated. Defaults to 0.
	Seed uint64
}

// Emulator is the stateful Stripe imitation described in the package
// documentation. It is safe for concurrent use.
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
	locks    map[objectKey]string
	overlaps []Overlap
	faults   []*activeFault
	injected map[FaultKind]int
	limits   rateLimiter
	hooks    webhookState
}

// New returns an empty Emulator with no rate limit and no fault.
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
		locks:     map[objectKey]string{},
	}
	e.resetLocked()
	return e
}

// resetLocked empties every piece of state but the object locks of requests
// in flight. The caller holds e.mu (or owns e).
func (e *Emulator) resetLocked() {
	e.seq = 0
	e.accounts = map[string]*accountState{}
	e.idem = map[idemKey]*idemEntry{}
	e.requests = nil
	e.writes = 0
	e.overlaps = nil
	e.faults = nil
	e.injected = map[FaultKind]int{}
	e.limits = rateLimiter{}
	e.hooks.deauthorized = nil
}

// Reset forgets every object, idempotency key, recorded request, fault, count
// and rate limit, as if the Emulator were new. Requests in flight finish
// against the emptied state.
func (e *Emulator) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resetLocked()
}

// Products returns a copy of account's Products, sorted by Created then ID.
// An empty account is the platform.
func (e *Emulator) Products(account string) []stripeclient.Product {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.account(account, false).productList()
}

// Prices returns a copy of account's Prices, sorted by Created then ID.
func (e *Emulator) Prices(account string) []stripeclient.Price {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.account(account, false).priceList()
}

// Requests returns every API request answered since the last reset, in the
// order they were answered. Control routes under /_emulator/ are not
// recorded.
func (e *Emulator) Requests() []RecordedRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]RecordedRequest{}, e.requests...)
}

// WriteCount returns how many POST requests reached the endpoint: not
// refused by auth, a rate limit or an object's lock, not stopped by a fault
// before the endpoint, not to an unknown route, not an idempotent replay or
// conflict. A write the Emulator rejects as invalid still counts: it was
// attempted.
func (e *Emulator) WriteCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.writes
}

// ResetRequests forgets the recorded requests and what is counted from them:
// WriteCount, Overlaps and FaultsInjected. Objects, idempotency keys, faults
// and rate limits stay.
func (e *Emulator) ResetRequests() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests = nil
	e.writes = 0
	e.overlaps = nil
	e.injected = map[FaultKind]int{}
}

// ServeHTTP answers Stripe API requests under /v1/ and the control routes
// under /_emulator/.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_emulator" || strings.HasPrefix(r.URL.Path, "/_emulator/") {
		e.serveControl(w, r)
		return
	}
	e.newExchange(w, r).serve()
}
