package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Control drives an Emulator served by another process (for example
// `syncctl stripe-emulator`) through its /_emulator/ routes.
type Control struct {
	// BaseURL is the emulator's root, for example "http://127.0.0.1:12111".
	BaseURL string
	// HTTP sends the requests. Defaults to http.DefaultClient.
	HTTP *http.Client
}

// State returns every object the emulator holds, by account.
func (c *Control) State(ctx context.Context) (*State, error) {
	var w stateWire
	if err := c.do(ctx, http.MethodGet, "/_emulator/state", nil, &w); err != nil {
		return nil, err
	}
	s := w.state()
	return &s, nil
}

// Requests returns the requests the emulator recorded.
func (c *Control) Requests(ctx context.Context) ([]RecordedRequest, error) {
	var out []RecordedRequest
	if err := c.do(ctx, http.MethodGet, "/_emulator/requests", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Stats returns the emulator's counts since its last reset.
func (c *Control) Stats(ctx context.Context) (*Stats, error) {
	var s Stats
	if err := c.do(ctx, http.MethodGet, "/_emulator/stats", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// AddFault adds f to the emulator's faults. Returns an error if the emulator
// rejects f (an unknown Kind, say).
func (c *Control) AddFault(ctx context.Context, f Fault) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("emulator control: %w", err)
	}
	return c.do(ctx, http.MethodPost, "/_emulator/faults", f, nil)
}

// ClearFaults removes every fault.
func (c *Control) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/_emulator/faults", nil, nil)
}

func (c *Control) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("emulator control %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("emulator control %s: %w", path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator control %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("emulator control %s: read answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("emulator control %s: status %d: %s", path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("emulator control %s: decode answer: %w", path, err)
		}
	}
	return nil
}
