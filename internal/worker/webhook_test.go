package worker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/queue"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
	"github.com/ctrader/ctrader/internal/worker"
)

// request is one request a receiver got.
type request struct {
	method string
	header http.Header
	body   []byte
	// verified holds what the Standard Webhooks library said of the request
	// for each secret the receiver trusted when it arrived: nil when the
	// signature verifies.
	verified map[string]error
}

// receiver is a webhook consumer on loopback. It verifies every request with
// the official Standard Webhooks library against the secrets it trusts,
// records it, and answers as respond says (200 "ok" when respond is nil). n
// counts the requests received, this one included.
type receiver struct {
	srv     *httptest.Server
	respond func(n int, w http.ResponseWriter)

	mu      sync.Mutex
	secrets []string
	got     []request
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter)) *receiver {
	t.Helper()
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	req := request{method: r.Method, header: r.Header.Clone(), body: body, verified: make(map[string]error)}
	for _, secret := range rc.secrets {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		req.verified[secret] = err
	}
	rc.got = append(rc.got, req)
	n := len(rc.got)
	rc.mu.Unlock()
	if rc.respond != nil {
		rc.respond(n, w)
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// trust makes the receiver verify requests with secret too.
func (rc *receiver) trust(secret string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.secrets = append(rc.secrets, secret)
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// fail answers every request with status.
func fail(status int) func(int, http.ResponseWriter) {
	return func(n int, w http.ResponseWriter) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "fail "+strconv.Itoa(n))
	}
}

// hookFixture is an account, an endpoint on a local receiver, a rule that
// sends big wins to it, and a webhook worker.
type hookFixture struct {
	*testBundle
	ctx    context.Context
	svc    *webhook.Service
	ep     *webhook.Endpoint
	secret string
	acct   *account.Account
	rule   *rule.Rule
	recv   *receiver
	worker *worker.WebhookWorker
}

type hookOptions struct {
	respond func(n int, w http.ResponseWriter)
	sealer  *webhook.Sealer
	egress  *egress.Options // nil: every address, loopback included
}

// loopback lets a sender reach test servers.
var loopback = egress.Options{AllowPrivate: true, Timeout: 5 * time.Second}

func newHook(t *testing.T, o hookOptions) *hookFixture {
	t.Helper()
	b := setup(t)
	f := &hookFixture{
		testBundle: b,
		ctx:        rivertest.WorkContext(context.Background(), b.client),
		svc:        webhook.NewService(b.pool, o.sealer, 0),
		recv:       newReceiver(t, o.respond),
	}
	var err error
	f.ep, f.secret, err = f.svc.Create(f.ctx, webhook.Input{URL: f.recv.srv.URL, Enabled: true})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(f.secret, webhook.SecretPrefix))
	f.recv.trust(f.secret)
	f.acct = activeAccount(t, b, "John Doe")
	f.rule = createRule(t, b, rule.Input{Name: "big win webhook", EventTypes: []string{event.TypeWon},
		Condition: `event.payload.amount > 1000`,
		Actions:   []rule.Action{{Type: rule.ActionWebhook, EndpointID: f.ep.ID.String()}}})
	eo := loopback
	if o.egress != nil {
		eo = *o.egress
	}
	f.worker = f.newWorker(f.svc, eo)
	return f
}

func (f *hookFixture) newWorker(svc *webhook.Service, eo egress.Options) *worker.WebhookWorker {
	return worker.NewWebhookWorker(f.pool, webhook.NewSender(svc, egress.NewClient(eo)), 5*time.Second)
}

// evaluate posts a big win and runs its job.
func (f *hookFixture) evaluate(t *testing.T) (*event.Event, *evaluation.Evaluation) {
	t.Helper()
	ev := ingest(t, f.testBundle, f.acct.ID, event.TypeWon, map[string]any{"amount": 1500.0})
	_, err := workEvent(t, f.testBundle, worker.NewEventsWorker(f.pool, f.engine), ev.ID)
	require.NoError(t, err)
	evals := evaluationsOf(t, f.testBundle, ev.ID)
	require.Len(t, evals, 1)
	require.True(t, evals[0].Matched)
	require.Len(t, evals[0].Actions, 1)
	require.Equal(t, rule.ActionWebhook, evals[0].Actions[0].Type)
	require.Equal(t, f.ep.ID.String(), evals[0].Actions[0].EndpointID)
	return ev, evals[0]
}

// match is evaluate for an event whose match queues a delivery, which it
// returns.
func (f *hookFixture) match(t *testing.T) uuid.UUID {
	t.Helper()
	_, e := f.evaluate(t)
	res := e.Actions[0]
	require.Empty(t, res.Skipped)
	require.NotNil(t, res.DeliveryID)
	return *res.DeliveryID
}

// job returns the delivery's current webhook.deliver job, the one its row
// names.
func (f *hookFixture) job(t *testing.T, deliveryID uuid.UUID) *rivertype.JobRow {
	t.Helper()
	d, _ := f.delivery(t, deliveryID)
	require.NotNil(t, d.JobID)
	row, err := f.client.JobGet(context.Background(), *d.JobID)
	require.NoError(t, err)
	return row
}

