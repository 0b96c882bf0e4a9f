package fault_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// When the process that holds River's leadership dies just before a window
// boundary, the others take over scheduling: every window from the first
// to the last gets exactly one complete scheduled run, with no gap.
func TestLeaderDeathAroundWindow(t *testing.T) {
	skipShort(t)
	const (
		interval = 5 * time.Second
		nAccts   = 10
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := newTestDB(t)
	settings := map[string]string{"RULES_EVAL_INTERVAL": interval.String()}
	serve := startProc(t, "serve", d.url, settings, "serve")
	workers := []*proc{
		startProc(t, "worker-1", d.url, settings, "worker"),
		startProc(t, "worker-2", d.url, settings, "worker"),
	}
	procs := append([]*proc{serve}, workers...)
	c := newClient(t, serve.Addr())
	c.createRules(ctx, rule{Name: "scheduled check", Scheduled: true, Condition: "account.won_count >= 0"})
	accounts := c.createAccounts(ctx, nAccts)
	d.waitProvisioned(ctx, t, len(accounts))

	// The first window that starts after every account is provisioned and
	// after the schedule has begun: the first tick a database ever sees
	// records only the window it falls in, and on a loaded machine the first
	// leader may be elected a window or two after its process started.
	from := time.Now().UTC().Truncate(interval).Add(interval)
	if first := d.firstScheduleWindow(ctx, t); !first.Before(from) {
		from = first.Add(interval)
	}
	sleepUntil(ctx, from.Add(2*interval-700*time.Millisecond))
	leader := findLeader(ctx, t, d, procs)
	leader.kill()
	killed := time.Now()
	t.Logf("killed the leader, %s, %s before the window of %s", leader.name,
		from.Add(2*interval).Sub(killed).Round(time.Millisecond), from.Add(2*interval).Format("15:04:05"))

	var alive []*proc
	for _, p := range procs {
		if p != leader {
			alive = append(alive, p)
		}
	}
	next := findLeader(ctx, t, d, alive)
	t.Logf("%s took over the leadership %s after the kill", next.name, time.Since(killed).Round(100*time.Millisecond))
	// The others run on alone across a few windows, then the dead one comes
	// back.
	sleepUntil(ctx, killed.Add(4*interval))
	leader.start()
	if leader == serve {
		c.setAddr(serve.Addr())
	}
	sleepUntil(ctx, time.Now().Add(3*interval))

	// The last window checked is the one before the current: its tick has
	// had a whole interval to happen. Give its run a moment to finish.
	through := time.Now().UTC().Truncate(interval).Add(-interval)
	runID := "schedule:" + through.Format(time.RFC3339)
	for deadline := time.Now().Add(interval); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n int
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM evaluations WHERE run_id = $1`, runID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n >= nAccts {
			break
		}
	}
	checkInvariants(ctx, t, d, c, expectations{
		schedule: &scheduleCheck{interval: interval, perRun: nAccts, from: from, through: through},
	})
}

// findLeader returns the process whose River client holds the leadership,
// waiting up to 30s for one of procs to be elected.
func findLeader(ctx context.Context, t *testing.T, d *testDB, procs []*proc) *proc {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		err := d.pool.QueryRow(ctx, `SELECT leader_id FROM river_leader WHERE expires_at > now() LIMIT 1`).Scan(&last)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		for _, p := range procs {
			if id := p.logs.riverClientID(); id != "" && id == last {
				return p
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	ids := make([]string, len(procs))
	for i, p := range procs {
		ids[i] = p.name + "=" + p.logs.riverClientID()
	}
	t.Fatalf("no leader among %v within 30s (river_leader says %q)", ids, last)
	return nil
}

func sleepUntil(ctx context.Context, at time.Time) {
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(at)):
	}
}

// firstScheduleWindow waits for the schedule's first recorded window.
func (d *testDB) firstScheduleWindow(ctx context.Context, t *testing.T) time.Time {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var first *time.Time
		if err := d.pool.QueryRow(ctx, `SELECT min(window_start) FROM rule_schedule_windows`).Scan(&first); err != nil {
			t.Fatal(err)
		}
		if first != nil {
			return first.UTC()
		}
		if time.Now().After(deadline) {
			t.Fatal("no schedule window recorded after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
