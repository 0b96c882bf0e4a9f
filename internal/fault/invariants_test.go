package fault_test

import (
	"context"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/dbtest"
)

// appName is the application_name ctrader's own pool reports (db.Open sets it
// when the URL does not); the checker's pool uses another name so that
// terminating ctrader's connections spares it.
const appName = "ctrader"

// testDB is a test's own migrated database, with a pool for checking it.
type testDB struct {
	url  string // what the processes connect with
	name string // datname, to find the processes' backends
	pool *pgxpool.Pool
}

func newTestDB(t *testing.T) *testDB {
	t.Helper()
	raw := dbtest.URL(t)
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "ctrader-fault-check")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &testDB{url: raw, name: cfg.Database, pool: pool}
}

// terminateBackends makes Postgres terminate every connection ctrader holds to
// this database, as a failover or an administrator would, and returns how
// many it terminated. It needs a superuser: the test server's own URL.
func (d *testDB) terminateBackends(ctx context.Context, t *testing.T) int {
	t.Helper()
	admin := os.Getenv("CTRADER_TEST_DATABASE_URL")
	if admin == "" {
		admin = dbtest.DefaultURL
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect as superuser: %v", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int
	err = conn.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity
		WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()`,
		d.name, appName).Scan(&n)
	if err != nil {
		t.Fatalf("terminate backends: %v", err)
	}
	return n
}

// waitProvisioned waits until n accounts are provisioned.
func (d *testDB) waitProvisioned(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE activated_at IS NOT NULL`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accounts provisioned after 30s", got, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitProcessed polls until no event is pending or timeout passes, and
// returns how many are still pending.
func (d *testDB) waitProcessed(ctx context.Context, t *testing.T, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var pending int
		if err := d.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE status = 'pending'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 || time.Now().After(deadline) {
			return pending
		}
		select {
		case <-ctx.Done():
			return pending
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// expectations say what a scenario's invariants are, beyond those that hold
// for every scenario.
type expectations struct {
	// evaluations is how many evaluations each event of a type gets (one per
	// rule version that applies to it); types not listed get none.
	evaluations map[string]int
	// settle bounds the wait for pending events once the load has ended.
	settle time.Duration
	// schedule, when set, checks the scheduled runs.
	schedule *scheduleCheck
}

// scheduleCheck describes the scheduled runs a scenario expects.
type scheduleCheck struct {
	interval time.Duration
	// perRun is the evaluations a complete run makes: one per scheduled rule
	// version and provisioned account.
	perRun int
	// Every window from from through through (both window starts) must have
	// exactly one complete run. A zero from checks only that no run evaluated
	// a rule version and account twice.
	from, through time.Time
}

// checkInvariants checks, in the database, what must hold after any fault:
//   - every event the client got a 2xx for exists and ends processed, and no
//     event was stored that the client was never acknowledged for;
//   - no event failed and no job was discarded;
//   - every event has exactly one evaluation per applicable rule version;
//   - each account's won_count and won_total are exactly the count and sum of
//     its acknowledged won events;
//   - for schedules, one complete run per window and no gap.
//
// It reports every violation, not only the first.
func checkInvariants(ctx context.Context, t *testing.T, d *testDB, c *client, exp expectations) {
	t.Helper()
	if exp.settle == 0 {
		exp.settle = 30 * time.Second
	}
	acked := c.ackedEvents()
	if pending := d.waitProcessed(ctx, t, exp.settle); pending > 0 {
		t.Errorf("invariant: %d events still pending %s after the load ended", pending, exp.settle)
	}

	// Acknowledged events, exactly.
	rows, err := d.pool.Query(ctx, `
		SELECT e.id::text, e.type, e.status, coalesce(e.failure_reason, ''), count(v.id)
		FROM events e LEFT JOIN evaluations v ON v.event_id = e.id
		GROUP BY e.id`)
	if err != nil {
		t.Fatal(err)
	}
	type stored struct {
		typ, status, reason string
		evaluations         int
	}
	events := map[string]stored{}
	for rows.Next() {
		var id string
		var s stored
		if err := rows.Scan(&id, &s.typ, &s.status, &s.reason, &s.evaluations); err != nil {
			t.Fatal(err)
		}
		events[id] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var missing, notProcessed, unacknowledged, failed []string
	wrongEvals := map[string][]string{}
	for id := range acked {
		s, ok := events[id]
		switch {
		case !ok:
			missing = append(missing, id)
		case s.status != "processed":
			notProcessed = append(notProcessed, id+" ("+s.status+")")
		}
	}
	for id, s := range events {
		if _, ok := acked[id]; !ok && s.typ == "won" {
			unacknowledged = append(unacknowledged, id)
		}
		if s.status == "failed" {
			failed = append(failed, id+": "+s.reason)
		}
		if s.status == "processed" && s.evaluations != exp.evaluations[s.typ] {
			wrongEvals[s.typ] = append(wrongEvals[s.typ], fmt.Sprintf("%s has %d", id, s.evaluations))
		}
	}
	t.Logf("checked %d acknowledged events among %d stored", len(acked), len(events))
	reportIDs(t, "acknowledged events missing from the database", missing)
	reportIDs(t, "acknowledged events not processed", notProcessed)
	reportIDs(t, "won events stored that the client was never acknowledged for", unacknowledged)
	reportIDs(t, "failed events", failed)
	for typ, list := range wrongEvals {
		reportIDs(t, fmt.Sprintf("%s events without exactly %d evaluations", typ, exp.evaluations[typ]), list)
	}

	var dupes int
	if err := d.pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT 1 FROM evaluations WHERE event_id IS NOT NULL
			GROUP BY event_id, rule_id, rule_version HAVING count(*) > 1) d`).Scan(&dupes); err != nil {
		t.Fatal(err)
	}
	if dupes > 0 {
		t.Errorf("invariant: %d (event, rule, version) pairs evaluated more than once", dupes)
	}

	var dangling int
	if err := d.pool.QueryRow(ctx, `
		SELECT count(*) FROM evaluations v
		WHERE NOT EXISTS (SELECT 1 FROM rules r WHERE r.id = v.rule_id)
		   OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = v.account_id)`).Scan(&dangling); err != nil {
		t.Fatal(err)
	}
	if dangling > 0 {
		t.Errorf("invariant: %d evaluations name a rule or account that does not exist", dangling)
	}

	checkWonTotals(ctx, t, d, acked)
	checkDiscarded(ctx, t, d)
	if exp.schedule != nil {
		checkSchedule(ctx, t, d, *exp.schedule)
	}
}

// checkWonTotals compares each account's won_count and won_total with the
// acknowledged won events, exactly (numeric compared as a rational).
func checkWonTotals(ctx context.Context, t *testing.T, d *testDB, acked map[string]posted) {
	t.Helper()
	type totals struct {
		count int64
		sum   *big.Rat
	}
	want := map[string]*totals{}
	for _, p := range acked {
		if p.Type != "won" {
			continue
		}
		w := want[p.AccountID]
		if w == nil {
			w = &totals{sum: new(big.Rat)}
			want[p.AccountID] = w
		}
		w.count++
		w.sum.Add(w.sum, new(big.Rat).SetInt64(p.Amount))
	}
	rows, err := d.pool.Query(ctx, `SELECT id::text, won_count, won_total::text FROM accounts ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var wrong []string
	accounts := 0
	for rows.Next() {
		var id, total string
		var count int64
		if err := rows.Scan(&id, &count, &total); err != nil {
			t.Fatal(err)
		}
		accounts++
		got, ok := new(big.Rat).SetString(total)
		if !ok {
			t.Fatalf("account %s: won_total %q is not a number", id, total)
		}
		w := want[id]
		if w == nil {
			w = &totals{sum: new(big.Rat)}
		}
		if count != w.count || got.Cmp(w.sum) != 0 {
			wrong = append(wrong, fmt.Sprintf("%s: won_count %d won_total %s, want %d and %s", id, count, total, w.count, w.sum.RatString()))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	reportIDs(t, fmt.Sprintf("accounts (of %d) whose won totals differ from the acknowledged won events", accounts), wrong)
}

// checkDiscarded reports every discarded job with its last error.
func checkDiscarded(ctx context.Context, t *testing.T, d *testDB) {
	t.Helper()
	rows, err := d.pool.Query(ctx, `
		SELECT kind, count(*), coalesce((array_agg(errors[array_length(errors, 1)]->>'error'))[1], '')
		FROM river_job WHERE state = 'discarded' GROUP BY kind ORDER BY kind`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind, last string
		var n int
		if err := rows.Scan(&kind, &n, &last); err != nil {
			t.Fatal(err)
		}
		t.Errorf("invariant: %d %s jobs discarded; one's last error: %s", n, kind, last)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// checkSchedule checks that no run evaluated a rule version and account
// twice and, over [from, through], that every window ran exactly once and
// completely.
func checkSchedule(ctx context.Context, t *testing.T, d *testDB, sc scheduleCheck) {
	t.Helper()
	rows, err := d.pool.Query(ctx, `
		SELECT run_id, count(*), count(DISTINCT (rule_id, rule_version, account_id))
		FROM evaluations WHERE trigger = 'schedule' GROUP BY run_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	runs := map[time.Time]int{}
	var windows []time.Time
	for rows.Next() {
		var runID string
		var n, distinct int
		if err := rows.Scan(&runID, &n, &distinct); err != nil {
			t.Fatal(err)
		}
		if n != distinct {
			t.Errorf("invariant: run %s evaluated some rule version and account more than once (%d evaluations, %d distinct)", runID, n, distinct)
		}
		w, err := time.Parse(time.RFC3339, strings.TrimPrefix(runID, "schedule:"))
		if err != nil {
			t.Errorf("run id %q does not name a window: %v", runID, err)
			continue
		}
		runs[w.UTC()] = n
		windows = append(windows, w.UTC())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(windows, func(a, b time.Time) int { return a.Compare(b) })
	t.Logf("scheduled runs observed: %d, windows %s", len(windows), formatWindows(windows))
	if sc.from.IsZero() {
		return
	}
	var skipped, partial []string
	expected := 0
	for w := sc.from; !w.After(sc.through); w = w.Add(sc.interval) {
		expected++
		n, ok := runs[w]
		switch {
		case !ok:
			skipped = append(skipped, w.Format("15:04:05"))
		case n != sc.perRun:
			partial = append(partial, fmt.Sprintf("%s (%d of %d evaluations)", w.Format("15:04:05"), n, sc.perRun))
		}
	}
	t.Logf("windows expected from %s through %s: %d", sc.from.Format(time.RFC3339), sc.through.Format(time.RFC3339), expected)
	reportIDs(t, fmt.Sprintf("windows (of %d, every %s) with no scheduled run", expected, sc.interval), skipped)
	reportIDs(t, "windows whose run is incomplete", partial)
}

func formatWindows(ws []time.Time) string {
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = w.Format("15:04:05")
	}
	return strings.Join(parts, " ")
}

// reportIDs fails the test with how many items broke an invariant and the
// first few of them.
func reportIDs(t *testing.T, what string, items []string) {
	t.Helper()
	if len(items) == 0 {
		return
	}
	slices.Sort(items)
	shown := items[:min(len(items), 5)]
	t.Errorf("invariant: %d %s, e.g. %s", len(items), what, strings.Join(shown, "; "))
}

// deadlockReports returns where "deadlock detected" appears: job errors in
// river_job, process logs, and 5xx bodies the client got.
func deadlockReports(ctx context.Context, t *testing.T, d *testDB, c *client, procs ...*proc) []string {
	t.Helper()
	const needle = "deadlock detected"
	var out []string
	var jobs int
	var example string
	if err := d.pool.QueryRow(ctx, `
		SELECT count(*), coalesce(min(errors::text), '') FROM river_job WHERE errors::text LIKE '%' || $1 || '%'`, needle).Scan(&jobs, &example); err != nil {
		t.Fatal(err)
	}
	if jobs > 0 {
		out = append(out, fmt.Sprintf("%d jobs with %q among their errors, e.g. %.300s", jobs, needle, example))
	}
	for _, p := range procs {
		if n := p.logs.count(needle); n > 0 {
			out = append(out, fmt.Sprintf("%d %s log lines, e.g. %.400s", n, p.name, p.logs.first(needle)))
		}
	}
	if bodies := c.bodiesContaining(needle); len(bodies) > 0 {
		out = append(out, fmt.Sprintf("%d HTTP bodies, e.g. %.300s", len(bodies), bodies[0]))
	}
	return out
}