// attempt works the delivery's job once with River's test worker, which
// moves it to running and, after Work, to the state River gives its result
// (retryable or available on an error, with NextRetry's schedule). It returns
// the job as worked and the error Work returned, nil when it cancelled the
// job.
func (f *hookFixture) attempt(t *testing.T, deliveryID uuid.UUID) (*river.Job[jobs.WebhookDeliver], error) {
	t.Helper()
	return f.attemptNumber(t, deliveryID, 0)
}

// attemptNumber is attempt as River's attempt number n of the job (its
// earlier attempts left out), or the next one when n is 0.
func (f *hookFixture) attemptNumber(t *testing.T, deliveryID uuid.UUID, n int) (*river.Job[jobs.WebhookDeliver], error) {
	t.Helper()
	row := f.job(t, deliveryID)
	if n > 0 {
		row.Attempt = n - 1 // the test worker counts this attempt from the row given
	}
	res, err := work(f.ctx, t, f.testBundle, river.Worker[jobs.WebhookDeliver](f.worker), row)
	require.NotNil(t, res, "work the job: %v", err)
	var args jobs.WebhookDeliver
	require.NoError(t, json.Unmarshal(res.Job.EncodedArgs, &args))
	return &river.Job[jobs.WebhookDeliver]{JobRow: res.Job, Args: args}, err
}

func (f *hookFixture) delivery(t *testing.T, id uuid.UUID) (*webhook.Delivery, []webhook.Attempt) {
	t.Helper()
	d, attempts, err := f.svc.GetDelivery(context.Background(), id)
	require.NoError(t, err)
	return d, attempts
}

func (f *hookFixture) endpoint(t *testing.T) *webhook.Endpoint {
	t.Helper()
	ep, err := f.svc.Get(context.Background(), f.ep.ID)
	require.NoError(t, err)
	return ep
}

func deliveryJobs(t *testing.T, f *hookFixture, deliveryID uuid.UUID) []*rivertype.JobRow {
	t.Helper()
	res, err := f.client.JobList(context.Background(), river.NewJobListParams().Kinds(jobs.WebhookDeliver{}.Kind()).First(1000))
	require.NoError(t, err)
	var out []*rivertype.JobRow
	for _, row := range res.Jobs {
		var args jobs.WebhookDeliver
		require.NoError(t, json.Unmarshal(row.EncodedArgs, &args))
		if args.DeliveryID == deliveryID {
			out = append(out, row)
		}
	}
	return out
}

// requireFailedAttempt checks that Work failed in a way River retries.
func requireFailedAttempt(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var cancel *rivertype.JobCancelError
	require.NotErrorAs(t, err, &cancel)
}

// requireNextRetry checks that River would retry job wait after an attempt
// made between before and after.
func requireNextRetry(t *testing.T, f *hookFixture, job *river.Job[jobs.WebhookDeliver], before, after time.Time, wait, tolerance time.Duration) {
	t.Helper()
	next := f.worker.NextRetry(job)
	require.WithinRange(t, next, before.Add(wait-tolerance), after.Add(wait+tolerance),
		"next retry %s after the attempt, want %s", next.Sub(after), wait)
}

func TestWebhookDeliveryVerifiesWithTheStandardWebhooksLibrary(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	ev, e := f.evaluate(t)
	require.NotNil(t, e.Actions[0].DeliveryID)
	id := *e.Actions[0].DeliveryID

	before := time.Now()
	job, err := f.attempt(t, id)
	require.NoError(t, err)
	requireJobState(t, f.testBundle, job.ID, rivertype.JobStateCompleted)

	reqs := f.recv.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	require.Equal(t, http.MethodPost, r.method)
	require.NoError(t, r.verified[f.secret])
	require.Equal(t, id.String(), r.header.Get("webhook-id"))
	ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	require.WithinRange(t, time.Unix(ts, 0), before.Truncate(time.Second), time.Now())
	require.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, r.header.Get("webhook-signature"), "one signature")
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, egress.DefaultUserAgent, r.header.Get("User-Agent"))

	// The library does reject what was not signed.
	wh, err := standardwebhooks.NewWebhook(f.secret)
	require.NoError(t, err)
	require.ErrorIs(t, wh.Verify(append(bytes.Clone(r.body), ' '), r.header), standardwebhooks.ErrNoMatchingSignature)
	other, err := standardwebhooks.NewWebhook(webhook.SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	require.NoError(t, err)
	require.ErrorIs(t, other.Verify(r.body, r.header), standardwebhooks.ErrNoMatchingSignature)

	// The body: exactly type, timestamp and data, with the right ids.
	var msg map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(r.body, &msg))
	require.ElementsMatch(t, []string{"type", "timestamp", "data"}, slices.Collect(maps.Keys(msg)))
	require.JSONEq(t, `"rule.matched"`, string(msg["type"]))
	var stamp time.Time
	require.NoError(t, json.Unmarshal(msg["timestamp"], &stamp))
	require.WithinDuration(t, e.EvaluatedAt, stamp, time.Millisecond)
	var data map[string]map[string]any
	require.NoError(t, json.Unmarshal(msg["data"], &data))
	require.ElementsMatch(t, []string{"event", "rule", "evaluation", "account"}, slices.Collect(maps.Keys(data)))
	require.Equal(t, ev.ID.String(), data["event"]["id"])
	require.Equal(t, f.acct.ID.String(), data["event"]["account_id"])
	require.Equal(t, event.TypeWon, data["event"]["type"])
	require.Equal(t, map[string]any{"amount": 1500.0}, data["event"]["payload"])
	require.Equal(t, f.rule.ID.String(), data["rule"]["id"])
	require.Equal(t, f.rule.Name, data["rule"]["name"])
	require.Equal(t, 1.0, data["rule"]["version"])
	require.Equal(t, e.ID.String(), data["evaluation"]["id"])
	require.Equal(t, evaluation.TriggerEvent, data["evaluation"]["trigger"])
	require.Equal(t, true, data["evaluation"]["matched"])
	require.Equal(t, f.acct.ID.String(), data["account"]["id"])
	require.Equal(t, f.acct.Name, data["account"]["name"])
	require.Equal(t, 1.0, data["account"]["won_count"], "totals include the event")
	require.Equal(t, 1500.0, data["account"]["won_total"])

	d, attempts := f.delivery(t, id)
	require.Equal(t, []byte(d.Body), r.body, "the stored body is what was sent")
	require.Equal(t, f.ep.ID, d.EndpointID)
	require.Equal(t, &e.ID, d.EvaluationID)
	require.Equal(t, webhook.MessageType, d.EventType)
	require.Equal(t, webhook.StatusSucceeded, d.Status)
	require.Equal(t, 1, d.Attempts)
	require.Equal(t, 200, *d.LastStatus)
	require.Nil(t, d.LastError)
	require.Nil(t, d.NextAttemptAt)
	require.NotNil(t, d.FinishedAt)
	require.Len(t, attempts, 1)
	require.Equal(t, "ok", *attempts[0].ResponseBody)

	require.Equal(t, queue.Webhooks, job.Queue)
	require.Equal(t, webhook.MaxAttempts, job.MaxAttempts)
}

