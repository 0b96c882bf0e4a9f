package worker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/jobs"
)

func fakeJob(id int64, events int) eventsJob {
	ids := make([]uuid.UUID, events)
	for i := range ids {
		ids[i] = uuid.New()
	}
	return &river.Job[jobs.EventsProcess]{JobRow: &rivertype.JobRow{ID: id}, Args: jobs.EventsProcess{EventIDs: ids}}
}

// recorder is a batch runner that records each batch's job ids and holds the
// first batch until released.
type recorder struct {
	mu      sync.Mutex
	batches [][]int64
	started chan struct{}
	release chan struct{}
}

func newRecorder() *recorder {
	return &recorder{started: make(chan struct{}), release: make(chan struct{})}
}

func (r *recorder) run(_ context.Context, batch []eventsJob) error {
	r.mu.Lock()
	first := len(r.batches) == 0
	ids := make([]int64, len(batch))
	for i, j := range batch {
		ids[i] = j.ID
	}
	r.batches = append(r.batches, ids)
	r.mu.Unlock()
	if first {
		close(r.started)
		<-r.release
	}
	return nil
}

func TestBatcherGathersWaitingJobs(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	b := newBatcher(1, 100, rec.run)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make([]error, 7)
	wg.Go(func() { errs[0] = b.do(ctx, fakeJob(0, 1)) })
	<-rec.started

	// While the first batch runs: five small jobs, one that would not fit
	// with them, and one whose context ends while it waits.
	waitCtx, cancel := context.WithCancel(ctx)
	for i := 1; i <= 5; i++ {
		wg.Go(func() { errs[i] = b.do(ctx, fakeJob(int64(i), 10)) })
	}
	wg.Go(func() { errs[6] = b.do(waitCtx, fakeJob(6, 1)) })
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiting) == 6
	}, 5*time.Second, time.Millisecond)
	cancel()
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiting) == 5
	}, 5*time.Second, time.Millisecond, "a job whose context ends leaves the queue")
	big := make(chan error, 1)
	go func() { big <- b.do(ctx, fakeJob(7, 95)) }()
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiting) == 6
	}, 5*time.Second, time.Millisecond)

	close(rec.release)
	wg.Wait()
	require.NoError(t, <-big)
	for i, err := range errs {
		if i == 6 {
			require.ErrorIs(t, err, context.Canceled)
			continue
		}
		require.NoError(t, err)
	}
	require.Len(t, rec.batches, 3)
	require.Equal(t, []int64{0}, rec.batches[0])
	require.ElementsMatch(t, []int64{1, 2, 3, 4, 5}, rec.batches[1], "the next leader takes the waiting jobs that fit")
	require.Equal(t, []int64{7}, rec.batches[2], "the one that did not fit leads its own")
	require.Zero(t, b.running)
	require.Empty(t, b.waiting)
}

// Every job of a batch gets the batch's outcome.
func TestBatcherSharesTheOutcome(t *testing.T) {
	t.Parallel()
	failure := context.DeadlineExceeded
	release := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	b := newBatcher(1, 100, func(_ context.Context, batch []eventsJob) error {
		if batch[0].ID == 0 {
			once.Do(func() { close(started) })
			<-release
			return nil
		}
		return failure
	})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	wg.Go(func() { errs[0] = b.do(ctx, fakeJob(0, 1)) })
	<-started
	for i := 1; i <= 3; i++ {
		wg.Go(func() { errs[i] = b.do(ctx, fakeJob(int64(i), 1)) })
	}
	require.Eventually(t, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.waiting) == 3
	}, 5*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.NoError(t, errs[0])
	for _, err := range errs[1:] {
		require.ErrorIs(t, err, failure)
	}
}

// A batch that runs long does not hold other jobs behind it: a job that has
// waited slowAfter leads a batch beside it, up to extra such batches.
func TestBatcherRelievesASlowBatch(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan int64, 10)
	var mu sync.Mutex
	running, most := 0, 0
	b := newBatcher(1, 100, func(_ context.Context, batch []eventsJob) error {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		started <- batch[0].ID
		if batch[0].ID == 0 {
			<-release // the slow batch
		}
		return nil
	}).relieveSlowBatches(1, 10*time.Millisecond)
	ctx := context.Background()

	slow := make(chan error, 1)
	go func() { slow <- b.do(ctx, fakeJob(0, 1)) }()
	require.Equal(t, int64(0), <-started)

	// While the slow batch runs, other jobs get through one after another.
	for i := int64(1); i <= 3; i++ {
		require.NoError(t, b.do(ctx, fakeJob(i, 1)), "job %d finishes while the slow batch still runs", i)
	}
	select {
	case <-slow:
		t.Fatal("the slow batch ended early")
	default:
	}
	close(release)
	require.NoError(t, <-slow)
	require.Equal(t, 2, most, "one extra batch at most")
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Zero(t, b.running)
	require.Empty(t, b.waiting)
}
