package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/redact"
)

// Delivery statuses.
const (
	StatusPending   = "pending"   // an attempt is due or scheduled
	StatusSucceeded = "succeeded" // an attempt got a 2xx
	StatusFailed    = "failed"    // given up: attempts exhausted, 410, or endpoint disabled
)

// RetrySchedule is the wait after each failed attempt, as Standard Webhooks
// suggests: the delivery is tried len(RetrySchedule)+1 times over about three
// days. A Retry-After header longer than the scheduled wait is honoured.
var RetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour,
	10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// MaxAttempts is how many times a delivery is tried.
var MaxAttempts = len(RetrySchedule) + 1

// Recording limits.
const (
	// MaxResponseSnippet is how much of a response body an attempt keeps.
	MaxResponseSnippet = 1024
	// maxResponseRead is how much of a response body is read at all.
	maxResponseRead = 64 * 1024
	// maxRetryAfter caps a Retry-After header.
	maxRetryAfter = 24 * time.Hour
)

// MessageType is the type of messages sent when a rule matches.
const MessageType = "rule.matched"

// Message is the body of a delivery.
type Message struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// Delivery is one message to one endpoint and what became of it.
type Delivery struct {
	ID            uuid.UUID
	EndpointID    uuid.UUID
	EvaluationID  *uuid.UUID
	EventType     string
	Body          json.RawMessage
	Status        string
	Attempts      int
	NextAttemptAt *time.Time
	LastStatus    *int
	LastError     *string
	CreatedAt     time.Time
	FinishedAt    *time.Time
	JobID         *int64 // the River job of the current or last attempt
}

// Attempt is one HTTP request of a delivery.
type Attempt struct {
	Attempt        int
	StartedAt      time.Time
	DurationMS     int
	ResponseStatus *int
	ResponseBody   *string
	Error          *string
}