func TestWebhookRetriesFollowTheScheduleWithOneWebhookID(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: func(n int, w http.ResponseWriter) {
		if n <= 2 {
			fail(http.StatusInternalServerError)(n, w)
			return
		}
		time.Sleep(20 * time.Millisecond)
		_, _ = io.WriteString(w, "accepted")
	}})
	id := f.match(t)

	for i, wait := range webhook.RetrySchedule[:2] {
		before := time.Now()
		job, err := f.attempt(t, id)
		after := time.Now()
		requireFailedAttempt(t, err)
		require.ErrorContains(t, err, "answered 500")
		require.Equal(t, i+1, job.Attempt)
		requireNextRetry(t, f, job, before, after, wait, time.Second)
		d, _ := f.delivery(t, id)
		require.Equal(t, webhook.StatusPending, d.Status)
		require.Equal(t, i+1, d.Attempts)
		require.NotNil(t, d.NextAttemptAt)
		require.Equal(t, f.worker.NextRetry(job), *d.NextAttemptAt)
		require.Nil(t, d.FinishedAt)
		require.Equal(t, i+1, f.endpoint(t).ConsecutiveFailures)
	}
	require.Equal(t, 5*time.Second, webhook.RetrySchedule[0])
	require.Equal(t, 5*time.Minute, webhook.RetrySchedule[1])

	job, err := f.attempt(t, id)
	require.NoError(t, err)
	require.Equal(t, 3, job.Attempt)
	requireJobState(t, f.testBundle, job.ID, rivertype.JobStateCompleted)

	reqs := f.recv.requests()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		require.Equal(t, id.String(), r.header.Get("webhook-id"), "every attempt has the same webhook-id")
		require.NoError(t, r.verified[f.secret])
		require.Equal(t, reqs[0].body, r.body)
	}

	d, attempts := f.delivery(t, id)
	require.Equal(t, webhook.StatusSucceeded, d.Status)
	require.Equal(t, 3, d.Attempts)
	require.Equal(t, 200, *d.LastStatus)
	require.Nil(t, d.LastError)
	require.Nil(t, d.NextAttemptAt)
	require.NotNil(t, d.FinishedAt)
	require.Len(t, attempts, 3)
	for i, a := range attempts {
		require.Equal(t, i+1, a.Attempt)
		require.NotNil(t, a.ResponseStatus)
		require.NotNil(t, a.ResponseBody)
		require.GreaterOrEqual(t, a.DurationMS, 0)
	}
	require.Equal(t, []int{500, 500, 200}, []int{*attempts[0].ResponseStatus, *attempts[1].ResponseStatus, *attempts[2].ResponseStatus})
	require.Equal(t, "fail 1", *attempts[0].ResponseBody)
	require.Equal(t, "fail 2", *attempts[1].ResponseBody)
	require.Equal(t, "accepted", *attempts[2].ResponseBody)
	require.Equal(t, "answered 500", *attempts[0].Error)
	require.Nil(t, attempts[2].Error)
	require.GreaterOrEqual(t, attempts[2].DurationMS, 20, "latency is recorded")
	require.True(t, attempts[0].StartedAt.Before(attempts[1].StartedAt) && attempts[1].StartedAt.Before(attempts[2].StartedAt))
	require.Zero(t, f.endpoint(t).ConsecutiveFailures, "a success ends the failure streak")
}

