package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/metrics"
)

// series returns the metric family name's series whose labels include want,
// or nil.
func series(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
	}
	return nil
}

// counter returns a counter's or gauge's value, 0 when the series is absent.
func counter(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	m := series(t, reg, name, labels)
	switch {
	case m == nil:
		return 0
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s is neither a counter nor a gauge", name)
	return 0
}

// histogram returns a histogram's sample count and sum, zeros when absent.
func histogram(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) (uint64, float64) {
	t.Helper()
	m := series(t, reg, name, labels)
	if m == nil {
		return 0, 0
	}
	require.NotNil(t, m.GetHistogram(), "%s is not a histogram", name)
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	body, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(body)
}

func TestObserveHTTP(t *testing.T) {
	t.Parallel()
	m := metrics.New()

	m.ObserveHTTP("createEvent", http.MethodPost, http.StatusAccepted, 30*time.Millisecond)
	m.ObserveHTTP("createEvent", http.MethodPost, http.StatusAccepted, 70*time.Millisecond)
	m.ObserveHTTP("createEvent", http.MethodPost, http.StatusBadRequest, time.Millisecond)
	m.ObserveHTTP("getEvent", http.MethodGet, 0, time.Millisecond)

	reqs := "ctrader_http_requests_total"
	require.Equal(t, 2.0, counter(t, m.Registry, reqs, map[string]string{"operation": "createEvent", "method": "POST", "status": "202"}))
	require.Equal(t, 1.0, counter(t, m.Registry, reqs, map[string]string{"operation": "createEvent", "method": "POST", "status": "400"}))
	require.Equal(t, 1.0, counter(t, m.Registry, reqs, map[string]string{"operation": "getEvent", "method": "GET", "status": "200"}),
		"a status of 0 counts as 200")
	require.Equal(t, 3, testutil.CollectAndCount(m.Registry, reqs))

	n, sum := histogram(t, m.Registry, "ctrader_http_request_duration_seconds", map[string]string{"operation": "createEvent", "method": "POST"})
	require.Equal(t, uint64(3), n)
	require.InDelta(t, 0.101, sum, 1e-9)
	n, _ = histogram(t, m.Registry, "ctrader_http_request_duration_seconds", map[string]string{"operation": "getEvent", "method": "GET"})
	require.Equal(t, uint64(1), n)
}

func TestDomainMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	reg := m.Registry

	require.Equal(t, 0.0, counter(t, reg, "ctrader_events_ingested_total", nil))
	m.EventsIngested(3)
	m.EventsIngested(0)
	m.EventsIngested(-2)
	m.EventsIngested(1)
	require.Equal(t, 4.0, counter(t, reg, "ctrader_events_ingested_total", nil))

	m.EventProcessed(1500 * time.Millisecond)
	m.EventProcessed(-time.Second)
	n, sum := histogram(t, reg, "ctrader_event_processing_seconds", nil)
	require.Equal(t, uint64(2), n)
	require.InDelta(t, 1.5, sum, 1e-9, "a negative latency counts as zero")

	m.RuleEvaluated(true, false, 20*time.Microsecond)
	m.RuleEvaluated(true, false, 20*time.Microsecond)
	m.RuleEvaluated(false, false, 10*time.Microsecond)
	m.RuleEvaluated(true, true, 10*time.Microsecond)
	evals := "ctrader_rule_evaluations_total"
	require.Equal(t, 2.0, counter(t, reg, evals, map[string]string{"result": "matched"}))
	require.Equal(t, 1.0, counter(t, reg, evals, map[string]string{"result": "unmatched"}))
	require.Equal(t, 1.0, counter(t, reg, evals, map[string]string{"result": "error"}), "failed wins over matched")
	n, sum = histogram(t, reg, "ctrader_rule_evaluation_seconds", nil)
	require.Equal(t, uint64(4), n)
	require.InDelta(t, 60e-6, sum, 1e-12)

	require.NotNil(t, series(t, reg, "ctrader_webhook_deliveries_total", map[string]string{"outcome": "failed"}),
		"known outcomes start at zero")
	m.WebhookDelivered(metrics.WebhookSucceeded)
	m.WebhookDelivered(metrics.WebhookRetried)
	m.WebhookDelivered(metrics.WebhookRetried)
	hooks := "ctrader_webhook_deliveries_total"
	require.Equal(t, 1.0, counter(t, reg, hooks, map[string]string{"outcome": "succeeded"}))
	require.Equal(t, 2.0, counter(t, reg, hooks, map[string]string{"outcome": "retried"}))
	require.Equal(t, 0.0, counter(t, reg, hooks, map[string]string{"outcome": "failed"}))
}

