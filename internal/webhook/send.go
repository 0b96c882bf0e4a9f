package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/redact"
)

// Response limits: what an attempt reads and keeps of an answer.
const (
	// MaxResponseSnippet is how much of a response body an attempt keeps.
	MaxResponseSnippet = 1024
	// maxResponseRead is how much of a response body is read at all.
	maxResponseRead = 64 * 1024
	// maxRetryAfter caps a Retry-After header.
	maxRetryAfter = 24 * time.Hour
)

// Sender makes delivery attempts.
type Sender struct {
	svc    *Service
	client *http.Client
}

// NewSender returns a Sender using client, which should be an egress client.
func NewSender(svc *Service, client *http.Client) *Sender {
	return &Sender{svc: svc, client: client}
}

// Outgoing is a delivery ready to send.
type Outgoing struct {
	Delivery *Delivery
	Endpoint *Endpoint
	keys     [][]byte
}

// Prepare loads what an attempt needs. It returns nil when the delivery is
// no longer pending.
func (s *Sender) Prepare(ctx context.Context, id uuid.UUID) (*Outgoing, error) {
	outs, found, err := s.prepare(ctx, []uuid.UUID{id})
	switch {
	case err != nil:
		return nil, err
	case found == 0:
		return nil, ErrDeliveryNotFound
	case len(outs) == 0:
		return nil, nil
	case outs[0].Endpoint == nil:
		return nil, ErrNotFound
	}
	return outs[0], nil
}

// PrepareMany loads what attempts at several deliveries need, in one round
// trip. Deliveries that are missing or no longer pending are left out; one
// whose endpoint is missing has a nil Endpoint.
func (s *Sender) PrepareMany(ctx context.Context, ids []uuid.UUID) ([]*Outgoing, error) {
	outs, _, err := s.prepare(ctx, ids)
	return outs, err
}

// prepare is PrepareMany that also says how many of the deliveries exist.
func (s *Sender) prepare(ctx context.Context, ids []uuid.UUID) (outs []*Outgoing, found int, err error) {
	// The deliveries, their endpoints and the endpoints' secrets in one
	// round trip: the last two are found through the deliveries.
	var (
		deliveries []*Delivery
		endpoints  = make(map[uuid.UUID]*Endpoint)
		secrets    map[uuid.UUID][]storedSecret
	)
	const ofDeliveries = `(SELECT endpoint_id FROM webhook_deliveries WHERE id = ANY($1))`
	b := &pgx.Batch{}
	b.Queue(`SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = ANY($1) ORDER BY id`, ids).Query(func(rows pgx.Rows) error {
		var err error
		deliveries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Delivery, error) { return scanDelivery(r) })
		return err
	})
	b.Queue(`SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id IN `+ofDeliveries, ids).Query(func(rows pgx.Rows) error {
		all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Endpoint, error) { return scanEndpoint(r) })
		for _, ep := range all {
			endpoints[ep.ID] = ep
		}
		return err
	})
	b.Queue(secretsSQL+` AND endpoint_id IN `+ofDeliveries+secretsOrder, ids).Query(func(rows pgx.Rows) error {
		var err error
		secrets, err = collectSecrets(rows)
		return err
	})
	if err := s.svc.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, 0, fmt.Errorf("load webhook deliveries: %w", err)
	}
	keys := make(map[uuid.UUID][][]byte, len(endpoints))
	for _, d := range deliveries {
		if d.Status != StatusPending {
			continue
		}
		out := &Outgoing{Delivery: d, Endpoint: endpoints[d.EndpointID]}
		if out.Endpoint != nil {
			k, ok := keys[d.EndpointID]
			if !ok {
				if k, err = s.svc.openSecrets(secrets[d.EndpointID]); err != nil {
					return nil, 0, err
				}
				keys[d.EndpointID] = k
			}
			out.keys = k
		}
		outs = append(outs, out)
	}
	return outs, len(deliveries), nil
}

// Result is what one attempt got.
type Result struct {
	StartedAt  time.Time
	Duration   time.Duration
	Status     int // 0 when no response arrived
	Snippet    string
	Err        error
	RetryAfter time.Duration
}

// OK reports a 2xx answer.
func (r Result) OK() bool { return r.Err == nil && r.Status >= 200 && r.Status <= 299 }

// Send makes one attempt. It does not write to the database.
func (s *Sender) Send(ctx context.Context, out *Outgoing) Result {
	now := time.Now().UTC()
	res := Result{StartedAt: now}
	msgID := out.Delivery.ID.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, out.Endpoint.URL, bytes.NewReader(out.Delivery.Body))
	if err != nil {
		res.Err = errors.New(redact.Text(err.Error()))
		return res
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", msgID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(msgID, now, out.Delivery.Body, out.keys))
	resp, err := s.client.Do(req)
	res.Duration = time.Since(now)
	if err != nil {
		// The error names the URL, whose query often holds a token; it is
		// stored with the attempt and logged by River.
		res.Err = redact.Error(err)
		return res
	}
	defer resp.Body.Close()
	body, _, _ := egress.ReadCapped(resp.Body, maxResponseRead)
	res.Duration = time.Since(now)
	res.Status = resp.StatusCode
	res.Snippet = snippet(body)
	res.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	return res
}

func snippet(body []byte) string {
	if len(body) > MaxResponseSnippet {
		body = body[:MaxResponseSnippet]
	}
	s := strings.ReplaceAll(strings.ToValidUTF8(string(body), "\uFFFD"), "\x00", "")
	// Replacement characters are longer than the bytes they replace, such as
	// a character the cut above split.
	for len(s) > MaxResponseSnippet {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// retryAfter parses a Retry-After header, seconds or an HTTP date, into a
// wait from zero to maxRetryAfter. Seconds are compared with the cap before
// they become a Duration, which overflows past about 292 years.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	capSecs := int64(maxRetryAfter / time.Second)
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		switch {
		case secs >= capSecs: // also a number too large for int64
			return maxRetryAfter
		case secs <= 0:
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	t, err := http.ParseTime(h)
	if err != nil {
		return 0
	}
	if t.After(now.Add(maxRetryAfter)) {
		return maxRetryAfter
	}
	return max(t.Sub(now), 0)
}
