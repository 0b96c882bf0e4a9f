package fault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// client is the load a fault test puts on the API. It retries what a careful
// client retries (503, connection errors, a 500 too, after counting it) with
// the same Idempotency-Key, and remembers every event the API acknowledged,
// which is what the invariants are checked against.
type client struct {
	t    *testing.T
	http *http.Client
	base atomic.Pointer[string]

	mu        sync.Mutex
	statuses  map[int]int       // every HTTP status answered, retries included
	netErrors int               // requests that got no HTTP answer
	bodies5xx []string          // first bodies of 5xx answers
	acked     map[string]posted // event id -> what was posted
}

// posted is one event the API acknowledged with a 2xx.
type posted struct {
	AccountID string
	Type      string
	Amount    int64
}

// eventIn is one event to post.
type eventIn struct {
	AccountID string         `json:"account_id"`
	Type      string         `json:"type"`
	Payload   map[string]any `json:"payload"`
}

func won(accountID string, amount int64) eventIn {
	return eventIn{AccountID: accountID, Type: "won", Payload: map[string]any{"amount": amount}}
}

func newClient(t *testing.T, addr string) *client {
	c := &client{
		t: t,
		http: &http.Client{
			Timeout:   60 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
		},
		statuses: map[int]int{},
		acked:    map[string]posted{},
	}
	c.setAddr(addr)
	t.Cleanup(c.http.CloseIdleConnections)
	return c
}

// setAddr points the client at a (restarted) server.
func (c *client) setAddr(addr string) {
	base := "http://" + addr
	c.base.Store(&base)
}

// do sends one request until it gets an answer that is not worth retrying,
// or ctx ends. It returns the final status and body.
func (c *client) do(ctx context.Context, method, path, key string, body []byte) (int, []byte, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, nil, fmt.Errorf("%s %s: gave up after %d attempts: %w", method, path, attempt, ctx.Err())
			case <-time.After(min(time.Duration(attempt)*50*time.Millisecond, 500*time.Millisecond)):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, *c.base.Load()+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
			}
			c.mu.Lock()
			c.netErrors++
			c.mu.Unlock()
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.mu.Lock()
		c.statuses[resp.StatusCode]++
		if resp.StatusCode >= 500 && len(c.bodies5xx) < 20 {
			c.bodies5xx = append(c.bodies5xx, fmt.Sprintf("%d %s %s: %s", resp.StatusCode, method, path, b))
		}
		c.mu.Unlock()
		if err != nil {
			continue
		}
		// Only a request with an Idempotency-Key is safe to send again.
		if resp.StatusCode >= 500 && (key != "" || method == http.MethodGet) {
			continue
		}
		return resp.StatusCode, b, nil
	}
}

// mustDo sends a request that must succeed with want.
func (c *client) mustDo(ctx context.Context, method, path string, in, out any, want int) {
	c.t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			c.t.Fatal(err)
		}
	}
	status, b, err := c.do(ctx, method, path, "", body)
	if err != nil {
		c.t.Fatal(err)
	}
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

// postEvents posts one event (POST /v1/events) or a batch, retrying with one
// Idempotency-Key until the API acknowledges it or ctx ends, and records what
// was acknowledged.
func (c *client) postEvents(ctx context.Context, events []eventIn) error {
	path, body := "/v1/events", any(nil)
	if len(events) == 1 {
		body = events[0]
	} else {
		path, body = "/v1/events/batch", map[string]any{"events": events}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	status, resp, err := c.do(ctx, http.MethodPost, path, newKey(), b)
	if err != nil {
		return err
	}
	if status != http.StatusAccepted {
		return fmt.Errorf("POST %s: status %d: %s", path, status, resp)
	}
	var ids []string
	if len(events) == 1 {
		var e struct {
			ID string `json:"id"`
		}
		err = json.Unmarshal(resp, &e)
		ids = []string{e.ID}
	} else {
		var out struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		err = json.Unmarshal(resp, &out)
		for _, e := range out.Events {
			ids = append(ids, e.ID)
		}
	}
	if err != nil || len(ids) != len(events) {
		return fmt.Errorf("POST %s: acknowledged %d of %d events (%v): %.200s", path, len(ids), len(events), err, resp)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		amount, _ := events[i].Payload["amount"].(int64)
		c.acked[id] = posted{AccountID: events[i].AccountID, Type: events[i].Type, Amount: amount}
	}
	return nil
}

// ackedEvents returns a copy of every acknowledged event.
func (c *client) ackedEvents() map[string]posted {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]posted, len(c.acked))
	for k, v := range c.acked {
		out[k] = v
	}
	return out
}

// statusReport says how many answers of each status the client got.
func (c *client) statusReport() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	codes := make([]int, 0, len(c.statuses))
	for code := range c.statuses {
		codes = append(codes, code)
	}
	sort.Ints(codes)
	parts := make([]string, 0, len(codes)+1)
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", code, c.statuses[code]))
	}
	parts = append(parts, fmt.Sprintf("no answer×%d", c.netErrors))
	return strings.Join(parts, " ")
}

// count500 returns how many 500s the client got, with the first bodies.
func (c *client) count500() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bodies []string
	for _, b := range c.bodies5xx {
		if strings.HasPrefix(b, "500 ") {
			bodies = append(bodies, b)
		}
	}
	return c.statuses[http.StatusInternalServerError], bodies
}

// bodiesContaining returns the 5xx bodies that contain substr.
func (c *client) bodiesContaining(substr string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, b := range c.bodies5xx {
		if strings.Contains(b, substr) {
			out = append(out, b)
		}
	}
	return out
}

func newKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rule is what a fault test creates through POST /v1/rules.
type rule struct {
	Name       string           `json:"name"`
	EventTypes []string         `json:"event_types,omitempty"`
	Scheduled  bool             `json:"scheduled,omitempty"`
	Condition  string           `json:"condition"`
	Actions    []map[string]any `json:"actions,omitempty"`
}

// createRules creates rules and returns their ids.
func (c *client) createRules(ctx context.Context, rules ...rule) []string {
	c.t.Helper()
	ids := make([]string, len(rules))
	for i, r := range rules {
		var out struct {
			ID string `json:"id"`
		}
		c.mustDo(ctx, http.MethodPost, "/v1/rules", r, &out, http.StatusCreated)
		ids[i] = out.ID
	}
	return ids
}

// createAccounts creates n accounts and returns their ids.
func (c *client) createAccounts(ctx context.Context, n int) []string {
	c.t.Helper()
	ids := make([]string, n)
	for i := range ids {
		var out struct {
			ID string `json:"id"`
		}
		c.mustDo(ctx, http.MethodPost, "/v1/accounts", map[string]any{"name": fmt.Sprintf("fault %d", i)}, &out, http.StatusCreated)
		ids[i] = out.ID
	}
	return ids
}