func TestWebhookRetryIsScheduledByRiver(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: func(n int, w http.ResponseWriter) {
		if n == 1 {
			fail(http.StatusInternalServerError)(n, w)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}})
	ctx := context.Background()
	require.NoError(t, f.client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, f.client.Stop(stopCtx))
	})
	ingest(t, f.testBundle, f.acct.ID, event.TypeWon, map[string]any{"amount": 1500.0})

	var (
		jobID                    int64
		deliveryID               uuid.UUID
		state                    rivertype.JobState
		attemptedAt, scheduledAt time.Time
	)
	// River leaves a failed job retryable until its retry is due, or
	// available but scheduled when the retry is due within its scheduler's
	// interval (5s), as the first one is.
	require.Eventually(t, func() bool {
		res, err := f.client.JobList(ctx, river.NewJobListParams().Kinds(jobs.WebhookDeliver{}.Kind()))
		if err != nil {
			return false
		}
		for _, row := range res.Jobs {
			if row.Attempt != 1 || len(row.Errors) != 1 || row.State == rivertype.JobStateRunning || row.AttemptedAt == nil {
				continue
			}
			var args jobs.WebhookDeliver
			if json.Unmarshal(row.EncodedArgs, &args) != nil {
				return false
			}
			jobID, deliveryID, state, attemptedAt, scheduledAt = row.ID, args.DeliveryID, row.State, *row.AttemptedAt, row.ScheduledAt
			return true
		}
		return false
	}, 20*time.Second, 5*time.Millisecond, "the failed attempt was not retried")
	require.Contains(t, []rivertype.JobState{rivertype.JobStateRetryable, rivertype.JobStateAvailable}, state)
	require.WithinRange(t, scheduledAt, attemptedAt.Add(webhook.RetrySchedule[0]), attemptedAt.Add(webhook.RetrySchedule[0]+2*time.Second))
	d, _ := f.delivery(t, deliveryID)
	require.Equal(t, webhook.StatusPending, d.Status)
	require.NotNil(t, d.NextAttemptAt)
	require.WithinDuration(t, *d.NextAttemptAt, scheduledAt, time.Millisecond, "River took the delivery's schedule")

	// River runs the job again once it is due, and it succeeds.
	require.Eventually(t, func() bool {
		d, _, err := f.svc.GetDelivery(ctx, deliveryID)
		return err == nil && d.Status == webhook.StatusSucceeded
	}, 30*time.Second, 20*time.Millisecond)
	waitIdle(t, f.testBundle, nil)
	row, err := f.client.JobGet(ctx, jobID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, row.State)
	require.Equal(t, 2, row.Attempt)
	require.Equal(t, queue.Webhooks, row.Queue)
	reqs := f.recv.requests()
	require.Len(t, reqs, 2)
	require.Equal(t, reqs[0].header.Get("webhook-id"), reqs[1].header.Get("webhook-id"))
	require.NoError(t, reqs[1].verified[f.secret])
}

func TestWebhookRetryAfterStretchesTheSchedule(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "120")
		case 2:
			w.Header().Set("Retry-After", time.Now().Add(10*time.Minute).UTC().Format(http.TimeFormat))
		default:
			w.Header().Set("Retry-After", "1") // shorter than the schedule
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}})
	id := f.match(t)

	for i, tc := range []struct {
		wait, tolerance time.Duration
	}{
		{120 * time.Second, time.Second},
		{10 * time.Minute, 2 * time.Second}, // an HTTP date has whole seconds
		{webhook.RetrySchedule[2], time.Second},
	} {
		require.Greater(t, tc.wait, webhook.RetrySchedule[0], "the test needs waits longer than the first scheduled one")
		before := time.Now()
		job, err := f.attempt(t, id)
		after := time.Now()
		requireFailedAttempt(t, err)
		require.Equal(t, i+1, job.Attempt)
		requireNextRetry(t, f, job, before, after, tc.wait, tc.tolerance)
	}
	_, attempts := f.delivery(t, id)
	require.Len(t, attempts, 3)
	for _, a := range attempts {
		require.Equal(t, http.StatusServiceUnavailable, *a.ResponseStatus)
	}
}

func TestWebhookGoneDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: fail(http.StatusGone)})
	first := f.match(t)
	second := f.match(t) // queued before the endpoint goes

	job, err := f.attempt(t, first)
	require.NoError(t, err, "the job is cancelled, not failed")
	require.Equal(t, rivertype.JobStateCancelled, job.State)
	d, attempts := f.delivery(t, first)
	require.Equal(t, webhook.StatusFailed, d.Status)
	require.Equal(t, http.StatusGone, *d.LastStatus)
	require.NotNil(t, d.FinishedAt)
	require.Nil(t, d.NextAttemptAt)
	require.Len(t, attempts, 1)
	require.Equal(t, 1, job.Attempt)
	ep := f.endpoint(t)
	require.False(t, ep.Enabled)
	require.NotNil(t, ep.DisabledReason)
	require.Equal(t, webhook.DisabledGone, *ep.DisabledReason)
	require.NotNil(t, ep.DisabledAt)

	// A delivery already queued is abandoned without a request.
	job, err = f.attempt(t, second)
	require.NoError(t, err)
	requireJobState(t, f.testBundle, job.ID, rivertype.JobStateCompleted)
	require.Len(t, f.recv.requests(), 1)
	d, attempts = f.delivery(t, second)
	require.Equal(t, webhook.StatusFailed, d.Status)
	require.Zero(t, d.Attempts)
	require.Empty(t, attempts)
	require.NotNil(t, d.LastError)
	require.Contains(t, *d.LastError, "disabled")
	require.NotNil(t, d.FinishedAt)

	// A new match is recorded as skipped, with no delivery.
	_, e := f.evaluate(t)
	require.Equal(t, engine.SkippedEndpointDisabled, e.Actions[0].Skipped)
	require.Nil(t, e.Actions[0].DeliveryID)
	require.Equal(t, 2, countRows(t, f.testBundle, `SELECT count(*) FROM webhook_deliveries`))
	rivertest.RequireManyInserted(f.ctx, t, riverpgxv5.New(f.pool),
		[]rivertest.ExpectedJob{{Args: jobs.WebhookDeliver{}}, {Args: jobs.WebhookDeliver{}}})
}

func TestWebhookRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(other.Close)
	statuses := []int{http.StatusFound, http.StatusTemporaryRedirect}
	f := newHook(t, hookOptions{respond: func(n int, w http.ResponseWriter) {
		w.Header().Set("Location", other.URL+"/elsewhere")
		w.WriteHeader(statuses[(n-1)%len(statuses)])
	}})
	id := f.match(t)

	for i, status := range statuses {
		job, err := f.attempt(t, id)
		requireFailedAttempt(t, err)
		require.ErrorContains(t, err, strconv.Itoa(status))
		require.Equal(t, i+1, job.Attempt)
	}
	require.Zero(t, elsewhere.Load(), "the redirect target is never reached")
	require.Len(t, f.recv.requests(), len(statuses))
	d, attempts := f.delivery(t, id)
	require.Equal(t, webhook.StatusPending, d.Status)
	require.Len(t, attempts, len(statuses))
	for i, status := range statuses {
		require.Equal(t, status, *attempts[i].ResponseStatus)
		require.NotNil(t, attempts[i].Error)
		require.Contains(t, *attempts[i].Error, "redirects are not followed")
	}
}

func TestWebhookPrivateAddressesAreRefused(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{egress: &egress.Options{Timeout: 5 * time.Second}})
	id := f.match(t)
	require.Contains(t, f.ep.URL, "127.0.0.1")

	_, err := f.attempt(t, id)
	requireFailedAttempt(t, err)
	require.ErrorContains(t, err, "127.0.0.1 is not a public address")
	require.Empty(t, f.recv.requests(), "no request reaches the receiver")
	d, attempts := f.delivery(t, id)
	require.Equal(t, webhook.StatusPending, d.Status)
	require.Nil(t, d.LastStatus)
	require.Len(t, attempts, 1)
	require.Nil(t, attempts[0].ResponseStatus)
	require.Nil(t, attempts[0].ResponseBody)
	require.NotNil(t, attempts[0].Error)
	require.Contains(t, *attempts[0].Error, "127.0.0.1 is not a public address")

	// An allowed range is reached.
	f.worker = f.newWorker(f.svc, egress.Options{Timeout: 5 * time.Second, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	_, err = f.attempt(t, id)
	require.NoError(t, err)
	reqs := f.recv.requests()
	require.Len(t, reqs, 1)
	require.NoError(t, reqs[0].verified[f.secret])
	d, _ = f.delivery(t, id)
	require.Equal(t, webhook.StatusSucceeded, d.Status)
}

func TestWebhookSecretRotation(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	oldSecret := f.secret
	newSecret, oldExpire, err := f.svc.RotateSecret(f.ctx, f.ep.ID)
	require.NoError(t, err)
	require.NotEqual(t, oldSecret, newSecret)
	require.WithinDuration(t, time.Now().Add(webhook.DefaultSecretGrace), oldExpire, 5*time.Second)
	f.recv.trust(newSecret)

	_, err = f.attempt(t, f.match(t))
	require.NoError(t, err)
	reqs := f.recv.requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	sigs := strings.Fields(r.header.Get("webhook-signature"))
	require.Len(t, sigs, 2, "signed with both secrets during the grace period")
	require.NoError(t, r.verified[oldSecret], "a consumer with the old secret verifies")
	require.NoError(t, r.verified[newSecret], "a consumer with the new secret verifies")
	// Each signature is one secret's, the newest first.
	for i, secret := range []string{newSecret, oldSecret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		h := r.header.Clone()
		h.Set("webhook-signature", sigs[i])
		require.NoError(t, wh.Verify(r.body, h))
		h.Set("webhook-signature", sigs[1-i])
		require.ErrorIs(t, wh.Verify(r.body, h), standardwebhooks.ErrNoMatchingSignature)
	}

	// Once the grace period has passed, both earlier secrets stop signing:
	// rotated an hour ago with a minute's grace, they expired 59 minutes ago.
	anHourAgo := func() time.Time { return time.Now().Add(-time.Hour) }
	latest, _, err := webhook.NewService(f.pool, nil, time.Minute, webhook.WithClock(anHourAgo)).RotateSecret(f.ctx, f.ep.ID)
	require.NoError(t, err)
	f.recv.trust(latest)
	require.Equal(t, 2, countRows(t, f.testBundle,
		`SELECT count(*) FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at <= now()`, f.ep.ID))

	_, err = f.attempt(t, f.match(t))
	require.NoError(t, err)
	reqs = f.recv.requests()
	require.Len(t, reqs, 2)
	r = reqs[1]
	require.Len(t, strings.Fields(r.header.Get("webhook-signature")), 1)
	require.NoError(t, r.verified[latest])
	require.ErrorIs(t, r.verified[newSecret], standardwebhooks.ErrNoMatchingSignature)
	require.ErrorIs(t, r.verified[oldSecret], standardwebhooks.ErrNoMatchingSignature)
}

// secretsDump is the webhook_secrets table as text, as a dump shows it.
func secretsDump(t *testing.T, f *hookFixture) string {
	t.Helper()
	var dump string
	require.NoError(t, f.pool.QueryRow(context.Background(),
		`SELECT coalesce(string_agg(s::text, E'\n'), '') FROM webhook_secrets s`).Scan(&dump))
	return dump
}

func rawKey(t *testing.T, secret string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, webhook.SecretPrefix))
	require.NoError(t, err)
	require.Len(t, raw, 32)
	return raw
}

