package ui

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/outbox"
)

const eventID = "0e000000-0000-4000-8000-000000000001"

func TestNewCmdUI(t *testing.T) {
	t.Parallel()
	creds := map[string]string{EnvUser: "ops", EnvPassword: "s3cret"}

	cmdtest.Command[Options]{NewCmd: NewCmdUI}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Defaults", Want: &Options{Addr: "127.0.0.1:8080"}},
		{Name: "IPv6Loopback", Args: []string{"--addr", "[::1]:9000"}, Want: &Options{Addr: "[::1]:9000"}},
		{Name: "Localhost", Args: []string{"--addr", "localhost:0"}, Want: &Options{Addr: "localhost:0"}},
		{Name: "CredentialsFromTheEnvironment", Env: creds, Want: &Options{Addr: "127.0.0.1:8080", User: "ops", Password: "s3cret"}},
		{Name: "NonLoopbackWithCredentials", Args: []string{"--addr", "0.0.0.0:8080"}, Env: creds,
			Want: &Options{Addr: "0.0.0.0:8080", User: "ops", Password: "s3cret"}},
		{Name: "NonLoopbackWithoutCredentials", Args: []string{"--addr", "0.0.0.0:8080"},
			WantUsage: "--addr 0.0.0.0:8080 is not a loopback address and River UI has no authentication of its own"},
		{Name: "AllInterfacesWithoutCredentials", Args: []string{"--addr", ":8080"}, WantUsage: "is not a loopback address"},
		{Name: "HostNameWithoutCredentials", Args: []string{"--addr", "ops.example.org:8080"}, WantUsage: "is not a loopback address"},
		{Name: "UserWithoutPassword", Env: map[string]string{EnvUser: "ops"}, WantUsage: "set both SYNCCTL_UI_USER and SYNCCTL_UI_PASSWORD, or neither"},
		{Name: "MalformedAddr", Args: []string{"--addr", "8080"}, WantUsage: `--addr "8080": want HOST:PORT`},
		{Name: "NoPasswordFlag", Args: []string{"--password", "x"}, WantCobraErr: "unknown flag: --password"},
	})
}

func TestUIRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// start inserts a job the way the project does and serves the UI on a
	// free loopback port, returning its base URL.
	start := func(t *testing.T, vars map[string]string) string {
		db := cmdtest.NewDB(t)
		db.Enqueue(t, outbox.Entity{Kind: outbox.KindEvent, ID: eventID})

		f, _, _ := cmdtest.Command[Options]{DatabaseURL: db.URL, Env: vars}.Factory(t, false)
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
