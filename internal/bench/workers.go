package bench

import (
	"context"
	"sync"
	"sync/atomic"
)

// work runs workers goroutines that take units of work from next and hand
// each to their worker's do, until next has none left or ctx ends. newWorker
// makes one worker's do, so that it can keep what it needs (a random source,
// a buffer, its results) without locking. The first error a do returns stops
// the others and is returned.
func work[U any](ctx context.Context, workers int, next func(context.Context) (U, bool), newWorker func(w int) func(context.Context, U) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for w := range workers {
		do := newWorker(w)
		wg.Go(func() {
			for {
				u, ok := next(ctx)
				if !ok || ctx.Err() != nil {
					return
				}
				if err := do(ctx, u); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// counter hands out 0 to n-1, each once, to any number of workers.
func counter(n int) func(context.Context) (int, bool) {
	var next atomic.Int64
	return func(context.Context) (int, bool) {
		i := int(next.Add(1) - 1)
		return i, i < n
	}
}
