package cmdutil

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestServe(t *testing.T) {
	t.Parallel()

	t.Run("ServesUntilTheContextEnds", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		addrc := make(chan string, 1)
		done := make(chan error, 1)
		hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") })
		go func() { done <- Serve(ctx, "127.0.0.1:0", hello, func(addr string) { addrc <- addr }) }()
		var addr string
		select {
		case addr = <-addrc:
		case err := <-done:
			t.Fatalf("Serve returned before it was ready: %v", err)
		}

		resp, err := http.Get("http://" + addr)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, "hello", string(body))

		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, "a cancelled context is a clean shutdown")
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after its context ended")
		}
	})

	t.Run("AddressInUseIsUsage", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		err = Serve(context.Background(), ln.Addr().String(), http.NotFoundHandler(), func(string) {
			t.Error("ready called without a listener")
		})
		require.ErrorContains(t, err, "listen on "+ln.Addr().String())
		require.Equal(t, 2, ExitCode(err))
	})
}
