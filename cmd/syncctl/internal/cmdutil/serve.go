package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Serve serves handler on addr until ctx ends (root.Main ends it on SIGINT
// or SIGTERM), then shuts down, giving requests in flight 5 seconds. ready, when
// set, is called with the listening address once it accepts connections
// (tests listen on port 0). Returns nil after that shutdown, a *UsageError
// if addr cannot be listened on, or the error that stopped the server.
func Serve(ctx context.Context, addr string, handler http.Handler, ready func(addr string)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return &UsageError{Err: fmt.Errorf("listen on %s: %w", addr, err)}
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
