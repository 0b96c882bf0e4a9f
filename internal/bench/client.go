package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// newClient returns the client the run talks to the server with, keeping
// enough connections open for concurrency requests in flight.
func newClient(concurrency int) *http.Client {
	return &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{
			Proxy:               nil, // loopback only: never through a proxy
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        concurrency * 2,
			MaxIdleConnsPerHost: concurrency * 2,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
}

// checkServer makes sure a ready server answers at the URL.
func (r *runner) checkServer(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("no ctrader server answers at %s (start one with ctrader serve, or pass --url): %w", r.base, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the server at %s is not ready: /readyz answered %s", r.base, resp.Status)
	}
	return nil
}

// call sends one JSON request for setup or cleanup, retrying on 429 and 503
// as the server asks, and decodes a 2xx answer into out.
func (r *runner) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		req, err := r.newRequest(ctx, method, path, body)
		if err != nil {
			return err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			if out != nil {
				if err := json.Unmarshal(data, out); err != nil {
					return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
				}
			}
			return nil
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 10:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(min(s, 10)) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		default:
			return fmt.Errorf("%s %s answered %s: %s%s", method, path, resp.Status, snippet(data), hint(resp.StatusCode))
		}
	}
}

// newRequest builds a request to the server that carries the run's token,
// and body as JSON when there is one.
func (r *runner) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.Token)
	}
	return req, nil
}

func hint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return " (pass --token or BENCH_TOKEN, or set AUTH_HS256_SECRET to the server's so one is minted)"
	case http.StatusForbidden:
		return " (the bench creates rules, which needs a token with the admin scope)"
	case http.StatusTooManyRequests:
		return " (the server limits writes per client: start it with WRITE_RATE_LIMIT=0 to benchmark)"
	}
	return ""
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// post sends one event request. It returns the status (0 when no answer
// came), the ids of the stored events on success, and otherwise a short
// description of what went wrong and the Retry-After of a 503 (capped at a
// minute).
func (r *runner) post(ctx context.Context, path string, body []byte) (int, []uuid.UUID, string, time.Duration) {
	req, err := r.newRequest(ctx, http.MethodPost, path, body)
	if err != nil {
		return 0, nil, err.Error(), 0
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err.Error(), 0
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err.Error(), 0
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var wait time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 && resp.StatusCode == http.StatusServiceUnavailable {
			wait = time.Duration(min(s, 60)) * time.Second
		}
		return resp.StatusCode, nil, resp.Status + ": " + snippet(data), wait
	}
	var out struct {
		ID     uuid.UUID `json:"id"`
		Events []struct {
			ID uuid.UUID `json:"id"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, nil, "decode answer: " + err.Error(), 0
	}
	if out.Events == nil {
		return resp.StatusCode, []uuid.UUID{out.ID}, "", 0
	}
	ids := make([]uuid.UUID, len(out.Events))
	for i, e := range out.Events {
		ids[i] = e.ID
	}
	return resp.StatusCode, ids, "", 0
}
