package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// State is every object an Emulator holds, by account (the platform
// is the empty string).
type State struct {
	// Accounts holds only accounts with at least one object.
	Accounts map[string]AccountState
}

// AccountState is one account's objects, each sorted by Created then
// ID.
type AccountState struct {
	// Products are the account's Products, archived ones included.
	Products []stripeclient.Product
	// Prices are the account's Prices, archived ones included.
	Prices []stripeclient.Price
}

// Stats is what an Emulator counted since its last reset.
type Stats struct {
	// WriteCount is Emulator.WriteCount.
	WriteCount int `json:"write_count"`
	// RequestCount is how many API requests were recorded.
	RequestCount int `json:"request_count"`
	// FaultsInjected is Emulator.FaultsInjected.
	FaultsInjected map[FaultKind]int `json:"faults_injected"`
	// Overlaps is Emulator.Overlaps.
	Overlaps []Overlap `json:"overlaps"`
}

// stateWire is State's JSON form: objects in Stripe's own shape.
type stateWire struct {
	Accounts map[string]accountWire `json:"accounts"`
}

type accountWire struct {
	Products []productJSON `json:"products"`
	Prices   []priceJSON   `json:"prices"`
}

// State returns a copy of every object, by account.
func (e *Emulator) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := State{Accounts: map[string]AccountState{}}
	for _, acct := range e.accountsLocked() {
		out.Accounts[acct] = AccountState{
			Products: e.productsLocked(acct),
			Prices:   e.pricesLocked(acct),
		}
	}
	return out
}

func (e *Emulator) stateWire() stateWire {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := stateWire{Accounts: map[string]accountWire{}}
	for _, acct := range e.accountsLocked() {
		a := e.accounts[acct]
		var w accountWire
		for _, p := range e.productsLocked(acct) {
			w.Products = append(w.Products, a.products[p.ID].render())
		}
		for _, p := range e.pricesLocked(acct) {
			w.Prices = append(w.Prices, a.prices[p.ID].render())
		}
		if w.Products == nil {
			w.Products = []productJSON{}
		}
		if w.Prices == nil {
			w.Prices = []priceJSON{}
		}
		out.Accounts[acct] = w
	}
	return out
}

func (w stateWire) state() State {
	out := State{Accounts: make(map[string]AccountState, len(w.Accounts))}
	for acct, a := range w.Accounts {
		s := AccountState{Products: []stripeclient.Product{}, Prices: []stripeclient.Price{}}
		for _, p := range a.Products {
			s.Products = append(s.Products, p.toProduct())
		}
		for _, p := range a.Prices {
			s.Prices = append(s.Prices, p.toPrice())
		}
		out.Accounts[acct] = s
	}
	return out
}

// Stats returns the counts since the last reset.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	injected := make(map[FaultKind]int, len(e.injected))
	for k, v := range e.injected {
		injected[k] = v
	}
	return Stats{
		WriteCount:     e.writes,
		RequestCount:   len(e.requests),
		FaultsInjected: injected,
		Overlaps:       append([]Overlap{}, e.overlaps...),
	}
}

// serveControl answers the /_emulator/ routes, which need no API key:
//
//	GET    /_emulator/state       objects by account, in Stripe's JSON shape
//	GET    /_emulator/requests    recorded requests
//	GET    /_emulator/stats       write_count, request_count, faults_injected, overlaps
//	POST   /_emulator/faults      add a Fault (JSON, snake_case)
//	DELETE /_emulator/faults      remove every fault
//	POST   /_emulator/rate-limit  {"per_second": N}
//	POST   /_emulator/reset       forget everything
func (e *Emulator) serveControl(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + strings.TrimSuffix(r.URL.Path, "/")
	switch route {
	case "GET /_emulator/state":
		writeControlJSON(w, http.StatusOK, e.stateWire())
	case "GET /_emulator/requests":
		writeControlJSON(w, http.StatusOK, e.Requests())
	case "GET /_emulator/stats":
		writeControlJSON(w, http.StatusOK, e.Stats())
	case "POST /_emulator/faults":
		var f Fault
		if err := decodeControlBody(r, &f); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return
		}
		e.AddFault(f)
		w.WriteHeader(http.StatusNoContent)
	case "DELETE /_emulator/faults":
		e.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case "POST /_emulator/rate-limit":
		var body struct {
			PerSecond *int `json:"per_second"`
		}
		if err := decodeControlBody(r, &body); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return
		}
		if body.PerSecond == nil || *body.PerSecond < 0 {
			writeControlError(w, http.StatusBadRequest, "per_second must be a number >= 0")
			return
		}
		e.SetRateLimit(*body.PerSecond)
		w.WriteHeader(http.StatusNoContent)
	case "POST /_emulator/reset":
		e.Reset()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeControlError(w, http.StatusNotFound, "no control route "+route)
	}
}

func decodeControlBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

func writeControlJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(jsonBody(v))
}

func writeControlError(w http.ResponseWriter, status int, msg string) {
	writeControlJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
}

// Control drives an Emulator served by another process (for example
// `syncctl stripe-emulator`) through its /_emulator/ routes.
type Control struct {
	// BaseURL is the emulator's root, for example "http://127.0.0.1:12111".
	BaseURL string
	// HTTP sends the requests. Defaults to http.DefaultClient.
	HTTP *http.Client
}

// State returns every object the emulator holds, by account.
func (c *Control) State(ctx context.Context) (*State, error) {
	var w stateWire
	if err := c.do(ctx, http.MethodGet, "/_emulator/state", nil, &w); err != nil {
		return nil, err
	}
	s := w.state()
	return &s, nil
}

// Requests returns the requests the emulator recorded.
func (c *Control) Requests(ctx context.Context) ([]RecordedRequest, error) {
	var out []RecordedRequest
	if err := c.do(ctx, http.MethodGet, "/_emulator/requests", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Stats returns the emulator's counts since its last reset.
func (c *Control) Stats(ctx context.Context) (*Stats, error) {
	var s Stats
	if err := c.do(ctx, http.MethodGet, "/_emulator/stats", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// AddFault adds f to the emulator's faults. Returns an error if the emulator
// rejects f (an unknown Kind, say).
func (c *Control) AddFault(ctx context.Context, f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("emulator control: %w", err)
	}
	return c.do(ctx, http.MethodPost, "/_emulator/faults", f, nil)
}

// ClearFaults removes every fault.
func (c *Control) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/_emulator/faults", nil, nil)
}

// SetRateLimit sets the emulator's requests-per-second limit; 0 turns it off.
func (c *Control) SetRateLimit(ctx context.Context, perSecond int) error {
	return c.do(ctx, http.MethodPost, "/_emulator/rate-limit", map[string]int{"per_second": perSecond}, nil)
}

// Reset makes the emulator forget everything.
func (c *Control) Reset(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/_emulator/reset", nil, nil)
}

func (c *Control) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("emulator control %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("emulator control %s: %w", path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator control %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("emulator control %s: read answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("emulator control %s: status %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("emulator control %s: decode answer: %w", path, err)
		}
	}
	return nil
}
