package fault_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// Concurrent batches over the same accounts in different orders, while rules
// change those accounts' status (on won events and on a short schedule),
// neither deadlock nor fail: no 500, no "deadlock detected" in an answer, a
// job's errors or a log, and the invariants hold.
func TestConcurrentBatchesWithStatusRules(t *testing.T) {
	skipShort(t)
	const (
		interval = 2 * time.Second
		posters  = 20
		batches  = 2 // per poster
		size     = 500
		nAccts   = 50
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := newTestDB(t)
	serve := startProc(t, "serve", d.url, map[string]string{"RULES_EVAL_INTERVAL": interval.String()}, "serve")
	c := newClient(t, serve.Addr())
	c.createRules(ctx,
		rule{Name: "big win makes vip", EventTypes: []string{"won"}, Condition: "event.payload.amount > 50",
			Actions: []map[string]any{{"type": "set_account_status", "status": "vip"}}},
		rule{Name: "scheduled review", Scheduled: true, Condition: "account.won_count >= 0",
			Actions: []map[string]any{{"type": "set_account_status", "status": "reviewed"}}},
	)
	accounts := c.createAccounts(ctx, nAccts)
	d.waitProvisioned(ctx, t, len(accounts))

	began := time.Now()
	start := make(chan struct{})
	var wg sync.WaitGroup
	for p := range posters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), uint64(time.Now().UnixNano())))
			<-start
			for range batches {
				events := make([]eventIn, size)
				for i := range events {
					events[i] = won(accounts[i%len(accounts)], 1+rng.Int64N(100))
				}
				rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
				if err := c.postEvents(ctx, events); err != nil {
					t.Errorf("batch: %v", err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	ingest := time.Since(began)
	pending := d.waitProcessed(ctx, t, 30*time.Second)
	total := posters * batches * size
	t.Logf("%d events in %d concurrent batches of %d: acknowledged in %s (%.0f events/s), processed after %s (%d pending)",
		total, posters*batches, size, ingest.Round(time.Millisecond), float64(total)/ingest.Seconds(),
		time.Since(began).Round(time.Millisecond), pending)
	t.Logf("HTTP statuses: %s", c.statusReport())

	if n, bodies := c.count500(); n > 0 {
		t.Errorf("%d answers were 500: %v", n, bodies)
	}
	for _, r := range deadlockReports(ctx, t, d, c, serve) {
		t.Errorf("deadlock detected: %s", r)
	}
	// The schedule runs every 2s in one process here: only the per-run
	// uniqueness is checked; windows are TestLeaderDeathAroundWindow's.
	checkInvariants(ctx, t, d, c, expectations{
		evaluations: map[string]int{"won": 1},
		settle:      time.Second, // waited for above
		schedule:    &scheduleCheck{interval: interval, perRun: nAccts},
	})
}
