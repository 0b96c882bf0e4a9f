package fault_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load posts won events from several goroutines until stopped: mostly
// single events, and every fifth request a batch.
type load struct {
	stopOnce sync.Once
	stopCh   chan struct{}
	wg       sync.WaitGroup
	started  time.Time
	events   atomic.Int64
	requests atomic.Int64
}

// startLoad starts workers goroutines posting events for accounts; batch is
// the size of the batches among them. Every request is retried until it is
// acknowledged or ctx ends, so stop waits for the ones in flight.
func startLoad(ctx context.Context, t *testing.T, c *client, accounts []string, workers, batch int) *load {
	l := &load{stopCh: make(chan struct{}), started: time.Now()}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := 0; ; i++ {
				select {
				case <-l.stopCh:
					return
				case <-ctx.Done():
					return
				default:
				}
				n := 1
				if i%5 == 4 {
					n = batch
				}
				events := make([]eventIn, n)
				for j := range events {
					events[j] = won(accounts[rng.IntN(len(accounts))], 1+rng.Int64N(100))
				}
				if err := c.postEvents(ctx, events); err != nil {
					if ctx.Err() == nil {
						t.Errorf("load: %v", err)
					}
					return
				}
				l.events.Add(int64(n))
				l.requests.Add(1)
			}
		}()
	}
	return l
}

// stop ends the load, waits for the requests in flight and logs the rate.
func (l *load) stop(t *testing.T) {
	l.stopOnce.Do(func() { close(l.stopCh) })
	l.wg.Wait()
	d := time.Since(l.started)
	t.Logf("load: %d events acknowledged in %d requests over %s (%.0f events/s)",
		l.events.Load(), l.requests.Load(), d.Round(time.Millisecond), float64(l.events.Load())/d.Seconds())
}
