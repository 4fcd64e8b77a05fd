package e2e

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// refusingProxy stands between the workers and the emulator and, while an
// account is set, answers every request on that account the way Stripe
// answers for an account that deauthorised the platform (403
// account_invalid).
type refusingProxy struct {
	url     string
	account atomic.Pointer[string]
	refused atomic.Int64
}

func startRefusingProxy(t *testing.T, target string) *refusingProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &refusingProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	// A lost answer (the emulator dropped the connection) must stay lost,
	// not become the proxy's 502: the worker treats the two differently.
	proxy.ErrorHandler = func(http.ResponseWriter, *http.Request, error) { panic(http.ErrAbortHandler) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if acct := p.account.Load(); acct != nil && r.Header.Get("Stripe-Account") == *acct {
			p.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"error": {"type": "invalid_request_error", "code": "account_invalid", "message": "The provided key does not have access to account '%s' (or that account does not exist). Application access may have been revoked."}}`, *acct)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// refuse makes account refuse every request; "" stops refusing.
func (p *refusingProxy) refuse(account string) {
	if account == "" {
		p.account.Store(nil)
		return
	}
	p.account.Store(&account)
}
