package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/page"
)

// Delivery statuses, as stored and as the API shows them. Recording an
// attempt leaves one of them (see Outcome).
const (
	StatusPending   = "pending"   // an attempt is due or scheduled
	StatusSucceeded = "succeeded" // an attempt got a 2xx
	StatusFailed    = "failed"    // given up: attempts exhausted, 410, or endpoint disabled
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

// Outbound is a delivery to store: a message for an endpoint, caused by an
// evaluation. ID is chosen by the caller, so it can record the delivery
// before it is stored.
type Outbound struct {
	ID           uuid.UUID
	EndpointID   uuid.UUID
	EvaluationID *uuid.UUID
	Message      Message
}

// BatchSize is the most deliveries one job makes first attempts at, and
// SendConcurrency the most of them it sends at once. A job's bookkeeping
// (inserted, fetched, its deliveries read, its attempts recorded, completed)
// costs about as much as four deliveries' own, so a transaction's
// deliveries share as few jobs as they can; an endpoint still receives at
// most SendConcurrency requests from one job.
const (
	BatchSize       = 64
	SendConcurrency = 16
)

// Body is the message as it is stored and sent, byte for byte: what every
// attempt signs.
func (o Outbound) Body() ([]byte, error) {
	body, err := json.Marshal(o.Message)
	if err != nil {
		return nil, fmt.Errorf("encode webhook message: %w", err)
	}
	return body, nil
}

// EnqueueMany stores deliveries and their jobs in tx, so each delivery
// exists exactly when the evaluation that caused it does. It takes two round
// trips however many there are: the jobs in one insert, then the deliveries,
// which name their jobs, in one copy. Deliveries are attempted first in
// groups of up to BatchSize by one WebhookDeliverBatch job; a delivery alone
// gets its WebhookDeliver job at once.
func EnqueueMany(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, out []Outbound) error {
	if len(out) == 0 {
		return nil
	}
	var params []river.InsertManyParams
	for group := range slices.Chunk(out, BatchSize) {
		var args river.JobArgs = jobs.WebhookDeliver{DeliveryID: group[0].ID}
		if len(group) > 1 {
			ids := make([]uuid.UUID, len(group))
			for i, o := range group {
				ids[i] = o.ID
			}
			args = jobs.WebhookDeliverBatch{DeliveryIDs: ids}
		}
		params = append(params, river.InsertManyParams{Args: args, InsertOpts: &river.InsertOpts{MaxAttempts: MaxAttempts}})
	}
	res, err := inserter.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("insert webhook jobs: %w", err)
	}
	rows := make([][]any, len(out))
	for i, o := range out {
		body, err := o.Body()
		if err != nil {
			return err
		}
		rows[i] = []any{o.ID, o.EndpointID, o.EvaluationID, o.Message.Type, body, res[i/BatchSize].Job.ID}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"webhook_deliveries"},
		[]string{"id", "endpoint_id", "evaluation_id", "event_type", "body", "job_id"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("insert webhook deliveries: %w", err)
	}
	return nil
}

// Continue gives each delivery whose attempt was retried its own
// WebhookDeliver job, scheduled for its next attempt and counting on from
// the attempts it had, and each delivery of unsent (attempts a batch did not
// get to make) one due now, counting on from the attempts it had before;
// and names the jobs on the deliveries, in tx.
func Continue(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, attempts []Attempted, recorded []Recorded, unsent []Attempted) error {
	var (
		params []river.InsertManyParams
		ids    []uuid.UUID
	)
	next := func(id uuid.UUID, attemptsBefore int, at time.Time) {
		params = append(params, river.InsertManyParams{
			Args:       jobs.WebhookDeliver{DeliveryID: id, AttemptsBefore: attemptsBefore},
			InsertOpts: &river.InsertOpts{MaxAttempts: MaxAttempts - attemptsBefore, ScheduledAt: at},
		})
		ids = append(ids, id)
	}
	for i, a := range attempts {
		if recorded[i].Outcome == OutcomeRetried {
			next(a.Out.Delivery.ID, a.Attempt, recorded[i].NextAttemptAt)
		}
	}
	for _, a := range unsent {
		next(a.Out.Delivery.ID, a.Attempt-1, time.Time{})
	}
	if len(params) == 0 {
		return nil
	}
	res, err := inserter.InsertManyTx(ctx, tx, params)
	if err != nil {
		return fmt.Errorf("insert webhook retry jobs: %w", err)
	}
	jobIDs := make([]int64, len(res))
	for i, r := range res {
		jobIDs[i] = r.Job.ID
	}
	if _, err := tx.Exec(ctx, `
		UPDATE webhook_deliveries d SET job_id = j.job_id
		FROM unnest($1::uuid[], $2::bigint[]) AS j (id, job_id) WHERE d.id = j.id`, ids, jobIDs); err != nil {
		return fmt.Errorf("name webhook retry jobs: %w", err)
	}
	return nil
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
			UPDATE webhook_deliveries SET status = $3, finished_at = NULL, next_attempt_at = now(), job_id = $2
			WHERE id = $1 RETURNING `+deliveryColumns, id, res.Job.ID, StatusPending))
		return err
	})
	if err != nil {
		return nil, db.Wrap("retry webhook delivery", err, ErrDeliveryNotFound)
	}
	return out, nil
}