func TestWebhookSecretsAreSealedAtRest(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	sealer, err := webhook.ParseSealKey(base64.StdEncoding.EncodeToString(key))
	require.NoError(t, err)
	require.NotNil(t, sealer)
	f := newHook(t, hookOptions{sealer: sealer})
	raw := rawKey(t, f.secret)

	var (
		stored []byte
		sealed bool
	)
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT secret, sealed FROM webhook_secrets WHERE endpoint_id = $1`, f.ep.ID).
		Scan(&stored, &sealed))
	require.True(t, sealed)
	require.NotEqual(t, raw, stored)
	require.False(t, bytes.Contains(stored, raw))
	dump := secretsDump(t, f)
	require.NotContains(t, dump, f.secret)
	require.NotContains(t, dump, strings.TrimPrefix(f.secret, webhook.SecretPrefix))
	require.NotContains(t, dump, hex.EncodeToString(raw))

	// Without a key, the dump does show the secret: the checks above can fail.
	_, plainSecret, err := webhook.NewService(f.pool, nil, 0).Create(f.ctx, webhook.Input{URL: f.recv.srv.URL, Enabled: true})
	require.NoError(t, err)
	require.Contains(t, secretsDump(t, f), hex.EncodeToString(rawKey(t, plainSecret)))

	// Sealed secrets still sign.
	_, err = f.attempt(t, f.match(t))
	require.NoError(t, err)
	reqs := f.recv.requests()
	require.Len(t, reqs, 1)
	require.NoError(t, reqs[0].verified[f.secret])

	// A worker without the key, or with another, fails the attempt with an
	// error and sends nothing.
	id := f.match(t)
	f.worker = f.newWorker(webhook.NewService(f.pool, nil, 0), loopback)
	job, err := f.attempt(t, id)
	requireFailedAttempt(t, err)
	require.ErrorIs(t, err, webhook.ErrNoSealKey)
	other, err := webhook.ParseSealKey(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	require.NoError(t, err)
	f.worker = f.newWorker(webhook.NewService(f.pool, other, 0), loopback)
	_, err = f.attempt(t, id)
	requireFailedAttempt(t, err)
	require.ErrorContains(t, err, "cannot decrypt webhook secret")
	require.Len(t, f.recv.requests(), 1)
	d, attempts := f.delivery(t, id)
	require.Equal(t, webhook.StatusPending, d.Status, "River retries: the key may be configured meanwhile")
	require.Empty(t, attempts)

	// On the last attempt the delivery is failed with the reason, so that it
	// does not stay pending once River discards the job.
	f.worker = f.newWorker(webhook.NewService(f.pool, nil, 0), loopback)
	job, err = f.attemptNumber(t, id, job.MaxAttempts)
	require.Equal(t, job.MaxAttempts, job.Attempt)
	requireFailedAttempt(t, err)
	require.ErrorIs(t, err, webhook.ErrNoSealKey)
	d, _ = f.delivery(t, id)
	require.Equal(t, webhook.StatusFailed, d.Status)
	require.NotNil(t, d.FinishedAt)
	require.NotNil(t, d.LastError)
	require.Contains(t, *d.LastError, webhook.ErrNoSealKey.Error())
	require.Len(t, f.recv.requests(), 1)
}

func TestWebhookManualReplay(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: func(n int, w http.ResponseWriter) {
		if n == 2 {
			w.Header().Set("Retry-After", "300")
			fail(http.StatusInternalServerError)(n, w)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}})

	// A succeeded delivery goes back to pending with a new job.
	id := f.match(t)
	first, err := f.attempt(t, id)
	require.NoError(t, err)
	d, err := f.svc.Retry(f.ctx, f.client, id)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusPending, d.Status)
	require.Nil(t, d.FinishedAt)
	all := deliveryJobs(t, f, id)
	require.Len(t, all, 2)
	require.Equal(t, first.ID, all[0].ID)
	require.Equal(t, rivertype.JobStateCompleted, all[0].State)
	require.Equal(t, rivertype.JobStateAvailable, all[1].State)
	require.Equal(t, queue.Webhooks, all[1].Queue)
	require.Equal(t, webhook.MaxAttempts, all[1].MaxAttempts)
	var jobID int64
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT job_id FROM webhook_deliveries WHERE id = $1`, id).Scan(&jobID))
	require.Equal(t, all[1].ID, jobID)

	// Running it fails once (the receiver's second request), then delivers
	// with the same webhook-id.
	replay, err := f.attempt(t, id)
	requireFailedAttempt(t, err)
	require.Equal(t, all[1].ID, replay.ID)
	require.Equal(t, 1, replay.Attempt)

	// The pending delivery's job waits five minutes for its retry, as the
	// receiver's Retry-After asked.
	require.Equal(t, rivertype.JobStateRetryable, replay.State)
	require.WithinDuration(t, time.Now().Add(5*time.Minute), replay.ScheduledAt, 5*time.Second)
	before := time.Now()
	d, err = f.svc.Retry(f.ctx, f.client, id)
	require.NoError(t, err)
	require.Equal(t, webhook.StatusPending, d.Status)
	row, err := f.client.JobGet(f.ctx, replay.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateAvailable, row.State, "brought forward")
	require.WithinRange(t, row.ScheduledAt, before.Add(-time.Second), time.Now().Add(time.Second))
	require.Len(t, deliveryJobs(t, f, id), 2, "no new job")
	d, _ = f.delivery(t, id)
	require.NotNil(t, d.NextAttemptAt)
	require.WithinRange(t, *d.NextAttemptAt, before.Add(-time.Second), time.Now().Add(time.Second),
		"the delivery shows its next attempt brought forward")

	replay, err = f.attempt(t, id)
	require.NoError(t, err)
	require.Equal(t, 2, replay.Attempt)
	requireJobState(t, f.testBundle, replay.ID, rivertype.JobStateCompleted)
	reqs := f.recv.requests()
	require.Len(t, reqs, 3)
	for _, r := range reqs {
		require.Equal(t, id.String(), r.header.Get("webhook-id"))
		require.NoError(t, r.verified[f.secret])
		require.Equal(t, reqs[0].body, r.body)
	}
	d, attempts := f.delivery(t, id)
	require.Equal(t, webhook.StatusSucceeded, d.Status)
	require.Equal(t, 3, d.Attempts)
	require.Len(t, attempts, 3)
	require.Equal(t, []int{200, 500, 200}, []int{*attempts[0].ResponseStatus, *attempts[1].ResponseStatus, *attempts[2].ResponseStatus})

	// A disabled endpoint is not replayed to.
	disabled := false
	_, err = f.svc.Update(f.ctx, f.ep.ID, webhook.Patch{Enabled: &disabled})
	require.NoError(t, err)
	_, err = f.svc.Retry(f.ctx, f.client, id)
	require.ErrorIs(t, err, webhook.ErrEndpointUnusable)
	d, _ = f.delivery(t, id)
	require.Equal(t, webhook.StatusSucceeded, d.Status)
	require.Len(t, deliveryJobs(t, f, id), 2)

	_, err = f.svc.Retry(f.ctx, f.client, uuid.New())
	require.ErrorIs(t, err, webhook.ErrDeliveryNotFound)
}

