package emulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"
)

// FaultKind is what an injected Fault does to a request.
type FaultKind string

const (
	// FaultError500 answers 500 api_error before the endpoint starts
	// executing: nothing is written and nothing is stored under the
	// request's Idempotency-Key, so a retry with the key runs afresh.
	FaultError500 FaultKind = "error_500"
	// FaultError500Stored answers 500 api_error after the endpoint started
	// executing, as Stripe does when it fails mid-request: the 500 is stored
	// under the request's Idempotency-Key and replayed, with
	// Idempotent-Replayed: true, to every later request with that key
	// (https://docs.stripe.com/api/idempotent_requests). Nothing is written
	// unless Fault.Applied is set.
	FaultError500Stored FaultKind = "error_500_stored"
	// FaultResponseLost performs the request fully (a write is applied and
	// its idempotent result stored), then breaks the connection before the
	// response is complete, so the client sees a network error.
	FaultResponseLost FaultKind = "response_lost"
	// FaultRateLimit answers 429 with Stripe's rate_limit error and a
	// Retry-After header, before anything is written.
	FaultRateLimit FaultKind = "rate_limit"
	// FaultLatency delays the request by Fault.Latency (or a random duration
	// between Latency and LatencyMax), then handles it normally. It combines
	// with one other kind of fault on the same request.
	FaultLatency FaultKind = "latency"
)

func (k FaultKind) valid() bool {
	switch k {
	case FaultError500, FaultError500Stored, FaultResponseLost, FaultRateLimit, FaultLatency:
		return true
	}
	return false
}

// Fault is a failure the Emulator injects into matching API requests.
// Faults are consulted in the order they were added; a request gets at most
// one FaultLatency and at most one other fault, each from the first matching
// Fault of its category that applies.
type Fault struct {
	// Kind is what the fault does. An Emulator ignores a Fault of an
	// unknown Kind.
	Kind FaultKind
	// Method matches the request method (case-insensitive). Defaults to any.
	Method string
	// PathPrefix matches the start of the request path, for example
	// "/v1/products". Defaults to any.
	PathPrefix string
	// Account matches the Stripe-Account header exactly. Defaults to any
	// account, the platform included.
	Account string
	// Times is how many matching requests the fault applies to before it
	// is used up. Defaults to 0, which applies it until ClearFaults.
	Times int
	// Probability is the fraction of matching requests the fault applies
	// to, drawn from a source seeded with Options.Seed. Defaults to
	// 0, which applies it to every matching request.
	Probability float64
	// Latency is FaultLatency's delay.
	Latency time.Duration
	// LatencyMax, when greater than Latency, makes FaultLatency's delay a
	// random duration between Latency and LatencyMax.
	LatencyMax time.Duration
	// RetryAfter is the Retry-After header of FaultRateLimit, rounded up to
	// whole seconds. Defaults to one second.
	RetryAfter time.Duration
	// Applied makes FaultError500Stored apply the write before answering
	// 500: a 500 from Stripe leaves the request's outcome unknown. Defaults
	// to false: nothing is written.
	Applied bool
}

// faultWire is Fault's JSON form on the control surface.
type faultWire struct {
	Kind         FaultKind `json:"kind"`
	Method       string    `json:"method,omitempty"`
	PathPrefix   string    `json:"path_prefix,omitempty"`
	Account      string    `json:"account,omitempty"`
	Times        int       `json:"times,omitempty"`
	Probability  float64   `json:"probability,omitempty"`
	LatencyMS    int64     `json:"latency_ms,omitempty"`
	LatencyMaxMS int64     `json:"latency_max_ms,omitempty"`
	RetryAfterS  int64     `json:"retry_after_s,omitempty"`
	Applied      bool      `json:"applied,omitempty"`
}

// MarshalJSON encodes f with snake_case names and durations as latency_ms,
// latency_max_ms and retry_after_s.
func (f Fault) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultWire{
		Kind:         f.Kind,
		Method:       f.Method,
		PathPrefix:   f.PathPrefix,
		Account:      f.Account,
		Times:        f.Times,
		Probability:  f.Probability,
		LatencyMS:    f.Latency.Milliseconds(),
		LatencyMaxMS: f.LatencyMax.Milliseconds(),
		RetryAfterS:  int64((f.RetryAfter + time.Second - 1) / time.Second),
		Applied:      f.Applied,
	})
}

