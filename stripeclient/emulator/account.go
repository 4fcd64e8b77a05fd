package emulator

import (
	"cmp"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// accountState is one account's objects.
type accountState struct {
	products map[string]*productRecord
	prices   map[string]*priceRecord
	// lookupKeys maps a lookup key to the id of the Price holding it.
	lookupKeys map[string]string
}

// noAccount is the state of an account never written to: its nil maps read
// as empty, and nothing writes to it.
var noAccount = &accountState{}

// account returns the state of account, creating it when create is true;
// for an account never written to it returns noAccount when create is false.
// The caller holds e.mu.
func (e *Emulator) account(account string, create bool) *accountState {
	a := e.accounts[account]
	if a == nil && !create {
		return noAccount
	}
	if a == nil {
		a = &accountState{
			products:   map[string]*productRecord{},
			prices:     map[string]*priceRecord{},
			lookupKeys: map[string]string{},
		}
		e.accounts[account] = a
	}
	return a
}

// accountsLocked returns the accounts holding at least one object, sorted.
// The caller holds e.mu.
func (e *Emulator) accountsLocked() []string {
	out := make([]string, 0, len(e.accounts))
	for id, a := range e.accounts {
		if len(a.products)+len(a.prices) > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// productList returns copies of the account's Products, sorted by Created
// then ID.
func (a *accountState) productList() []stripeclient.Product {
	out := []stripeclient.Product{}
	for _, p := range sortedRecords(a.products) {
		out = append(out, p.render().toProduct())
	}
	return out
}

// priceList is productList for Prices.
func (a *accountState) priceList() []stripeclient.Price {
	out := []stripeclient.Price{}
	for _, p := range sortedRecords(a.prices) {
		out = append(out, p.render().toPrice())
	}
	return out
}

// sortedRecords returns the records of m sorted by Created then ID.
func sortedRecords[R record](m map[string]R) []R {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(x, y R) int {
		return cmp.Or(cmp.Compare(x.createdAt(), y.createdAt()), strings.Compare(x.objectID(), y.objectID()))
	})
	return out
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// newID returns prefix plus 14 random alphanumerics, like Stripe's ids.
func newID(prefix string) string {
	b := make([]byte, 14)
	for i := range b {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return prefix + string(b)
}