func TestWebhookDeliveryFailsWhenAttemptsAreExhausted(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: fail(http.StatusInternalServerError)})
	id := f.match(t)

	// The last but one attempt is retried.
	job, err := f.attemptNumber(t, id, webhook.MaxAttempts-1)
	requireFailedAttempt(t, err)
	require.Equal(t, webhook.MaxAttempts-1, job.Attempt)
	d, _ := f.delivery(t, id)
	require.Equal(t, webhook.StatusPending, d.Status)
	require.NotNil(t, d.NextAttemptAt)

	// The last one gives up; River discards the job on the error.
	job, err = f.attempt(t, id)
	requireFailedAttempt(t, err)
	require.Equal(t, webhook.MaxAttempts, job.Attempt)
	require.Equal(t, job.MaxAttempts, job.Attempt)
	d, attempts := f.delivery(t, id)
	require.Equal(t, webhook.StatusFailed, d.Status)
	require.Nil(t, d.NextAttemptAt)
	require.NotNil(t, d.FinishedAt)
	require.Equal(t, 500, *d.LastStatus)
	require.Len(t, attempts, 2)
	require.True(t, f.endpoint(t).Enabled, "one exhausted delivery does not disable the endpoint")
}

func TestWebhookFailureStreakDisablesTheEndpoint(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: fail(http.StatusInternalServerError)})
	id := f.match(t)
	_, err := f.pool.Exec(f.ctx, `UPDATE webhook_endpoints SET consecutive_failures = $2 WHERE id = $1`,
		f.ep.ID, webhook.DisableAfterFailures-2)
	require.NoError(t, err)

	_, err = f.attempt(t, id)
	requireFailedAttempt(t, err)
	ep := f.endpoint(t)
	require.True(t, ep.Enabled, "one failure short of the limit")
	require.Equal(t, webhook.DisableAfterFailures-1, ep.ConsecutiveFailures)
	require.Nil(t, ep.DisabledReason)

	_, err = f.attempt(t, id)
	requireFailedAttempt(t, err)
	ep = f.endpoint(t)
	require.False(t, ep.Enabled)
	require.Equal(t, webhook.DisableAfterFailures, ep.ConsecutiveFailures)
	require.NotNil(t, ep.DisabledReason)
	require.Equal(t, webhook.DisabledFailures, *ep.DisabledReason)
	require.Equal(t, "too many failed attempts in a row", *ep.DisabledReason)
	require.NotNil(t, ep.DisabledAt)

	// The delivery's next attempt finds the endpoint disabled.
	job, err := f.attempt(t, id)
	require.NoError(t, err)
	requireJobState(t, f.testBundle, job.ID, rivertype.JobStateCompleted)
	require.Len(t, f.recv.requests(), 2)
	d, _ := f.delivery(t, id)
	require.Equal(t, webhook.StatusFailed, d.Status)
	require.Equal(t, 2, d.Attempts)
}

