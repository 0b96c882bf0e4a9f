package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Job outcomes (the outcome label of ctrader_jobs_total). They follow what
// River does with the attempt.
const (
	JobCompleted = "completed"
	JobRetried   = "retried"
	JobDiscarded = "discarded"
	JobCancelled = "cancelled"
	JobSnoozed   = "snoozed"
)

// JobMiddleware returns a River worker middleware that records, for every job
// attempt, its outcome (ctrader_jobs_total), its run time
// (ctrader_job_run_seconds) and how long it waited from its scheduled time to
// its start (ctrader_job_queue_latency_seconds). Install it globally with
// river.Config.Middleware. On a nil Metrics it only calls the next handler.
func (m *Metrics) JobMiddleware() rivertype.WorkerMiddleware {
	return &jobMiddleware{m: m}
}

type jobMiddleware struct {
	river.MiddlewareDefaults
	m *Metrics
}

func (mw *jobMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) (err error) {
	m := mw.m
	if m == nil || job == nil {
		return doInner(ctx)
	}
	if job.AttemptedAt != nil {
		m.jobQueueLatency.WithLabelValues(job.Kind, job.Queue).Observe(seconds(job.AttemptedAt.Sub(job.ScheduledAt)))
	}

	start := time.Now()
	panicked := true
	defer func() {
		// A panic is not recovered here: River recovers it and treats it
		// as a failed attempt, which is how it is counted.
		m.jobRun.WithLabelValues(job.Kind, job.Queue).Observe(time.Since(start).Seconds())
		m.jobs.WithLabelValues(job.Kind, job.Queue, jobOutcome(ctx, job, err, panicked)).Inc()
	}()
	err = doInner(ctx)
	panicked = false
	return err
}

// jobOutcome mirrors River's job executor: a snooze is checked first, then an
// explicit or remote cancellation, then whether the attempt was the last one.
func jobOutcome(ctx context.Context, job *rivertype.JobRow, err error, panicked bool) string {
	if !panicked {
		if err == nil {
			return JobCompleted
		}
		var snoozeErr *river.JobSnoozeError
		if errors.As(err, &snoozeErr) {
			return JobSnoozed
		}
		var cancelErr *river.JobCancelError
		if errors.As(err, &cancelErr) || errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely) {
			return JobCancelled
		}
	}
	if job.Attempt >= job.MaxAttempts {
		return JobDiscarded
	}
	return JobRetried
}
