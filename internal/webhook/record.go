package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/redact"
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

// RetryWait is how long to wait after failed attempt number attempt (from 1)
// before the next: the scheduled wait, or the endpoint's Retry-After when that
// is longer. Attempts past the end of the schedule wait its last step.
func RetryWait(attempt int, retryAfter time.Duration) time.Duration {
	return max(RetrySchedule[min(max(attempt, 1), len(RetrySchedule))-1], retryAfter)
}

// Outcome is what recording an attempt decided. The values are also the
// outcome labels of the webhook attempts metric (metrics.Webhook*).
type Outcome string

// Outcomes of an attempt. The two final ones are named as the delivery
// status they leave.
const (
	OutcomeRetried   Outcome = "retried"       // failed; another attempt is scheduled
	OutcomeSucceeded Outcome = StatusSucceeded // delivered
	OutcomeFailed    Outcome = StatusFailed    // given up
)

// status is the delivery status an outcome leaves.
func (o Outcome) status() string {
	if o == OutcomeRetried {
		return StatusPending
	}
	return string(o)
}

// Record stores an attempt and its consequences in tx: the delivery's status
// and next attempt, and the endpoint's failure streak (a 410 or too many
// failures in a row disable it). attempt is the delivery's attempt number,
// from 1.
func Record(ctx context.Context, tx pgx.Tx, out *Outgoing, res Result, attempt int) (Outcome, error) {
	recorded, err := RecordMany(ctx, tx, []Attempted{{Out: out, Result: res, Attempt: attempt}})
	if err != nil {
		return OutcomeRetried, err
	}
	return recorded[0].Outcome, nil
}

// Attempted is an attempt made, to record: the delivery, what it got and
// the delivery's attempt number, from 1.
type Attempted struct {
	Out     *Outgoing
	Result  Result
	Attempt int
}

// Recorded is what recording an attempt decided: its outcome and, when it
// is OutcomeRetried, when the next attempt is due.
type Recorded struct {
	Outcome       Outcome
	NextAttemptAt time.Time
}

// RecordMany is Record for several attempts, in one round trip. Endpoints'
// streaks are updated last and in endpoint order, so transactions recording
// attempts at the same endpoints lock them in the same order.
func RecordMany(ctx context.Context, tx pgx.Tx, attempts []Attempted) ([]Recorded, error) {
	recorded := make([]Recorded, len(attempts))
	rows := attemptRows{}
	streaks := make([]streak, 0, len(attempts))
	for i, a := range attempts {
		var s streak
		recorded[i], s = rows.add(a)
		streaks = append(streaks, s)
	}
	b := &pgx.Batch{}
	rows.queue(b)
	slices.SortStableFunc(streaks, func(a, b streak) int { return bytes.Compare(a.endpointID[:], b.endpointID[:]) })
	for i, s := range streaks {
		// Resetting a streak twice in a row is resetting it once.
		if i > 0 && s.succeeded && streaks[i-1].succeeded && s.endpointID == streaks[i-1].endpointID {
			continue
		}
		s.queue(b)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("record webhook attempts: %w", err)
	}
	return recorded, nil
}

// streak is the change an attempt makes to its endpoint's failure streak.
type streak struct {
	endpointID uuid.UUID
	succeeded  bool
	disabled   string // the reason a failure disables the endpoint at once
}

func (s streak) queue(b *pgx.Batch) {
	if s.succeeded {
		b.Queue(`UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id = $1 AND consecutive_failures <> 0`, s.endpointID)
		return
	}
	b.Queue(`
		UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,
			enabled = CASE WHEN $2 <> '' OR consecutive_failures + 1 >= $3 THEN false ELSE enabled END,
			disabled_reason = CASE WHEN $2 <> '' THEN $2 WHEN consecutive_failures + 1 >= $3 THEN $4 ELSE disabled_reason END,
			disabled_at = CASE WHEN enabled AND ($2 <> '' OR consecutive_failures + 1 >= $3) THEN clock_timestamp() ELSE disabled_at END,
			updated_at = now()
		WHERE id = $1`, s.endpointID, s.disabled, DisableAfterFailures, DisabledFailures)
}