func TestWebhookSuccessResetsTheFailureStreak(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	_, err := f.pool.Exec(f.ctx, `UPDATE webhook_endpoints SET consecutive_failures = 7 WHERE id = $1`, f.ep.ID)
	require.NoError(t, err)
	_, err = f.attempt(t, f.match(t))
	require.NoError(t, err)
	ep := f.endpoint(t)
	require.Zero(t, ep.ConsecutiveFailures)
	require.True(t, ep.Enabled)
}

func TestWebhookResponseSnippetsAreCapped(t *testing.T) {
	t.Parallel()
	bodies := []string{
		strings.Repeat("x", 1<<20),
		// Three-byte characters: the cap falls inside one.
		strings.Repeat("€", 1<<20/3),
	}
	f := newHook(t, hookOptions{respond: func(n int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, bodies[(n-1)%len(bodies)])
	}})
	id := f.match(t)
	for range bodies {
		_, err := f.attempt(t, id)
		requireFailedAttempt(t, err)
	}
	_, attempts := f.delivery(t, id)
	require.Len(t, attempts, len(bodies))
	for i, a := range attempts {
		require.NotNil(t, a.ResponseBody)
		got := *a.ResponseBody
		require.LessOrEqual(t, len(got), webhook.MaxResponseSnippet, "attempt %d", i+1)
		require.Greater(t, len(got), webhook.MaxResponseSnippet-utf8.UTFMax)
		require.True(t, utf8.ValidString(got))
		require.True(t, strings.HasPrefix(bodies[i], strings.TrimSuffix(got, "\uFFFD")))
	}
	require.Equal(t, strings.Repeat("x", webhook.MaxResponseSnippet), *attempts[0].ResponseBody)
}

func TestWebhookAttemptIsRecordedWhenTheJobIsCancelled(t *testing.T) {
	t.Parallel()
	var cancel atomic.Pointer[context.CancelFunc]
	f := newHook(t, hookOptions{respond: func(_ int, w http.ResponseWriter) {
		(*cancel.Load())() // the job's context ends while the request is in flight
		time.Sleep(50 * time.Millisecond)
		_, _ = io.WriteString(w, "ok")
	}})
	id := f.match(t)
	// Work is called directly, as River's producer would with the job running:
	// rivertest's Worker reports the result with the job's context, which this
	// test cancels. A failed attempt leaves the job's row to River.
	row := f.job(t, id)
	row.Attempt, row.State = 1, rivertype.JobStateRunning
	job := &river.Job[jobs.WebhookDeliver]{JobRow: row, Args: jobs.WebhookDeliver{DeliveryID: id}}
	ctx, stop := context.WithCancel(f.ctx)
	defer stop()
	cancel.Store(&stop)

	err := f.worker.Work(ctx, job)
	requireFailedAttempt(t, err)
	require.ErrorContains(t, err, "context canceled")
	d, attempts := f.delivery(t, id)
	require.Equal(t, webhook.StatusPending, d.Status)
	require.Len(t, attempts, 1, "the attempt is recorded")
	require.NotNil(t, attempts[0].Error)
	require.Contains(t, *attempts[0].Error, "context canceled")
	require.NotNil(t, d.NextAttemptAt, "River's retry follows the schedule")
}

func TestWebhookJobsRunOnTheirOwnQueue(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	id := f.match(t)
	require.Equal(t, queue.Webhooks, jobs.WebhookDeliver{}.InsertOpts().Queue)
	require.Contains(t, queue.Names(), queue.Webhooks)
	all := deliveryJobs(t, f, id)
	require.Len(t, all, 1)
	require.Equal(t, "webhooks", all[0].Queue)
	onQueue, err := f.client.JobList(f.ctx, river.NewJobListParams().Queues(queue.Webhooks))
	require.NoError(t, err)
	require.Len(t, onQueue.Jobs, 1, "no other job is on the webhooks queue")
	rivertest.RequireInserted(f.ctx, t, riverpgxv5.New(f.pool), jobs.WebhookDeliver{DeliveryID: id},
		&rivertest.RequireInsertedOpts{Queue: queue.Webhooks})
}

// A webhook URL's query often carries a token: a failed attempt's error, as
// River stores and logs it and as the attempt records it, names the URL
// without the query's values.
func TestWebhookFailureDoesNotRecordTheURLsQuery(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{egress: &egress.Options{Timeout: 5 * time.Second}})
	_, err := f.pool.Exec(context.Background(), `UPDATE webhook_endpoints SET url = url || '/hook?token=s3cret-token' WHERE id = $1`, f.ep.ID)
	require.NoError(t, err)
	id := f.match(t)

	_, err = f.attempt(t, id)
	requireFailedAttempt(t, err)
	require.ErrorContains(t, err, "is not a public address")
	require.NotContains(t, err.Error(), "s3cret-token")
	require.Contains(t, err.Error(), "token=redacted")
	d, attempts := f.delivery(t, id)
	require.Len(t, attempts, 1)
	require.NotNil(t, attempts[0].Error)
	require.NotContains(t, *attempts[0].Error, "s3cret-token")
	require.NotNil(t, d.LastError)
	require.NotContains(t, *d.LastError, "s3cret-token")
}