// UnmarshalJSON decodes the form MarshalJSON writes. Returns an error for an
// unknown field or Kind, a negative Times, or a Probability outside [0, 1].
func (f *Fault) UnmarshalJSON(b []byte) error {
	var w faultWire
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return fmt.Errorf("decode fault: %w", err)
	}
	*f = Fault{
		Kind:        w.Kind,
		Method:      w.Method,
		PathPrefix:  w.PathPrefix,
		Account:     w.Account,
		Times:       w.Times,
		Probability: w.Probability,
		Latency:     time.Duration(w.LatencyMS) * time.Millisecond,
		LatencyMax:  time.Duration(w.LatencyMaxMS) * time.Millisecond,
		RetryAfter:  time.Duration(w.RetryAfterS) * time.Second,
		Applied:     w.Applied,
	}
	return f.validate()
}

func (f Fault) validate() error {
	switch {
	case !f.Kind.valid():
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	case f.Times < 0:
		return fmt.Errorf("fault times %d is negative", f.Times)
	case f.Probability < 0 || f.Probability > 1:
		return fmt.Errorf("fault probability %v is outside [0, 1]", f.Probability)
	case f.Latency < 0 || f.LatencyMax < 0 || f.RetryAfter < 0:
		return fmt.Errorf("fault durations must not be negative")
	}
	return nil
}

// activeFault is an added Fault with its remaining uses.
type activeFault struct {
	Fault
	remaining int
}

func (f *activeFault) matches(method, path, account string) bool {
	return (f.Method == "" || strings.EqualFold(f.Method, method)) &&
		strings.HasPrefix(path, f.PathPrefix) &&
		(f.Account == "" || f.Account == account)
}

// AddFault appends f to the faults consulted for every API request (not the
// /_emulator/ control routes). An invalid Fault (unknown Kind, negative Times
// or durations, Probability outside [0, 1]) is logged and ignored; the
// control route refuses it with 400 instead.
func (e *Emulator) AddFault(f Fault) {
	if err := f.validate(); err != nil {
		e.logger.Warn("stripe emulator: ignoring invalid fault", "error", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, &activeFault{Fault: f, remaining: f.Times})
}

// ClearFaults removes every fault. FaultsInjected keeps its counts.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
}

// FaultsInjected returns how many requests each kind of fault was applied
// to, requests refused by SetRateLimit's limits counted under FaultRateLimit.
func (e *Emulator) FaultsInjected() map[FaultKind]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.injected)
}

// pickFaults chooses the faults for one request and uses them up. The
// caller holds e.mu.
func (e *Emulator) pickFaults(method, path, account string) (latency, other *Fault) {
	kept := e.faults[:0]
	for _, f := range e.faults {
		applied := false
		isLatency := f.Kind == FaultLatency
		if ((isLatency && latency == nil) || (!isLatency && other == nil)) && f.matches(method, path, account) &&
			(f.Probability == 0 || e.rng.Float64() < f.Probability) {
			applied = true
			picked := f.Fault
			if isLatency {
				latency = &picked
			} else {
				other = &picked
			}
			e.injected[f.Kind]++
		}
		if applied && f.Times > 0 {
			f.remaining--
			if f.remaining <= 0 {
				continue
			}
		}
		kept = append(kept, f)
	}
	for i := len(kept); i < len(e.faults); i++ {
		e.faults[i] = nil
	}
	e.faults = kept
	return latency, other
}

// latencyOf returns the delay of a FaultLatency. The caller holds e.mu.
func (e *Emulator) latencyOf(f *Fault) time.Duration {
	d := f.Latency
	if f.LatencyMax > f.Latency {
		d += time.Duration(e.rng.Int64N(int64(f.LatencyMax - f.Latency + 1)))
	}
	return d
}
