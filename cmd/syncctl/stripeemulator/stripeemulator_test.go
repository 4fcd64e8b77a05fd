package stripeemulator

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

func TestNewCmdStripeEmulator(t *testing.T) {
	t.Parallel()
	got, err := cmdtest.Command[Options]{NewCmd: NewCmdStripeEmulator}.Parse(t, "--addr", "127.0.0.1:0")
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:0", got.Addr)
}

// The served emulator speaks Stripe to the project's own client, accepts
// only the configured key, and stops when its context ends.
func TestEmulatorRun(t *testing.T) {
	t.Parallel()
	const key = "sk_test_emulator_cmd_0123456789"
	f, _, errOut := cmdtest.Command[Options]{Env: map[string]string{"STRIPE_SECRET_KEY": key}}.Factory(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- emulatorRun(ctx, &Options{Factory: f, Addr: "127.0.0.1:0", Ready: func(a string) { addr <- a }})
	}()
	base := "http://" + <-addr

	sc, err := stripeclient.New(stripeclient.Options{SecretKey: key, APIBase: base})
	require.NoError(t, err)
	p, err := sc.CreateProduct(ctx, stripeclient.Call{Account: "acct_1"}, stripeclient.ProductParams{ID: "prod_cmd", Name: "Served", Active: true})
	require.NoError(t, err)
	require.Equal(t, "prod_cmd", p.ID)

	wrong, err := stripeclient.New(stripeclient.Options{SecretKey: "sk_test_wrong_key_987654321", APIBase: base})
	require.NoError(t, err)
	_, err = wrong.GetProduct(ctx, stripeclient.Call{Account: "acct_1"}, "prod_cmd")
	require.True(t, stripeclient.IsClass(err, stripeclient.ClassAuth), "got %v", err)

	state, err := (&emulator.Control{BaseURL: base}).State(ctx)
	require.NoError(t, err)
	require.Len(t, state.Accounts["acct_1"].Products, 1)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the emulator did not stop")
	}
	require.Contains(t, errOut.String(), "stripe emulator listening on http://127.0.0.1:")
	require.NotContains(t, errOut.String(), key)
}
