package fault_test

import (
	"context"
	"testing"
	"time"
)

// Postgres terminating every connection of ctrader's pool, repeatedly and
// under load (a failover, an administrator, a pooler restart), costs clients
// retries, never a 500, and loses or doubles nothing. The rule here changes
// no account status, so this scenario sees only the fault it injects.
func TestTerminateBackendsUnderLoad(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := newTestDB(t)
	serve := startProc(t, "serve", d.url, nil, "serve")
	c := newClient(t, serve.Addr())
	c.createRules(ctx, rule{Name: "counts wins", EventTypes: []string{"won"}, Condition: "account.won_count > 0"})
	accounts := c.createAccounts(ctx, 20)
	d.waitProvisioned(ctx, t, len(accounts))

	l := startLoad(ctx, t, c, accounts, 4, 100)
	for range 3 {
		time.Sleep(1500 * time.Millisecond)
		n := d.terminateBackends(ctx, t)
		t.Logf("terminated %d ctrader backends after %d events acknowledged", n, l.events.Load())
		if n == 0 {
			t.Errorf("found no ctrader backend to terminate (application_name %q)", appName)
		}
	}
	time.Sleep(2 * time.Second)
	l.stop(t)

	t.Logf("HTTP statuses: %s", c.statusReport())
	if n, bodies := c.count500(); n > 0 {
		t.Errorf("%d answers were 500 (a lost connection must be a 503 the client can retry): %v", n, bodies)
	}
	checkInvariants(ctx, t, d, c, expectations{evaluations: map[string]int{"won": 1}})
}