func TestNilMetrics(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics

	m.ObserveHTTP("op", http.MethodGet, http.StatusOK, time.Second)
	m.EventsIngested(1)
	m.EventProcessed(time.Second)
	m.RuleEvaluated(true, false, time.Millisecond)
	m.WebhookDelivered(metrics.WebhookSucceeded)

	done := make(chan struct{})
	go func() {
		defer close(done)
		m.RunQueueDepth(context.Background(), nil, time.Millisecond, nil)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunQueueDepth on nil Metrics did not return")
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusNotFound, rec.Code)

	mw := m.JobMiddleware()
	require.True(t, mw.IsMiddleware())
	called := false
	boom := errors.New("boom")
	err := mw.Work(context.Background(), &rivertype.JobRow{Kind: "k", Queue: "q"}, func(context.Context) error {
		called = true
		return boom
	})
	require.True(t, called)
	require.ErrorIs(t, err, boom)
}

func TestJobMiddlewareOutcomes(t *testing.T) {
	t.Parallel()

	scheduled := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	attempted := scheduled.Add(250 * time.Millisecond)
	plain := errors.New("plain")

	cases := []struct {
		name        string
		attempt     int
		maxAttempts int
		err         error
		want        string
	}{
		{"completed", 1, 3, nil, metrics.JobCompleted},
		{"cancelled", 1, 3, river.JobCancel(plain), metrics.JobCancelled},
		{"cancelled wrapped", 3, 3, errors.Join(errors.New("ctx"), river.JobCancel(plain)), metrics.JobCancelled},
		{"snoozed", 1, 3, river.JobSnooze(time.Minute), metrics.JobSnoozed},
		{"snoozed at last attempt", 3, 3, river.JobSnooze(0), metrics.JobSnoozed},
		{"retried", 1, 3, plain, metrics.JobRetried},
		{"retried before last", 2, 3, plain, metrics.JobRetried},
		{"discarded", 3, 3, plain, metrics.JobDiscarded},
		{"discarded past max", 4, 3, plain, metrics.JobDiscarded},
	}
	outcomes := []string{metrics.JobCompleted, metrics.JobRetried, metrics.JobDiscarded, metrics.JobCancelled, metrics.JobSnoozed}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New()
			mw := m.JobMiddleware()
			job := &rivertype.JobRow{
				ID: 1, Kind: "event.won", Queue: "events",
				Attempt: tc.attempt, MaxAttempts: tc.maxAttempts,
				ScheduledAt: scheduled, AttemptedAt: &attempted,
			}

			err := mw.Work(context.Background(), job, func(context.Context) error {
				time.Sleep(5 * time.Millisecond)
				return tc.err
			})
			require.Equal(t, tc.err, err, "the middleware returns the inner error unchanged")

			for _, o := range outcomes {
				want := 0.0
				if o == tc.want {
					want = 1
				}
				require.Equal(t, want, counter(t, m.Registry, "ctrader_jobs_total",
					map[string]string{"kind": "event.won", "queue": "events", "outcome": o}), "outcome %s", o)
			}

			n, sum := histogram(t, m.Registry, "ctrader_job_run_seconds", map[string]string{"kind": "event.won", "queue": "events"})
			require.Equal(t, uint64(1), n)
			require.GreaterOrEqual(t, sum, 0.005)

			n, sum = histogram(t, m.Registry, "ctrader_job_queue_latency_seconds", map[string]string{"kind": "event.won", "queue": "events"})
			require.Equal(t, uint64(1), n)
			require.InDelta(t, 0.25, sum, 1e-9)
		})
	}
}

func TestJobMiddlewareLabelsAndLatency(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	mw := m.JobMiddleware()
	ok := func(context.Context) error { return nil }

	now := time.Now()
	late := now.Add(3 * time.Second)
	early := now.Add(-time.Second)
	require.NoError(t, mw.Work(context.Background(), &rivertype.JobRow{Kind: "a", Queue: "q1", Attempt: 1, MaxAttempts: 1, ScheduledAt: now, AttemptedAt: &late}, ok))
	require.NoError(t, mw.Work(context.Background(), &rivertype.JobRow{Kind: "a", Queue: "q1", Attempt: 1, MaxAttempts: 1, ScheduledAt: now, AttemptedAt: &early}, ok))
	require.NoError(t, mw.Work(context.Background(), &rivertype.JobRow{Kind: "b", Queue: "q2", Attempt: 1, MaxAttempts: 1, ScheduledAt: now}, ok))

	n, sum := histogram(t, m.Registry, "ctrader_job_queue_latency_seconds", map[string]string{"kind": "a", "queue": "q1"})
	require.Equal(t, uint64(2), n)
	require.InDelta(t, 3.0, sum, 1e-9, "a start before the scheduled time counts as zero")
	n, _ = histogram(t, m.Registry, "ctrader_job_queue_latency_seconds", map[string]string{"kind": "b", "queue": "q2"})
	require.Equal(t, uint64(0), n, "no latency without AttemptedAt")

	require.Equal(t, 2.0, counter(t, m.Registry, "ctrader_jobs_total", map[string]string{"kind": "a", "queue": "q1", "outcome": "completed"}))
	require.Equal(t, 1.0, counter(t, m.Registry, "ctrader_jobs_total", map[string]string{"kind": "b", "queue": "q2", "outcome": "completed"}))
}

