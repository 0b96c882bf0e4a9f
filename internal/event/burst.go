package event

import (
	"sync"
	"time"

	"github.com/ctrader/ctrader/internal/queue"
)

// burstWindow is the span over which a burstRouter measures the rate. A
// second: a paced stream that falls behind for a moment and catches up at
// once is not a burst, and its events keep the events queue's latency.
const burstWindow = time.Second

// burstRouter picks the queue of the jobs of the events one process
// ingests. While it ingests at most rate events a second, their jobs go on
// queue.Events, fetched as soon as they are inserted, so each event is
// processed within milliseconds. Above that rate they go on
// queue.EventsBurst, which workers fetch less often: each fetch then brings
// many jobs, processed in fewer and larger shared transactions, which is what
// lets processing keep pace with a burst on a small machine without costing
// a steady stream its latency (docs/performance.md). Events of one account
// may then be in jobs of both queues; that is no change, as jobs of one queue
// already run side by side and the events worker locks what it processes.
//
// The rate is a sliding estimate over the current and the last window. A
// nil router, or one with no rate, keeps every job on queue.Events.
type burstRouter struct {
	rate float64 // events a second; above it, the burst queue

	mu    sync.Mutex
	start time.Time // of the current window
	cur   int       // events in the current window
	prev  int       // events in the one before
}

// queue counts n events ingested at now and returns the queue of their jobs.
func (r *burstRouter) queue(now time.Time, n int) string {
	if r == nil || r.rate <= 0 {
		return queue.Events
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch elapsed := now.Sub(r.start); {
	case elapsed < 0 || elapsed >= 2*burstWindow: // a quiet spell, or a clock that stepped back
		r.start, r.cur, r.prev = now, 0, 0
	case elapsed >= burstWindow:
		r.start, r.cur, r.prev = r.start.Add(burstWindow), 0, r.cur
	}
	r.cur += n
	// The part of the last window that the sliding window still covers.
	left := 1 - float64(now.Sub(r.start))/float64(burstWindow)
	perSecond := (float64(r.prev)*left + float64(r.cur)) / burstWindow.Seconds()
	if perSecond > r.rate {
		return queue.EventsBurst
	}
	return queue.Events
}
