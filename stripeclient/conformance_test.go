//go:build unix

package stripeclient

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stripeMockStartTimeout allows for the first `go tool stripe-mock`, which
// builds the tool before running it.
const stripeMockStartTimeout = 3 * time.Minute

// stripeMockKey is what stripe-mock accepts: any sk_test_ key.
const stripeMockKey = "sk_test_123"

// TestConformance_StripeMock runs every Client method against Stripe's
// official stripe-mock, which validates each request against Stripe's OpenAPI
// spec. stripe-mock is stateless (it answers with fixtures), so the subtests
// assert that requests are accepted and responses decode, not the values.
func TestConformance_StripeMock(t *testing.T) {
	t.Parallel()
	base := startStripeMock(t)
	ctx := context.Background()

	newClient := func(t *testing.T, key string) *StripeClient {
		t.Helper()
		c, err := New(Options{SecretKey: key, APIBase: base})
		require.NoError(t, err)
		return c
	}

	t.Run("EveryMethod", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, stripeMockKey)
		for name, call := range map[string]Call{
			"ConnectedWithScope": {Account: "acct_1Conformance", IdempotencyScope: "event:0b7e4c1e:v3"},
			// The key a retry after a 5xx sends (NeedsNewKey).
			"ConnectedSaltedKey": {Account: "acct_1Conformance", IdempotencyScope: "event:0b7e4c1e:v3", IdempotencySalt: "2"},
			"PlatformNoScope":    {},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				product, err := c.CreateProduct(ctx, call, ProductParams{
					ID: "prod_evt_0b7e4c1e", Name: "Grand Gala", Description: "A night to remember",
					Images: []string{"https://example.com/gala.png"}, Active: true,
					Metadata: map[string]string{"event_id": "0b7e4c1e", "event_start": "2026-05-01T19:00:00+10:00"},
				})
				require.NoError(t, err)
				require.NotEmpty(t, product.ID)
				require.NotEmpty(t, product.Name)

				product, err = c.CreateProduct(ctx, call, ProductParams{Name: "Bare", Active: false})
				require.NoError(t, err, "minimal create")
				require.NotEmpty(t, product.ID)

				product, err = c.UpdateProduct(ctx, call, "prod_evt_0b7e4c1e", ProductParams{
					Name: "Grand Gala 2", Description: "Updated", Images: []string{"https://example.com/a.png", "https://example.com/b.png"},
					Active: true, Metadata: map[string]string{"event_id": "0b7e4c1e", "removed": ""},
				})
				require.NoError(t, err)
				require.NotEmpty(t, product.ID)

				product, err = c.UpdateProduct(ctx, call, "prod_evt_0b7e4c1e", ProductParams{Name: "Cleared", Active: false})
				require.NoError(t, err, "update clearing description and images")
				require.NotEmpty(t, product.ID)

				product, err = c.ArchiveProduct(ctx, call, "prod_evt_0b7e4c1e")
				require.NoError(t, err)
				require.NotEmpty(t, product.ID)

				product, err = c.GetProduct(ctx, call, "prod_evt_0b7e4c1e")
				require.NoError(t, err)
				require.NotEmpty(t, product.ID)

				var products int
				require.NoError(t, c.ListProducts(ctx, call, func(p *Product) error {
					require.NotEmpty(t, p.ID)
					products++
					return nil
				}))
				require.Positive(t, products)

				price, err := c.CreatePrice(ctx, call, PriceParams{
					Product: "prod_evt_0b7e4c1e", Currency: "aud", UnitAmount: 4550, Nickname: "Adult",
					LookupKey: "ticket_5f1d", Active: true,
					Metadata: map[string]string{"ticket_id": "5f1d", "eligibility": `{"members":true}`},
				})
				require.NoError(t, err)
				require.NotEmpty(t, price.ID)
				require.NotEmpty(t, price.Currency)

				price, err = c.CreatePrice(ctx, call, PriceParams{Product: "prod_evt_0b7e4c1e", Currency: "jpy", UnitAmount: 0, Active: false})
				require.NoError(t, err, "free price without nickname or lookup key")
				require.NotEmpty(t, price.ID)

				price, err = c.UpdatePrice(ctx, call, "price_1", PriceParams{
					Nickname: "Adult (early)", LookupKey: "ticket_5f1d", Active: true,
					Metadata: map[string]string{"ticket_name": "Adult (early)"},
				})
				require.NoError(t, err)
				require.NotEmpty(t, price.ID)

				price, err = c.UpdatePrice(ctx, call, "price_1", PriceParams{Active: true})
				require.NoError(t, err, "update clearing nickname")
				require.NotEmpty(t, price.ID)

				price, err = c.ArchivePrice(ctx, call, "price_1")
				require.NoError(t, err)
				require.NotEmpty(t, price.ID)

				price, err = c.GetPrice(ctx, call, "price_1")
				require.NoError(t, err)
				require.NotEmpty(t, price.ID)
				require.NotEmpty(t, price.Product, "product id decoded from the unexpanded field")

				price, err = c.FindPriceByLookupKey(ctx, call, "ticket_5f1d")
				require.NoError(t, err)
				if price != nil {
					require.NotEmpty(t, price.ID)
				}

				for _, product := range []string{"prod_evt_0b7e4c1e", ""} {
					var prices int
					require.NoError(t, c.ListPrices(ctx, call, product, func(p *Price) error {
						require.NotEmpty(t, p.ID)
						prices++
						return nil
					}))
					require.Positive(t, prices)
				}
			})
		}
	})

	// The amounts jobs.UnitAmount lets through for Stripe's special
	// currencies (https://docs.stripe.com/currencies) are plain integers.
	t.Run("CurrencyRules", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, stripeMockKey)
		call := Call{Account: "acct_1Conformance", IdempotencyScope: "ticket:5f1d:v1"}
		for _, tc := range []struct {
			currency string
			amount   int64
		}{
			{"kwd", 5120}, {"bhd", 990}, {"isk", 4000}, {"huf", 199050}, {"twd", 35025}, {"jpy", 1500},
			{"aud", 99999999}, {"idr", 999999999999},
		} {
			price, err := c.CreatePrice(ctx, call, PriceParams{Product: "prod_evt_0b7e4c1e", Currency: tc.currency,
				UnitAmount: tc.amount, LookupKey: "ticket_5f1d", Active: true})
			require.NoError(t, err, "%d %s", tc.amount, tc.currency)
			require.NotEmpty(t, price.ID)
		}
	})

	// The negative control: stripe-mock does reject a malformed request, so
	// the acceptance above means something.
	t.Run("RejectsUnknownParameter", func(t *testing.T) {
		t.Parallel()
		form := url.Values{"name": {"Grand Gala"}, "not_a_stripe_param": {"1"}}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/products", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+stripeMockKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
		require.Contains(t, string(body), "invalid_request_error")

		// The same request without the unknown parameter is accepted.
		delete(form, "not_a_stripe_param")
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/products", strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+stripeMockKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp2, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp2.Body.Close()
		require.Equal(t, http.StatusOK, resp2.StatusCode)
	})

	// stripe-mock's 401 echoes the whole Authorization header back.
	t.Run("ScrubsEchoedKey", func(t *testing.T) {
		t.Parallel()
		// Assembled, so no live-looking key sits in the source for secret
		// scanners to flag; it is a fake all the same.
		liveKey := "sk_" + "live_" + "CONFORMANCEsecretXyZ42"
		c := newClient(t, liveKey)
		_, err := c.GetProduct(ctx, Call{Account: "acct_1Conformance"}, "prod_1")
		var se *Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, ClassAuth, se.Class)
		require.Equal(t, http.StatusUnauthorized, se.HTTPStatus)
		require.Contains(t, se.Message, "Authorization was 'Bearer [redacted]'")
		require.NotContains(t, err.Error(), "CONFORMANCEsecret")
	})
}

