package fault_test

import (
	"context"
	"testing"
	"time"
)

// recoveryTarget is how soon after a crashed process restarts every
// acknowledged event must be processed, at default settings.
const recoveryTarget = 30 * time.Second

// statusRules are one plain rule and one that changes the account's status,
// both on won events: every won event gets two evaluations.
func statusRules() []rule {
	return []rule{
		{Name: "counts wins", EventTypes: []string{"won"}, Condition: "account.won_count > 0"},
		{Name: "big win makes vip", EventTypes: []string{"won"}, Condition: "event.payload.amount > 50",
			Actions: []map[string]any{{"type": "set_account_status", "status": "vip"}}},
	}
}

// A serve process killed with SIGKILL in the middle of a load loses nothing:
// clients retry with their Idempotency-Key against the restarted process,
// and the jobs the dead process held run again, once. The target is
// that everything is processed within 30 s of the restart.
func TestSIGKILLServeUnderLoad(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := newTestDB(t)
	serve := startProc(t, "serve", d.url, nil, "serve")
	c := newClient(t, serve.Addr())
	c.createRules(ctx, statusRules()...)
	accounts := c.createAccounts(ctx, 20)
	d.waitProvisioned(ctx, t, len(accounts))

	l := startLoad(ctx, t, c, accounts, 4, 200)
	time.Sleep(3 * time.Second)
	var running int
	if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'running'`).Scan(&running); err != nil {
		t.Fatal(err)
	}
	serve.kill()
	t.Logf("killed serve with SIGKILL after %d events acknowledged; %d jobs were running", l.events.Load(), running)
	time.Sleep(500 * time.Millisecond)
	serve.start()
	restarted := time.Now()
	c.setAddr(serve.Addr())
	time.Sleep(3 * time.Second)
	l.stop(t)

	pending := d.waitProcessed(ctx, t, recoveryTarget-time.Since(restarted))
	if pending == 0 {
		t.Logf("recovery: every acknowledged event processed %s after the restart", time.Since(restarted).Round(100*time.Millisecond))
	} else {
		t.Errorf("recovery: %d events still pending %s after the restart (target: all processed within %s at default settings)",
			pending, recoveryTarget, recoveryTarget)
		// Keep waiting for the rescue of abandoned jobs (JOB_RESCUE_AFTER, 1m
		// by default) so the invariants below still say whether anything was
		// lost or applied twice.
		if pending = d.waitProcessed(ctx, t, 100*time.Second-time.Since(restarted)); pending == 0 {
			t.Logf("recovery: every acknowledged event processed %s after the restart", time.Since(restarted).Round(100*time.Millisecond))
		}
	}
	t.Logf("HTTP statuses: %s", c.statusReport())
	if n, bodies := c.count500(); n > 0 {
		t.Errorf("%d answers were 500: %v", n, bodies)
	}
	checkInvariants(ctx, t, d, c, expectations{evaluations: map[string]int{"won": 2}, settle: time.Second})
}