func TestJobMiddlewarePanicAndRemoteCancel(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	mw := m.JobMiddleware()
	labels := func(outcome string) map[string]string {
		return map[string]string{"kind": "k", "queue": "q", "outcome": outcome}
	}

	require.PanicsWithValue(t, "kaboom", func() {
		_ = mw.Work(context.Background(), &rivertype.JobRow{Kind: "k", Queue: "q", Attempt: 1, MaxAttempts: 2}, func(context.Context) error {
			panic("kaboom")
		})
	}, "a panic goes on to River")
	require.Equal(t, 1.0, counter(t, m.Registry, "ctrader_jobs_total", labels(metrics.JobRetried)))
	require.Panics(t, func() {
		_ = mw.Work(context.Background(), &rivertype.JobRow{Kind: "k", Queue: "q", Attempt: 2, MaxAttempts: 2}, func(context.Context) error {
			panic("kaboom")
		})
	})
	require.Equal(t, 1.0, counter(t, m.Registry, "ctrader_jobs_total", labels(metrics.JobDiscarded)))
	n, _ := histogram(t, m.Registry, "ctrader_job_run_seconds", map[string]string{"kind": "k", "queue": "q"})
	require.Equal(t, uint64(2), n)

	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(river.ErrJobCancelledRemotely)
	err := mw.Work(ctx, &rivertype.JobRow{Kind: "k", Queue: "q", Attempt: 1, MaxAttempts: 2}, func(ctx context.Context) error {
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 1.0, counter(t, m.Registry, "ctrader_jobs_total", labels(metrics.JobCancelled)))
}

type workArgs struct {
	Fail bool `json:"fail"`
}

func (workArgs) Kind() string { return "metrics_test.work" }

func (workArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: "metrics_test", MaxAttempts: 1}
}

type workWorker struct {
	river.WorkerDefaults[workArgs]
}

func (workWorker) Work(_ context.Context, job *river.Job[workArgs]) error {
	if job.Args.Fail {
		return errors.New("failing on purpose")
	}
	return nil
}

// TestJobMiddlewareInRiver installs the middleware through river.Config and
// lets a real client work jobs.
func TestJobMiddlewareInRiver(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	m := metrics.New()

	workers := river.NewWorkers()
	river.AddWorker(workers, workWorker{})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:            dbtest.Logger(t),
		Workers:           workers,
		Queues:            map[string]river.QueueConfig{"metrics_test": {MaxWorkers: 2}},
		FetchPollInterval: 100 * time.Millisecond,
		Middleware:        []rivertype.Middleware{m.JobMiddleware()},
	})
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, unsubscribe := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer unsubscribe()
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		require.NoError(t, client.Stop(stopCtx))
	})

	_, err = client.InsertMany(ctx, []river.InsertManyParams{
		{Args: workArgs{}}, {Args: workArgs{}}, {Args: workArgs{Fail: true}},
	})
	require.NoError(t, err)
	for range 3 {
		select {
		case <-events:
		case <-ctx.Done():
			t.Fatal("jobs were not worked in time")
		}
	}

	labels := func(outcome string) map[string]string {
		return map[string]string{"kind": "metrics_test.work", "queue": "metrics_test", "outcome": outcome}
	}
	require.Equal(t, 2.0, counter(t, m.Registry, "ctrader_jobs_total", labels(metrics.JobCompleted)))
	require.Equal(t, 1.0, counter(t, m.Registry, "ctrader_jobs_total", labels(metrics.JobDiscarded)))
	n, _ := histogram(t, m.Registry, "ctrader_job_queue_latency_seconds", map[string]string{"kind": "metrics_test.work", "queue": "metrics_test"})
	require.Equal(t, uint64(3), n)
}

type queueArgs struct {
	Queue string `json:"queue"`
	N     int    `json:"n"`
}

func (queueArgs) Kind() string { return "metrics_test.queue" }

