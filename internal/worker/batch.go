package worker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/jobs"
)

// eventsJob is an events.process job as River hands it to a worker.
type eventsJob = *river.Job[jobs.EventsProcess]

// batcher gathers the events jobs that River runs at the same time into
// shared transactions: one transaction processes the events of several jobs
// and completes every one of them, so a stream of single posted events costs
// a commit per batch rather than per event.
//
// Nothing waits for a batch to fill. A job that arrives while fewer than
// leaders batches run leads one at once, taking along the jobs already
// waiting; the others wait, and when a batch ends the oldest waiting job
// leads the next. Under light load every job is a batch of its own; under
// heavy load batches grow to maxEvents events.
//
// A batch that runs long (a slow rule, a lock held elsewhere) must not hold
// the jobs of other accounts behind it: a job that has waited slowAfter
// leads a batch of its own, with the jobs waiting with it, while fewer than
// leaders+extra batches run. Those extra batches end when the queue is
// short again.
type batcher struct {
	leaders   int
	maxEvents int
	run       func(ctx context.Context, batch []eventsJob) error
	extra     int           // more batches allowed beside slow ones
	slowAfter time.Duration // how long a job waits before it may lead one

	mu      sync.Mutex
	waiting []*batchItem
	running int // batches being led
}

type batchItem struct {
	job   eventsJob
	since time.Time
	done  chan error    // the outcome of the batch that took the job
	lead  chan struct{} // closed when the job is to lead the next batch
}

func newBatcher(leaders, maxEvents int, run func(ctx context.Context, batch []eventsJob) error) *batcher {
	return &batcher{leaders: max(leaders, 1), maxEvents: maxEvents, run: run}
}

// relieveSlowBatches lets up to extra more batches run beside batches that
// have kept jobs waiting for after.
func (b *batcher) relieveSlowBatches(extra int, after time.Duration) *batcher {
	b.extra, b.slowAfter = extra, after
	return b
}

// do works job in some batch and returns that batch's outcome.
func (b *batcher) do(ctx context.Context, job eventsJob) error {
	it := &batchItem{job: job, since: time.Now(), done: make(chan error, 1), lead: make(chan struct{})}
	b.mu.Lock()
	if b.running < b.leaders {
		b.running++
		b.mu.Unlock()
		return b.lead(ctx, it)
	}
	b.waiting = append(b.waiting, it)
	b.mu.Unlock()

	var slow <-chan time.Time
	if b.extra > 0 {
		timer := time.NewTimer(b.slowAfter)
		defer timer.Stop()
		slow = timer.C
	}
	cancelled := ctx.Done()
	for {
		select {
		case err := <-it.done:
			return err
		case <-it.lead:
			return b.lead(ctx, it)
		case <-slow:
			// The batches ahead have run for at least slowAfter: lead one
			// beside them if there is room, else look again later.
			b.mu.Lock()
			i := slices.Index(b.waiting, it)
			if i >= 0 && b.running < b.leaders+b.extra {
				b.waiting = slices.Delete(b.waiting, i, i+1)
				b.running++
				b.mu.Unlock()
				return b.lead(ctx, it)
			}
			b.mu.Unlock()
			if i < 0 {
				slow = nil // taken into a batch, or chosen to lead one
				continue
			}
			slow = time.After(b.slowAfter)
		case <-cancelled:
			b.mu.Lock()
			i := slices.Index(b.waiting, it)
			if i >= 0 {
				b.waiting = slices.Delete(b.waiting, i, i+1)
			}
			b.mu.Unlock()
			if i >= 0 {
				return ctx.Err()
			}
			// Already taken into a batch, or chosen to lead one: wait for
			// that.
			cancelled = nil
		}
	}
}

// lead runs one batch made of it and the oldest waiting jobs that fit, then
// hands the lead to the oldest job still waiting, if any.
func (b *batcher) lead(ctx context.Context, it *batchItem) error {
	b.mu.Lock()
	batch := []*batchItem{it}
	events := len(it.job.Args.EventIDs)
	n := 0
	for _, w := range b.waiting {
		if events+len(w.job.Args.EventIDs) > b.maxEvents {
			break
		}
		events += len(w.job.Args.EventIDs)
		batch = append(batch, w)
		n++
	}
	b.waiting = slices.Delete(b.waiting, 0, n)
	b.mu.Unlock()

	all := make([]eventsJob, len(batch))
	for i, w := range batch {
		all[i] = w.job
	}
	err := b.run(ctx, all)
	for _, w := range batch {
		w.done <- err
	}

	b.mu.Lock()
	// An extra batch hands on the lead only to a job that has waited long
	// enough to start one itself.
	if len(b.waiting) > 0 && (b.running <= b.leaders || time.Since(b.waiting[0].since) >= b.slowAfter) {
		next := b.waiting[0]
		b.waiting = slices.Delete(b.waiting, 0, 1)
		close(next.lead)
	} else {
		b.running--
	}
	b.mu.Unlock()
	return <-it.done
}