// startStripeMock runs `go tool stripe-mock` from the module root on a
// loopback port the system picks, waits until it answers, and stops it when
// t ends. It fails t (never skips) with stripe-mock's output if it cannot.
func startStripeMock(t *testing.T) string {
	t.Helper()
	root := moduleRoot(t)

	// Both addresses are given: with -http-addr alone stripe-mock still opens
	// HTTPS on the fixed port 12112 of every interface.
	cmd := exec.Command("go", "tool", "stripe-mock", "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	cmd.Dir = root
	// `go tool` runs the tool as its child: a process group lets cleanup
	// stop both.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	output := &stripeSyncBuffer{}
	cmd.Stderr = output
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)

	start := time.Now()
	require.NoError(t, cmd.Start(), "starting go tool stripe-mock")
	exited := make(chan struct{})
	addrs := make(chan string, 1)
	pattern := regexp.MustCompile(`Listening for HTTP at address: (\S+)`)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			line := scanner.Text()
			_, _ = output.Write([]byte(line + "\n"))
			if m := pattern.FindStringSubmatch(line); m != nil {
				addrs <- m[1]
			}
		}
		// Wait only once stdout is drained, as exec.Cmd requires.
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})

	var base string
	select {
	case addr := <-addrs:
		base = "http://" + addr
	case <-exited:
		t.Fatalf("stripe-mock exited before listening (%v):\n%s", cmd.ProcessState, output.String())
	case <-time.After(stripeMockStartTimeout):
		t.Fatalf("stripe-mock did not listen within %v:\n%s", stripeMockStartTimeout, output.String())
	}

	deadline := time.Now().Add(stripeMockStartTimeout - time.Since(start))
	for {
		err := pingStripeMock(base)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stripe-mock at %s never answered: %v\n%s", base, err, output.String())
		}
		select {
		case <-exited:
			t.Fatalf("stripe-mock exited (%v):\n%s", cmd.ProcessState, output.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Logf("stripe-mock ready at %s after %v", base, time.Since(start).Round(time.Millisecond))
	return base
}

func pingStripeMock(base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/products?limit=1", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+stripeMockKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// moduleRoot walks up from the test's directory to the one holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
