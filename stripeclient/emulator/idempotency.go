package emulator

import (
	"fmt"
	"net/http"
	"net/url"
)

// idemKey is an Idempotency-Key in its account's namespace.
type idemKey struct {
	account string
	key     string
}

// idemEntry is what the Emulator holds under an idempotency key: the
// request's parameters, and its answer once the endpoint has given one.
type idemEntry struct {
	fingerprint string
	done        bool
	status      int
	body        []byte
}

// claimIdempotency looks up the request's idempotency key (POSTs only). It
// returns the entry this request completes when it runs, a stored answer to
// replay, or the error Stripe answers: 400 idempotency_error for the key
// reused with other parameters, 409 idempotency_key_in_use while the key's
// first request still runs. All are nil when the request has no key.
func (x *exchange) claimIdempotency() (claimed, replay *idemEntry, conflict *apiError) {
	if x.r.Method != http.MethodPost || x.rec.IdempotencyKey == "" {
		return nil, nil, nil
	}
	e := x.e
	key := x.idemKey()
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

func (x *exchange) idemKey() idemKey {
	return idemKey{account: x.rec.Account, key: x.rec.IdempotencyKey}
}

// settleLocked stores the answer under the claimed key, or, for an answer
// Stripe does not store (a validation failure), gives the key up so a later
// request with it runs afresh. The caller holds e.mu.
func (x *exchange) settleLocked(claimed *idemEntry, status int, body []byte, stored bool) {
	if claimed == nil {
		return
	}
	if !stored {
		if key := x.idemKey(); x.e.idem[key] == claimed {
			delete(x.e.idem, key)
		}
		return
	}
	claimed.done, claimed.status, claimed.body = true, status, body
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
