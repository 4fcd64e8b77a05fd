package emulator

import (
	"maps"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// State is every object an Emulator holds, by account (the platform is the
// empty string).
type State struct {
	// Accounts holds only accounts with at least one object.
	Accounts map[string]AccountState
}

// AccountState is one account's objects, each sorted by Created then ID.
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

// State returns a copy of every object, by account.
func (e *Emulator) State() State {
	return e.stateWire().state()
}

// Stats returns the counts since the last reset.
func (e *Emulator) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Stats{
		WriteCount:     e.writes,
		RequestCount:   len(e.requests),
		FaultsInjected: maps.Clone(e.injected),
		Overlaps:       append([]Overlap{}, e.overlaps...),
	}
}

// stateWire is State's JSON form on the control routes: objects in Stripe's
// own shape.
type stateWire struct {
	Accounts map[string]accountWire `json:"accounts"`
}

type accountWire struct {
	Products []productJSON `json:"products"`
	Prices   []priceJSON   `json:"prices"`
}

func (e *Emulator) stateWire() stateWire {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := stateWire{Accounts: map[string]accountWire{}}
	for _, acct := range e.accountsLocked() {
		a := e.accounts[acct]
		w := accountWire{Products: []productJSON{}, Prices: []priceJSON{}}
		for _, p := range a.productList() {
			w.Products = append(w.Products, a.products[p.ID].render())
		}
		for _, p := range a.priceList() {
			w.Prices = append(w.Prices, a.prices[p.ID].render())
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
