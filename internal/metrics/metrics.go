// Package metrics exposes ctrader's Prometheus metrics: HTTP requests, River
// jobs (through a River worker middleware), queue depth read from river_job,
// and the domain's own counters (events, rule evaluations, webhook
// deliveries).
//
// Every collector lives on the Metrics' own registry; nothing is registered
// globally. A nil *Metrics is valid and turns every method into a no-op, so
// code can run with metrics disabled.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "ctrader"

// Histogram buckets, in seconds.
var (
	// requestBuckets cover HTTP requests and job runs: 1ms to 10s.
	requestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// celBuckets cover one CEL evaluation: 1µs to 100ms.
	celBuckets = []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, .001, .0025, .005, .01, .025, .05, .1}
	// latencyBuckets cover waiting times (event processing, queue latency): 1ms to 60s.
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
)

// Rule evaluation results (the result label of ctrader_rule_evaluations_total).
const (
	RuleMatched   = "matched"
	RuleUnmatched = "unmatched"
	RuleError     = "error"
)

// Webhook delivery outcomes (the outcome label of
// ctrader_webhook_deliveries_total).
const (
	WebhookSucceeded = "succeeded"
	WebhookRetried   = "retried"
	WebhookFailed    = "failed"
)

// Metrics holds ctrader's collectors on its own registry.
type Metrics struct {
	// Registry holds every collector below plus the Go, process and build
	// info collectors. Register further collectors on it as needed.
	Registry *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	jobs            *prometheus.CounterVec
	jobRun          *prometheus.HistogramVec
	jobQueueLatency *prometheus.HistogramVec

	queueJobs         *prometheus.GaugeVec
	queueDepthErrors  prometheus.Counter
	queueDepthRefresh prometheus.Gauge

	eventsIngested  prometheus.Counter
	ingestRefused   prometheus.Counter
	eventProcessing prometheus.Histogram
	ruleEvaluations *prometheus.CounterVec
	ruleDuration    prometheus.Histogram
	webhooks        *prometheus.CounterVec
}

// New returns Metrics with every collector registered on a new registry,
// including the Go runtime, process and build info collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),

		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "http_requests_total",
			Help:      "HTTP requests served, by operation, method and status code.",
		}, []string{"operation", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "http_request_duration_seconds",
			Help:      "Time to serve an HTTP request, by operation and method.",
			Buckets:   requestBuckets,
		}, []string{"operation", "method"}),

		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "jobs_total",
			Help:      "River job attempts worked, by kind, queue and outcome (completed, retried, discarded, cancelled, snoozed).",
		}, []string{"kind", "queue", "outcome"}),
		jobRun: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "job_run_seconds",
			Help:      "Time a River job attempt spent running, by kind and queue.",
			Buckets:   requestBuckets,
		}, []string{"kind", "queue"}),
		jobQueueLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "job_queue_latency_seconds",
			Help:      "Time from a River job's scheduled time to the start of its attempt, by kind and queue.",
			Buckets:   latencyBuckets,
		}, []string{"kind", "queue"}),

		queueJobs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "queue_jobs",
			Help:      "River jobs not yet finalized, by queue and state, as of the last refresh.",
		}, []string{"queue", "state"}),
		queueDepthErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "queue_depth_refresh_errors_total",
			Help:      "Failed reads of queue depth from river_job.",
		}),
		queueDepthRefresh: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "queue_depth_last_refresh_timestamp_seconds",
			Help:      "Unix time of the last successful read of queue depth.",
		}),

		eventsIngested: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "events_ingested_total",
			Help:      "Events accepted for processing.",
		}),
		ingestRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "ingest_refused_total",
			Help:      "Event posts answered 503 because processing lagged more than INGEST_MAX_LAG behind.",
		}),
		eventProcessing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "event_processing_seconds",
			Help:      "Time from an event's receipt to the end of its processing.",
			Buckets:   latencyBuckets,
		}),
		ruleEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "rule_evaluations_total",
			Help:      "Rule condition evaluations, by result (matched, unmatched, error).",
		}, []string{"result"}),
		ruleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "rule_evaluation_seconds",
			Help:      "Time to evaluate one rule condition (CEL).",
			Buckets:   celBuckets,
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "webhook_deliveries_total",
			Help:      "Webhook delivery attempts, by outcome (succeeded, retried, failed).",
		}, []string{"outcome"}),
	}

	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		m.httpRequests, m.httpDuration,
		m.jobs, m.jobRun, m.jobQueueLatency,
		m.queueJobs, m.queueDepthErrors, m.queueDepthRefresh,
		m.eventsIngested, m.ingestRefused, m.eventProcessing,
		m.ruleEvaluations, m.ruleDuration,
		m.webhooks,
	)

	// Series with a fixed set of labels start at zero, so rates and alerts
	// work before the first occurrence.
	for _, r := range []string{RuleMatched, RuleUnmatched, RuleError} {
		m.ruleEvaluations.WithLabelValues(r)
	}
	for _, o := range []string{WebhookSucceeded, WebhookRetried, WebhookFailed} {
		m.webhooks.WithLabelValues(o)
	}
	return m
}

// Handler serves the registry in the Prometheus exposition formats. On a nil
// Metrics it answers 404.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.InstrumentMetricHandler(m.Registry, promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		Registry:          m.Registry,
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
}

// ObserveHTTP records one served request. operation should be a bounded name
// (an OpenAPI operation id or a route pattern), never a raw path. A status of
// 0 (nothing written) counts as 200, which is what net/http sends.
func (m *Metrics) ObserveHTTP(operation, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if status == 0 {
		status = http.StatusOK
	}
	m.httpRequests.WithLabelValues(operation, method, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(operation, method).Observe(seconds(d))
}

// EventsIngested counts n accepted events.
func (m *Metrics) EventsIngested(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.eventsIngested.Add(float64(n))
}

// IngestRefused counts a post refused because processing lagged behind.
func (m *Metrics) IngestRefused() {
	if m == nil {
		return
	}
	m.ingestRefused.Inc()
}

// EventProcessed records the time from an event's receipt to the end of its
// processing.
func (m *Metrics) EventProcessed(latency time.Duration) {
	if m == nil {
		return
	}
	m.eventProcessing.Observe(seconds(latency))
}

// RuleEvaluated records one rule condition evaluation and the time it took.
// failed (the condition could not be evaluated) wins over matched.
func (m *Metrics) RuleEvaluated(matched bool, failed bool, d time.Duration) {
	if m == nil {
		return
	}
	result := RuleUnmatched
	switch {
	case failed:
		result = RuleError
	case matched:
		result = RuleMatched
	}
	m.ruleEvaluations.WithLabelValues(result).Inc()
	m.ruleDuration.Observe(seconds(d))
}

// WebhookDelivered counts one delivery attempt; outcome is one of
// WebhookSucceeded, WebhookRetried or WebhookFailed.
func (m *Metrics) WebhookDelivered(outcome string) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(outcome).Inc()
}

// seconds converts d for a histogram; negative durations (clock skew) count
// as zero.
func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}
