package ui

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/testdb"
	"github.com/lodgetix/stripe-sync/outbox"
)

const eventID = "0e000000-0000-4000-8000-000000000001"

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestNewCmdUI(t *testing.T) {
	t.Parallel()
	creds := map[string]string{EnvUser: "ops", EnvPassword: "s3cret"}

	for _, tt := range []struct {
		name      string
		args      []string
		env       map[string]string
		want      *Options
		wantUsage string
	}{
		{name: "Defaults", want: &Options{Addr: "127.0.0.1:8080"}},
		{name: "IPv6Loopback", args: []string{"--addr", "[::1]:9000"}, want: &Options{Addr: "[::1]:9000"}},
		{name: "Localhost", args: []string{"--addr", "localhost:0"}, want: &Options{Addr: "localhost:0"}},
		{name: "CredentialsFromTheEnvironment", env: creds, want: &Options{Addr: "127.0.0.1:8080", User: "ops", Password: "s3cret"}},
		{name: "NonLoopbackWithCredentials", args: []string{"--addr", "0.0.0.0:8080"}, env: creds,
			want: &Options{Addr: "0.0.0.0:8080", User: "ops", Password: "s3cret"}},
		{name: "NonLoopbackWithoutCredentials", args: []string{"--addr", "0.0.0.0:8080"},
			wantUsage: "--addr 0.0.0.0:8080 is not a loopback address and River UI has no authentication of its own"},
		{name: "AllInterfacesWithoutCredentials", args: []string{"--addr", ":8080"}, wantUsage: "is not a loopback address"},
		{name: "HostNameWithoutCredentials", args: []string{"--addr", "ops.example.org:8080"}, wantUsage: "is not a loopback address"},
		{name: "UserWithoutPassword", env: map[string]string{EnvUser: "ops"}, wantUsage: "set both SYNCCTL_UI_USER and SYNCCTL_UI_PASSWORD, or neither"},
		{name: "MalformedAddr", args: []string{"--addr", "8080"}, wantUsage: `--addr "8080": want HOST:PORT`},
		{name: "NoPasswordFlag", args: []string{"--password", "x"}, wantUsage: "unknown flag: --password"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			streams, _, _ := cmdutil.Test(false)
			var got *Options
			cmd := NewCmdUI(cmdutil.NewFactory(streams, env(tt.env)), func(_ context.Context, o *Options) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			cmd.SetOut(streams.Out)
			cmd.SetErr(streams.ErrOut)
			err := cmd.Execute()
			if tt.wantUsage != "" {
				require.ErrorContains(t, err, tt.wantUsage)
				if tt.name != "NoPasswordFlag" { // cobra's own error is mapped to 2 by root.Main
					require.Equal(t, 2, cmdutil.ExitCode(err))
				}
				return
			}
			require.NoError(t, err)
			got.Factory = nil
			require.Equal(t, tt.want, got)
		})
	}
}

func TestUIRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// start inserts a job the way the project does and serves the UI on a
	// free loopback port, returning its base URL.
	start := func(t *testing.T, vars map[string]string) string {
		url := testdb.URL(t)
		pool, err := pgxpool.New(ctx, url)
		require.NoError(t, err)
		t.Cleanup(pool.Close)
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
		require.NoError(t, err)
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := outbox.Enqueue(ctx, client, tx, outbox.Entity{Kind: outbox.KindEvent, ID: eventID})
			return err
		}))

		streams, _, _ := cmdutil.Test(false)
		f := cmdutil.NewFactory(streams, env(vars))
		f.DatabaseURL = url
		t.Cleanup(f.Close)
		addrc := make(chan string, 1)
		cmd := NewCmdUI(f, func(ctx context.Context, o *Options) error {
			o.Ready = func(addr string) { addrc <- addr }
			return uiRun(ctx, o)
		})
		cmd.SetArgs([]string{"--addr", "127.0.0.1:0"})
		runCtx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- cmd.ExecuteContext(runCtx) }()
		t.Cleanup(func() {
			cancel()
			require.NoError(t, <-errc, "the server shuts down cleanly")
		})
		select {
		case addr := <-addrc:
			return "http://" + addr
		case err := <-errc:
			t.Fatalf("ui exited before serving: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("ui did not start within 30s")
		}
		return ""
	}
	get := func(t *testing.T, url string, header http.Header, user, password string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		require.NoError(t, err)
		for k, v := range header {
			req.Header[k] = v
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	html := http.Header{"Accept": {"text/html"}}

	t.Run("PageAndJobsAPIListOurJob", func(t *testing.T) {
		t.Parallel()
		base := start(t, nil)

		status, body := get(t, base+"/jobs?state=available", html, "", "")
		require.Equal(t, http.StatusOK, status)
		require.Contains(t, body, "<title>River</title>")

		status, body = get(t, base+"/api/jobs?state=available", nil, "", "")
		require.Equal(t, http.StatusOK, status, body)
		var doc struct {
			Data []struct {
				Kind  string          `json:"kind"`
				Queue string          `json:"queue"`
				Args  json.RawMessage `json:"args"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &doc))
		require.Len(t, doc.Data, 1)
		require.Equal(t, "stripe_sync_event", doc.Data[0].Kind)
		require.Equal(t, outbox.Queue, doc.Data[0].Queue)
		var args string // River UI sends the args as the JSON text River stored
		require.NoError(t, json.Unmarshal(doc.Data[0].Args, &args))
		require.JSONEq(t, `{"event_id": "`+eventID+`"}`, args)
	})

	t.Run("CredentialsRequiredOnEveryRequest", func(t *testing.T) {
		t.Parallel()
		base := start(t, map[string]string{EnvUser: "ops", EnvPassword: "s3cret"})

		for _, path := range []string{"/", "/api/jobs?state=available", "/api/health-checks/minimal"} {
			status, _ := get(t, base+path, html, "", "")
			require.Equal(t, http.StatusUnauthorized, status, path)
		}
		status, _ := get(t, base+"/api/jobs?state=available", nil, "ops", "wrong")
		require.Equal(t, http.StatusUnauthorized, status)
		status, _ = get(t, base+"/api/jobs?state=available", nil, "ops", "s3cret")
		require.Equal(t, http.StatusOK, status)
	})

	t.Run("NoCrossSiteWritesNoForeignHosts", func(t *testing.T) {
		t.Parallel()
		base := start(t, nil)

		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/jobs/cancel", strings.NewReader(`{"ids":["1"]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "https://attacker.example")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode)

		// The same request from the UI's own page goes through to River UI.
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/jobs/cancel", strings.NewReader(`{"ids":["1"]}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)

		req, err = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/jobs?state=available", nil)
		require.NoError(t, err)
		req.Host = "rebound.attacker.example"
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, "a DNS-rebinding page sends its own host name")
	})
}
