package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Webhooks is what the receiver of a --webhook run saw: one delivery per
// accepted event is expected, each counted once by its webhook-id.
type Webhooks struct {
	Expected int `json:"expected"`
	Received int `json:"received"`
	// Requests counts every request, repeated attempts included.
	Requests int `json:"requests"`
	// Seconds runs from the first POST to the last new delivery.
	Seconds             float64 `json:"seconds"`
	DeliveriesPerSecond float64 `json:"deliveries_per_second"`
}

// receiver answers webhook deliveries 204 at once, on a loopback port of
// the bench's own, and counts them.
type receiver struct {
	srv *http.Server
	url string

	mu       sync.Mutex
	seen     map[string]struct{}
	requests int
	last     time.Time
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	rc := &receiver{url: "http://" + ln.Addr().String() + "/hook", seen: make(map[string]struct{})}
	rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = rc.srv.Serve(ln) }()
	return rc, nil
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, io.LimitReader(req.Body, 1<<20))
	id := req.Header.Get("webhook-id")
	rc.mu.Lock()
	rc.requests++
	if _, ok := rc.seen[id]; !ok && id != "" {
		rc.seen[id] = struct{}{}
		rc.last = time.Now()
	}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) counts() (received, requests int, last time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.seen), rc.requests, rc.last
}

// stop ends the receiver once the run has counted every delivery: answers
// under way get a second, then every connection is closed, also one the
// server's client dialed and never used, which Shutdown alone would wait
// five seconds for and then leave open.
func (rc *receiver) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = rc.srv.Shutdown(ctx)
	_ = rc.srv.Close()
}

// createMatchAllRule creates a rule on won events that matches every one:
// with no action (--match-all) or, with rc, a webhook action to an endpoint
// at rc (--webhook). It returns the rule's id and, for a webhook, the
// endpoint's; either may be set on error, to be deleted.
func (r *runner) createMatchAllRule(ctx context.Context, rc *receiver) (rule, endpoint uuid.UUID, err error) {
	actions := []map[string]any{}
	if rc != nil {
		var ep struct {
			ID uuid.UUID `json:"id"`
		}
		in := map[string]any{"url": rc.url, "description": "ctrader bench run " + r.runID}
		if err := r.call(ctx, http.MethodPost, "/v1/webhook-endpoints", in, &ep); err != nil {
			return uuid.Nil, uuid.Nil, fmt.Errorf("create the webhook endpoint: %w", err)
		}
		endpoint = ep.ID
		actions = append(actions, map[string]any{"type": "webhook", "endpoint_id": ep.ID})
	}
	rule, err = r.createRule(ctx, fmt.Sprintf("bench-%s-all", r.runID), "true", actions)
	if err != nil {
		return uuid.Nil, endpoint, fmt.Errorf("create the match-all rule: %w", err)
	}
	return rule, endpoint, nil
}

// deleteEndpoint deletes the run's webhook endpoint, after its rule.
func (r *runner) deleteEndpoint(parent context.Context, id uuid.UUID) {
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	defer cancel()
	if err := r.call(ctx, http.MethodDelete, "/v1/webhook-endpoints/"+id.String(), nil, nil); err != nil {
		r.log.Warn("could not delete the bench webhook endpoint", slog.String("endpoint", id.String()), slog.String("error", err.Error()))
	}
}

// errLoopbackRefused says the server attempts deliveries that never reach
// the receiver.
var errLoopbackRefused = errors.New("webhook deliveries are attempted but none reaches the bench's receiver on 127.0.0.1: " +
	"start the server with WEBHOOK_ALLOW_PRIVATE=true")

// waitDeliveries waits until the run's receiver has seen want deliveries or
// ctx ends, and reports them from start, the first POST. While none has
// arrived it also reads the endpoint's deliveries, to stop at once when the
// server refuses the receiver's address.
func (r *runner) waitDeliveries(ctx context.Context, want int, start time.Time) (Webhooks, error) {
	rc := r.hook
	if received, _, _ := rc.counts(); received < want {
		r.log.Info("waiting for webhook deliveries", slog.Int("left", want-received))
	}
	_, err := poll(ctx, 50*time.Millisecond, func() (bool, error) {
		received, requests, _ := rc.counts()
		if requests > 0 {
			return received >= want, nil
		}
		var attempted bool
		if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM webhook_deliveries WHERE endpoint_id = $1 AND attempts > 0)`,
			r.endpoint).Scan(&attempted); err != nil {
			return false, fmt.Errorf("read webhook deliveries: %w", err)
		}
		if attempted {
			return false, errLoopbackRefused
		}
		return false, nil
	})
	received, requests, last := rc.counts()
	w := Webhooks{Expected: want, Received: received, Requests: requests}
	if received > 0 {
		w.Seconds = last.Sub(start).Seconds()
		w.DeliveriesPerSecond = perSecond(received, w.Seconds)
	}
	return w, err
}