// attemptRows are the attempts RecordMany records, a column each: one
// statement stores every attempt and counts it on its delivery.
type attemptRows struct {
	ids, deliveries []uuid.UUID
	started         []time.Time
	durations       []int32
	statuses        []*int32
	bodies, errs    []*string
	outcomes        []string
	next            []*time.Time
}

// add takes one attempt at its delivery, and says what it decided and what
// it does to the endpoint.
func (r *attemptRows) add(a Attempted) (Recorded, streak) {
	d, res := a.Out.Delivery, a.Result
	var (
		status  *int32
		body    *string
		errText *string
		outcome = OutcomeRetried
		next    time.Time
		s       = streak{endpointID: a.Out.Endpoint.ID}
	)
	if res.Status != 0 {
		code := int32(res.Status) //nolint:gosec // an HTTP status code
		status, body = &code, &res.Snippet
	}
	switch {
	case res.OK():
		outcome, s.succeeded = OutcomeSucceeded, true
	case res.Status == http.StatusGone:
		outcome, s.disabled = OutcomeFailed, DisabledGone
		msg := "410 Gone: the endpoint was disabled"
		errText = &msg
	default:
		msg := describeFailure(res)
		errText = &msg
		if a.Attempt >= MaxAttempts {
			outcome = OutcomeFailed
		} else {
			next = time.Now().Add(RetryWait(a.Attempt, res.RetryAfter)).UTC()
		}
	}
	var nextAt *time.Time
	if outcome == OutcomeRetried {
		nextAt = &next
	}
	r.ids = append(r.ids, uuid.Must(uuid.NewV7()))
	r.deliveries = append(r.deliveries, d.ID)
	r.started = append(r.started, res.StartedAt)
	r.durations = append(r.durations, int32(min(res.Duration.Milliseconds(), math.MaxInt32))) //nolint:gosec // bounded
	r.statuses = append(r.statuses, status)
	r.bodies = append(r.bodies, body)
	r.errs = append(r.errs, errText)
	r.outcomes = append(r.outcomes, outcome.status())
	r.next = append(r.next, nextAt)
	return Recorded{Outcome: outcome, NextAttemptAt: next}, s
}

// queue adds to b the statement that stores the attempts and counts each on
// its delivery. Its parts see the deliveries as they were before it, so an
// attempt's number is the delivery's count of attempts before it plus one.
func (r *attemptRows) queue(b *pgx.Batch) {
	if len(r.ids) == 0 {
		return
	}
	b.Queue(`
		WITH a AS (
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::int[], $5::int[], $6::text[], $7::text[],
				$8::text[], $9::timestamptz[])
				AS a(id, delivery_id, started_at, duration_ms, response_status, response_body, error, status, next_attempt_at)
		), stored AS (
			INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, duration_ms, response_status, response_body, error)
			SELECT a.id, a.delivery_id, d.attempts + 1, a.started_at, a.duration_ms, a.response_status, a.response_body, a.error
			FROM a JOIN webhook_deliveries d ON d.id = a.delivery_id
		)
		UPDATE webhook_deliveries d SET attempts = d.attempts + 1, status = a.status, next_attempt_at = a.next_attempt_at,
			last_status = a.response_status, last_error = a.error,
			finished_at = CASE WHEN a.status = $10 THEN NULL ELSE clock_timestamp() END
		FROM a WHERE d.id = a.delivery_id`,
		r.ids, r.deliveries, r.started, r.durations, r.statuses, r.bodies, r.errs, r.outcomes, r.next, StatusPending)
}

// Abandon marks pending deliveries failed without an attempt, for an
// endpoint that is disabled or deleted, or a job that gave up.
func Abandon(ctx context.Context, tx pgx.Tx, reason string, ids ...uuid.UUID) error {
	_, err := tx.Exec(ctx, `
		UPDATE webhook_deliveries SET status = $3, last_error = $2, next_attempt_at = NULL, finished_at = clock_timestamp()
		WHERE id = ANY($1) AND status = $4`, ids, reason, StatusFailed, StatusPending)
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