func TestRunQueueDepth(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An insert-only client: no workers, no queues.
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: dbtest.Logger(t)})
	require.NoError(t, err)
	later := time.Now().Add(time.Hour)
	_, err = client.InsertMany(ctx, []river.InsertManyParams{
		{Args: queueArgs{Queue: "alpha", N: 1}, InsertOpts: &river.InsertOpts{Queue: "alpha"}},
		{Args: queueArgs{Queue: "alpha", N: 2}, InsertOpts: &river.InsertOpts{Queue: "alpha"}},
		{Args: queueArgs{Queue: "beta", N: 1}, InsertOpts: &river.InsertOpts{Queue: "beta"}},
		{Args: queueArgs{Queue: "beta", N: 2}, InsertOpts: &river.InsertOpts{Queue: "beta", ScheduledAt: later}},
		{Args: queueArgs{Queue: "beta", N: 3}, InsertOpts: &river.InsertOpts{Queue: "beta", ScheduledAt: later}},
	})
	require.NoError(t, err)

	m := metrics.New()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.RunQueueDepth(runCtx, pool, 50*time.Millisecond, dbtest.Logger(t))
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})

	gauge := func(queue, state string) float64 {
		return counter(t, m.Registry, "ctrader_queue_jobs", map[string]string{"queue": queue, "state": state})
	}
	require.Eventually(t, func() bool {
		return gauge("alpha", "available") == 2 && gauge("beta", "available") == 1 && gauge("beta", "scheduled") == 2
	}, 10*time.Second, 20*time.Millisecond)
	require.NotNil(t, series(t, m.Registry, "ctrader_queue_jobs", map[string]string{"queue": "alpha", "state": "retryable"}),
		"every state of a seen queue is reported")
	require.Nil(t, series(t, m.Registry, "ctrader_queue_jobs", map[string]string{"queue": "gamma"}))

	// Finalize alpha's jobs and make one of beta's scheduled jobs available.
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE queue = 'alpha'`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'available', scheduled_at = now()
		WHERE id = (SELECT min(id) FROM river_job WHERE queue = 'beta' AND state = 'scheduled')`)
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		return gauge("alpha", "available") == 0 && gauge("beta", "available") == 2 && gauge("beta", "scheduled") == 1
	}, 10*time.Second, 20*time.Millisecond)
	require.NotNil(t, series(t, m.Registry, "ctrader_queue_jobs", map[string]string{"queue": "alpha", "state": "available"}),
		"a drained queue reads zero")
	require.Positive(t, counter(t, m.Registry, "ctrader_queue_depth_last_refresh_timestamp_seconds", nil))
	require.Zero(t, counter(t, m.Registry, "ctrader_queue_depth_refresh_errors_total", nil))

	// It stops with its context.
	stop()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("RunQueueDepth did not stop")
	}
}

func TestRunQueueDepthCountsErrors(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := pool.Exec(ctx, `ALTER TABLE river_job RENAME TO river_job_gone`)
	require.NoError(t, err)

	m := metrics.New()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.RunQueueDepth(runCtx, pool, 20*time.Millisecond, nil)
	}()
	defer func() {
		stop()
		<-done
	}()
	require.Eventually(t, func() bool {
		return counter(t, m.Registry, "ctrader_queue_depth_refresh_errors_total", nil) >= 2
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, 0, testutil.CollectAndCount(m.Registry, "ctrader_queue_jobs"))
}

func TestHandler(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.ObserveHTTP("listEvents", http.MethodGet, http.StatusOK, time.Millisecond)
	require.NoError(t, m.JobMiddleware().Work(context.Background(),
		&rivertype.JobRow{Kind: "account.provision", Queue: "accounts", Attempt: 1, MaxAttempts: 1}, func(context.Context) error { return nil }))
	m.EventProcessed(time.Second)
	m.RuleEvaluated(false, false, time.Microsecond)

	body := scrape(t, m.Handler())
	for _, want := range []string{
		`ctrader_http_requests_total{method="GET",operation="listEvents",status="200"} 1`,
		"ctrader_http_request_duration_seconds_bucket",
		`ctrader_jobs_total{kind="account.provision",outcome="completed",queue="accounts"} 1`,
		"ctrader_job_run_seconds_count",
		"ctrader_events_ingested_total 0",
		"ctrader_event_processing_seconds_count 1",
		`ctrader_rule_evaluations_total{result="unmatched"} 1`,
		"ctrader_rule_evaluation_seconds_bucket",
		`ctrader_webhook_deliveries_total{outcome="succeeded"} 0`,
		"go_goroutines",
		"process_",
	} {
		require.Contains(t, body, want)
	}
	require.False(t, strings.Contains(body, "ctrader_queue_jobs{"), "no queue depth before a refresh")

	// A second handler on the same registry works too.
	require.Contains(t, scrape(t, m.Handler()), "promhttp_metric_handler_requests_total")
}