// Enqueue stores a delivery of msg to an endpoint and its job in tx, so the
// delivery exists exactly when the evaluation that caused it does.
func Enqueue(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, endpointID uuid.UUID, evaluationID *uuid.UUID, msg Message) (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, err
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return uuid.Nil, fmt.Errorf("encode webhook message: %w", err)
	}
	res, err := inserter.InsertTx(ctx, tx, jobs.WebhookDeliver{DeliveryID: id}, &river.InsertOpts{MaxAttempts: MaxAttempts})
	if err != nil {
		return uuid.Nil, fmt.Errorf("insert webhook job: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO webhook_deliveries (id, endpoint_id, evaluation_id, event_type, body, job_id)
		VALUES ($1, $2, $3, $4, $5, $6)`, id, endpointID, evaluationID, msg.Type, body, res.Job.ID); err != nil {
		return uuid.Nil, fmt.Errorf("insert webhook delivery: %w", err)
	}
	return id, nil
}

const deliveryColumns = `id, endpoint_id, evaluation_id, event_type, body, status, attempts, next_attempt_at, last_status, last_error, created_at, finished_at, job_id`

func scanDelivery(row pgx.Row) (*Delivery, error) {
	var d Delivery
	var body []byte
	err := row.Scan(&d.ID, &d.EndpointID, &d.EvaluationID, &d.EventType, &body, &d.Status, &d.Attempts,
		&d.NextAttemptAt, &d.LastStatus, &d.LastError, &d.CreatedAt, &d.FinishedAt, &d.JobID)
	if err != nil {
		return nil, err
	}
	d.Body = body
	return &d, nil
}

// GetDelivery returns a delivery and its attempts, oldest first.
func (s *Service) GetDelivery(ctx context.Context, id uuid.UUID) (*Delivery, []Attempt, error) {
	d, err := scanDelivery(s.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`, id))
	if err != nil {
		return nil, nil, db.Wrap("get webhook delivery", err, ErrDeliveryNotFound)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT attempt, started_at, duration_ms, response_status, response_body, error
		FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt`, id)
	if err != nil {
		return nil, nil, db.Wrap("get webhook attempts", err, nil)
	}
	attempts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		return a, r.Scan(&a.Attempt, &a.StartedAt, &a.DurationMS, &a.ResponseStatus, &a.ResponseBody, &a.Error)
	})
	if err != nil {
		return nil, nil, db.Wrap("get webhook attempts", err, nil)
	}
	return d, attempts, nil
}

// ListDeliveries returns one page of an endpoint's deliveries, newest first.
func (s *Service) ListDeliveries(ctx context.Context, endpointID uuid.UUID, status string, p page.Params) (page.Page[*Delivery], error) {
	if _, err := getEndpoint(ctx, s.pool, endpointID, false); err != nil {
		return page.Page[*Delivery]{}, err
	}
	var c db.Conditions
	c.Add("endpoint_id = $%d", endpointID)
	if status != "" {
		c.Add("status = $%d", status)
	}
	query, args := c.Page(`SELECT `+deliveryColumns+` FROM webhook_deliveries`, p)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return page.Page[*Delivery]{}, db.Wrap("list webhook deliveries", err, nil)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Delivery, error) { return scanDelivery(r) })
	if err != nil {
		return page.Page[*Delivery]{}, db.Wrap("list webhook deliveries", err, nil)
	}
	return page.Build(items, p.Limit, func(d *Delivery) uuid.UUID { return d.ID }), nil
}

// JobRetrier makes a scheduled job run now, or inserts a new one.
// *river.Client[pgx.Tx] is one.
type JobRetrier interface {
	jobs.Inserter
	JobRetryTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error)
}

// ErrEndpointUnusable is returned when a delivery is replayed to an endpoint
// that is disabled or deleted.
var ErrEndpointUnusable = apperr.New(apperr.Conflict, "the endpoint is disabled or deleted; enable it before replaying")

// Retry delivers again now: a pending delivery's next attempt is brought
// forward; a finished one goes back to pending with a new job. The webhook-id
// stays the same, so a consumer that already has the message can drop it.
func (s *Service) Retry(ctx context.Context, retrier JobRetrier, id uuid.UUID) (*Delivery, error) {
	var out *Delivery
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		d, err := scanDelivery(tx.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1 FOR NO KEY UPDATE`, id))
		if err != nil {
			return err
		}
		ep, err := getEndpoint(ctx, tx, d.EndpointID, false)
		if err != nil {
			return err
		}
		if !ep.Enabled || ep.DeletedAt != nil {
			return ErrEndpointUnusable
		}
		if d.Status == StatusPending && d.JobID != nil {
			if row, err := retrier.JobRetryTx(ctx, tx, *d.JobID); err == nil {
				out = d
				if row.State != rivertype.JobStateAvailable { // an attempt is under way
					return nil
				}
				out, err = scanDelivery(tx.QueryRow(ctx, `
					UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id = $1 RETURNING `+deliveryColumns, id, row.ScheduledAt))
				return err
			} else if !errors.Is(err, river.ErrNotFound) {
				return err
			}
		}
		res, err := retrier.InsertTx(ctx, tx, jobs.WebhookDeliver{DeliveryID: id}, &river.InsertOpts{MaxAttempts: MaxAttempts})
		if err != nil {
			return err
		}
		out, err = scanDelivery(tx.QueryRow(ctx, `
			UPDATE webhook_deliveries SET status = 'pending', finished_at = NULL, next_attempt_at = now(), job_id = $2
			WHERE id = $1 RETURNING `+deliveryColumns, id, res.Job.ID))
		return err
	})
	if err != nil {
		return nil, db.Wrap("retry webhook delivery", err, ErrDeliveryNotFound)
	}
	return out, nil
}

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
	d, err := scanDelivery(s.svc.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE id = $1`, id))
	if err != nil {
		return nil, db.Wrap("load webhook delivery", err, ErrDeliveryNotFound)
	}
	if d.Status != StatusPending {
		return nil, nil
	}
	ep, err := getEndpoint(ctx, s.svc.pool, d.EndpointID, false)
	if err != nil {
		return nil, err
	}
	keys, err := s.svc.signingKeys(ctx, s.svc.pool, ep.ID)
	if err != nil {
		return nil, err
	}
	return &Outgoing{Delivery: d, Endpoint: ep, keys: keys}, nil
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

// Outcome is what recording an attempt decided; the values double as metric
// labels.
type Outcome string

// Outcomes of an attempt.
const (
	Retry     Outcome = "retried"   // failed; another attempt is scheduled
	Succeeded Outcome = "succeeded" // delivered
	Failed    Outcome = "failed"    // given up
)

// status is the delivery status an outcome leaves.
func (o Outcome) status() string {
	if o == Retry {
		return StatusPending
	}
	return string(o)
}

// Record stores an attempt and its consequences in tx: the delivery's status
// and next attempt, and the endpoint's failure streak (a 410 or too many
// failures in a row disable it). attempt is the job's attempt number.
func Record(ctx context.Context, tx pgx.Tx, out *Outgoing, res Result, attempt int) (Outcome, error) {
	d := out.Delivery
	var (
		status   *int
		body     *string
		errText  *string
		outcome  = Retry
		next     time.Time
		disabled string
	)
	if res.Status != 0 {
		status = &res.Status
		body = &res.Snippet
	}
	switch {
	case res.OK():
		outcome = Succeeded
	case res.Status == http.StatusGone:
		outcome, disabled = Failed, DisabledGone
		msg := "410 Gone: the endpoint was disabled"
		errText = &msg
	default:
		msg := describeFailure(res)
		errText = &msg
		if attempt >= MaxAttempts {
			outcome = Failed
		} else {
			wait := RetrySchedule[min(attempt, len(RetrySchedule))-1]
			next = time.Now().Add(max(wait, res.RetryAfter)).UTC()
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, duration_ms, response_status, response_body, error)
		VALUES ($1, $2, (SELECT attempts + 1 FROM webhook_deliveries WHERE id = $2), $3, $4, $5, $6, $7)`,
		uuid.Must(uuid.NewV7()), d.ID, res.StartedAt, int(res.Duration.Milliseconds()), status, body, errText); err != nil {
		return Retry, fmt.Errorf("record webhook attempt: %w", err)
	}
	var nextAt *time.Time
	if outcome == Retry {
		nextAt = &next
	}
	if _, err := tx.Exec(ctx, `
		UPDATE webhook_deliveries SET attempts = attempts + 1, status = $2, next_attempt_at = $3,
			last_status = $4, last_error = $5,
			finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE clock_timestamp() END
		WHERE id = $1`, d.ID, outcome.status(), nextAt, status, errText); err != nil {
		return Retry, fmt.Errorf("update webhook delivery: %w", err)
	}
	if outcome == Succeeded {
		_, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures <> 0`, out.Endpoint.ID)
		return outcome, err
	}
	if _, err := tx.Exec(ctx, `
		UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
			enabled = CASE WHEN $2 <> '' OR consecutive_failures + 1 >= $3 THEN false ELSE enabled END,
			disabled_reason = CASE WHEN $2 <> '' THEN $2 WHEN consecutive_failures + 1 >= $3 THEN $4 ELSE disabled_reason END,
			disabled_at = CASE WHEN enabled AND ($2 <> '' OR consecutive_failures + 1 >= $3) THEN clock_timestamp() ELSE disabled_at END,
			updated_at = now()
		WHERE id = $1`, out.Endpoint.ID, disabled, DisableAfterFailures, DisabledFailures); err != nil {
		return Retry, fmt.Errorf("update webhook endpoint: %w", err)
	}
	return outcome, nil
}

// Abandon marks a delivery failed without an attempt, for an endpoint that is
// disabled or deleted.
func Abandon(ctx context.Context, tx pgx.Tx, id uuid.UUID, reason string) error {
	_, err := tx.Exec(ctx, `
		UPDATE webhook_deliveries SET status = 'failed', last_error = $2, next_attempt_at = NULL, finished_at = clock_timestamp()
		WHERE id = $1 AND status = 'pending'`, id, reason)
	return err
}

// NextAttemptAt reads when a delivery's next attempt is due.
func NextAttemptAt(ctx context.Context, q db.Querier, id uuid.UUID) (time.Time, error) {
	var t *time.Time
	if err := q.QueryRow(ctx, `SELECT next_attempt_at FROM webhook_deliveries WHERE id = $1`, id).Scan(&t); err != nil {
		return time.Time{}, err
	}
	if t == nil {
		return time.Time{}, errors.New("no attempt scheduled")
	}
	return *t, nil
}

func describeFailure(res Result) string {
	var msg string
	switch {
	case res.Err != nil:
		msg = redact.Text(res.Err.Error())
	case res.Status >= 300 && res.Status <= 399:
		msg = fmt.Sprintf("answered %d: redirects are not followed", res.Status)
	default:
		msg = fmt.Sprintf("answered %d", res.Status)
	}
	if len(msg) > 500 {
		msg = strings.ToValidUTF8(msg[:500], "")
	}
	return msg
}
