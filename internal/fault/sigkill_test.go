package fault_test

import (
	"context"
	"testing"
	"time"
)

// recoveryBound is how long after a crashed process restarts the suite waits
// for every acknowledged event before it calls the recovery stuck. The
// issue's target (30 s at default settings) is a figure measured by a load
// command; what this test asserts is how the jobs come back: rescued through
// the dead process's missing heartbeat, before River's own rescuer
// (JOB_RESCUE_AFTER, 1m) would even look at them.
const recoveryBound = 55 * time.Second

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
	var held []int64
	rows, err := d.pool.Query(ctx, `SELECT id FROM river_job WHERE state = 'running' AND kind = 'events.process'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		held = append(held, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	serve.kill()
	t.Logf("killed serve with SIGKILL after %d events acknowledged; %d events jobs were running", l.events.Load(), len(held))
	time.Sleep(500 * time.Millisecond)
	serve.start()
	restarted := time.Now()
	c.setAddr(serve.Addr())
	time.Sleep(time.Second)
	l.stop(t)

	if pending := d.waitProcessed(ctx, t, recoveryBound-time.Since(restarted)); pending == 0 {
		t.Logf("recovery: every acknowledged event processed %s after the restart", time.Since(restarted).Round(100*time.Millisecond))
	} else {
		t.Errorf("recovery: %d events still pending %s after the restart", pending, recoveryBound)
	}
	// Every events job the dead process held (those that had not committed
	// when it died) came back through the heartbeat rescue.
	var stuck, rescued int
	err = d.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE state = 'running'),
		       count(*) FILTER (WHERE errors::text LIKE '%stopped heartbeating%')
		FROM river_job WHERE id = ANY($1)`, held).Scan(&stuck, &rescued)
	if err != nil {
		t.Fatal(err)
	}
	if stuck > 0 {
		t.Errorf("%d jobs of the dead process are still running", stuck)
	}
	if len(held) > 0 && rescued == 0 {
		t.Errorf("none of the %d jobs the dead process held was rescued through its heartbeat", len(held))
	}
	t.Logf("jobs held by the dead process: %d, rescued through its heartbeat: %d", len(held), rescued)
	t.Logf("HTTP statuses: %s", c.statusReport())
	if n, bodies := c.count500(); n > 0 {
		t.Errorf("%d answers were 500: %v", n, bodies)
	}
	checkInvariants(ctx, t, d, c, expectations{evaluations: map[string]int{"won": 2}, settle: time.Second})
}
