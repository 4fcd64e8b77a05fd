// Package ui is `syncctl ui [--addr 127.0.0.1:8080]`: River UI over the sync's
// database.
package ui

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/spf13/cobra"
	"riverqueue.com/riverui"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
)

// Environment variables holding the basic-auth credentials. They are never
// flags: a flag's value shows in `ps` to every user of the machine.
const (
	EnvUser     = "SYNCCTL_UI_USER"
	EnvPassword = "SYNCCTL_UI_PASSWORD"
)

// Options are ui's dependencies and flags.
type Options struct {
	Factory *cmdutil.Factory
	Addr    string
	// User and Password, when set, are required on every request. They come
	// from EnvUser and EnvPassword.
	User     string
	Password string
	// Ready, when set, receives the listening address (tests use port 0).
	Ready func(addr string)
}

// NewCmdUI returns the command; runF replaces the run in tests.
func NewCmdUI(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "ui [--addr 127.0.0.1:8080]",
		Short: "Serve River UI (jobs, queues, errors) over the sync's database",
		Long: `Serves River UI, River's web interface for inspecting, retrying and cancelling
jobs, over DATABASE_URL. River UI has no authentication of its own, so it binds
to loopback; reach it from elsewhere through an SSH tunnel. To bind to another
address, set ` + EnvUser + ` and ` + EnvPassword + ` in the environment:
every request then needs them (HTTP basic auth; put TLS in front of it).
Cross-site writes are refused, and on loopback only loopback host names are
served, so a web page cannot drive the UI from the operator's browser.`,
		Example: `  syncctl ui
  ssh -L 8080:127.0.0.1:8080 ops-host syncctl ui   # then open http://127.0.0.1:8080
  SYNCCTL_UI_USER=ops SYNCCTL_UI_PASSWORD=... syncctl ui --addr 0.0.0.0:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.User, opts.Password = f.Getenv(EnvUser), f.Getenv(EnvPassword)
			if (opts.User == "") != (opts.Password == "") {
				return cmdutil.Usagef("set both %s and %s, or neither", EnvUser, EnvPassword)
			}
			host, _, err := net.SplitHostPort(opts.Addr)
			if err != nil {
				return cmdutil.Usagef("--addr %q: want HOST:PORT, for example 127.0.0.1:8080", opts.Addr)
			}
			if !isLoopback(host) && opts.User == "" {
				return cmdutil.Usagef("--addr %s is not a loopback address and River UI has no authentication of its own: "+
					"set %s and %s to require basic auth, or bind to 127.0.0.1", opts.Addr, EnvUser, EnvPassword)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return uiRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "address to listen on (loopback unless "+EnvUser+"/"+EnvPassword+" are set)")
	return cmd
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func uiRun(ctx context.Context, opts *Options) error {
	io := opts.Factory.IO
	logger := slog.New(slog.NewTextHandler(io.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pool, err := opts.Factory.Pool(ctx, "syncctl ui")
	if err != nil {
		return err
	}
	// An insert-only client: River UI reads and edits jobs through it, and
	// works none.
	client, err := river.NewClient(riverpgxv5.New(pool), opts.Factory.RiverConfig(&river.Config{Logger: logger}))
	if err != nil {
		return err
	}
	uiHandler, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    logger,
	})
	if err != nil {
		return fmt.Errorf("river ui: %w", err)
	}
	if err := uiHandler.Start(ctx); err != nil {
		return fmt.Errorf("river ui: %w", err)
	}

	host, _, _ := net.SplitHostPort(opts.Addr)
	return cmdutil.Serve(ctx, opts.Addr, guard(uiHandler, isLoopback(host), opts.User, opts.Password), func(addr string) {
		fmt.Fprintf(io.ErrOut, "River UI on http://%s\n", addr)
		if opts.Ready != nil {
			opts.Ready(addr)
		}
	})
}

// guard wraps River UI, which trusts every request it gets: basic auth on
// every request when credentials are set; on loopback, only loopback host
// names (a DNS-rebinding page would send its own); and no cross-site writes
// (River UI can cancel, retry and delete jobs, and a page the operator visits
// could otherwise post to 127.0.0.1).
func guard(next http.Handler, loopback bool, user, password string) http.Handler {
	h := http.NewCrossOriginProtection().Handler(next)
	if loopback {
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !isLoopback(host) {
				http.Error(w, "syncctl ui serves loopback host names only", http.StatusForbidden)
				return
			}
			inner.ServeHTTP(w, r)
		})
	}
	if user == "" {
		return h
	}
	// Hashing first makes the comparison constant-time in the lengths too.
	wantUser, wantPassword := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	authed := h
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser, gotPassword := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		match := subtle.ConstantTimeCompare(gotUser[:], wantUser[:]) & subtle.ConstantTimeCompare(gotPassword[:], wantPassword[:])
		if !ok || match != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="syncctl ui", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		authed.ServeHTTP(w, r)
	})
}
