package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	require.Zero(t, Percentile(nil, 50))

	one := []time.Duration{7 * time.Millisecond}
	for _, p := range []float64{0, 50, 99, 100} {
		require.Equal(t, 7*time.Millisecond, Percentile(one, p))
	}

	// 1..100 ms: the nearest rank of p is p itself.
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	require.Equal(t, 50*time.Millisecond, Percentile(hundred, 50))
	require.Equal(t, 95*time.Millisecond, Percentile(hundred, 95))
	require.Equal(t, 99*time.Millisecond, Percentile(hundred, 99))
	require.Equal(t, 100*time.Millisecond, Percentile(hundred, 100))
	require.Equal(t, 1*time.Millisecond, Percentile(hundred, 0))

	// Ten samples: p95 and p99 are the largest, p50 the fifth.
	ten := make([]time.Duration, 10)
	for i := range ten {
		ten[i] = time.Duration(i+1) * time.Second
	}
	require.Equal(t, 5*time.Second, Percentile(ten, 50))
	require.Equal(t, 10*time.Second, Percentile(ten, 95))
	require.Equal(t, 10*time.Second, Percentile(ten, 99))
}

func TestSummarizeSorts(t *testing.T) {
	t.Parallel()
	samples := []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}
	l := summarize(samples)
	require.Equal(t, 4, l.Samples)
	require.InDelta(t, 2.0, l.P50, 1e-9)
	require.InDelta(t, 4.0, l.P99, 1e-9)
	require.InDelta(t, 4.0, l.Max, 1e-9)
	require.Equal(t, Latency{}, summarize(nil))
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"http://127.0.0.1:8000", "http://127.0.0.1", "https://127.0.0.1:8443/",
		"http://[::1]:8000", "http://localhost:8000", "http://LOCALHOST", "http://127.1.2.3:9000",
	} {
		require.NoError(t, CheckLoopback(u), u)
	}
	for _, u := range []string{
		"http://10.0.0.1", "http://10.0.0.1:8000", "http://192.168.1.5:8000", "http://example.com",
		"http://[2001:db8::1]:8000", "http://0.0.0.0:8000", "ftp://127.0.0.1", "127.0.0.1:8000", "http://", "://bad",
		"http://localhost.example.com",
	} {
		require.Error(t, CheckLoopback(u), u)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	valid := Defaults()
	valid.DatabaseURL = "postgres://localhost/x"
	require.NoError(t, valid.Validate())
	for _, change := range []func(*Options){
		func(o *Options) { o.Events, o.PrefillEvents, o.PrefillEvaluations = 0, 10, 1000 },
		func(o *Options) { o.Events, o.PgbenchScript = 0, "ingest.sql" },
	} {
		o := valid
		change(&o)
		require.NoError(t, o.Validate(), "--events 0 with something else to do")
	}

	for name, change := range map[string]func(*Options){
		"no events":                      func(o *Options) { o.Events = 0 },
		"too many events":                func(o *Options) { o.Events = MaxEvents + 1 },
		"batch too large":                func(o *Options) { o.Batch = MaxBatch + 1 },
		"negative rate":                  func(o *Options) { o.Rate = -1 },
		"no concurrency":                 func(o *Options) { o.Concurrency = 0 },
		"bad raw order":                  func(o *Options) { o.RawOrder = "sideways" },
		"no timeout":                     func(o *Options) { o.Timeout = 0 },
		"not loopback":                   func(o *Options) { o.URL = "http://10.0.0.1:8000" },
		"no database":                    func(o *Options) { o.DatabaseURL = "" },
		"nothing to do":                  func(o *Options) { o.Events = 0 },
		"negative prefill":               func(o *Options) { o.PrefillEvents = -1 },
		"evaluations without events":     func(o *Options) { o.PrefillEvaluations = 1 },
		"over 100 evaluations per event": func(o *Options) { o.PrefillEvents, o.PrefillEvaluations = 10, 1001 },
		"unknown backfill mode":          func(o *Options) { o.Backfill = "later" },
		"backfill without a rule":        func(o *Options) { o.Backfill, o.Rules = "dry_run", 0 },
		"match-all and webhook":          func(o *Options) { o.MatchAll, o.Webhook = true, true },
	} {
		o := valid
		change(&o)
		require.Error(t, o.Validate(), name)
	}
}

func TestEventsBodyIsValidJSON(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	accounts := []uuid.UUID{uuid.New(), uuid.New()}

	var single struct {
		AccountID uuid.UUID `json:"account_id"`
		Type      string    `json:"type"`
		Payload   struct {
			Amount int `json:"amount"`
		} `json:"payload"`
	}
	require.NoError(t, json.Unmarshal(eventsBody(nil, rng, accounts, 1, false), &single))
	require.Contains(t, accounts, single.AccountID)
	require.Equal(t, "won", single.Type)
	require.True(t, single.Payload.Amount >= 1 && single.Payload.Amount <= 2000)

	var batch struct {
		Events []struct {
			Type    string `json:"type"`
			Payload struct {
				Amount int `json:"amount"`
			} `json:"payload"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(eventsBody(nil, rng, accounts, 7, true), &batch))
	require.Len(t, batch.Events, 7)
	for _, e := range batch.Events {
		require.Equal(t, "won", e.Type)
		require.True(t, e.Payload.Amount >= 1 && e.Payload.Amount <= 2000)
	}
}

func TestReadVmRSS(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc on this system")
	}
	rss, err := readVmRSS("/proc/self/status")
	require.NoError(t, err)
	require.Greater(t, rss, float64(1<<20), "a Go test binary uses more than a megabyte")

	_, err = readVmRSS("/proc/0/status")
	require.Error(t, err)
}

func TestRawInsertWritesEventsAndJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	accounts, err := rawAccounts(ctx, pool, 3, "test", "raw")
	require.NoError(t, err)
	var active int
	require.NoError(t, pool.QueryRow(ctx,
		`SELECT count(*) FROM accounts WHERE id = ANY($1) AND status = 'active' AND activated_at IS NOT NULL`, accounts).Scan(&active))
	require.Equal(t, 3, active)

	client, err := newInserter(pool)
	require.NoError(t, err)

	single, err := rawInsert(ctx, pool, client, accounts, 40, 4, 0)
	require.NoError(t, err)
	require.Equal(t, 40, single.events)
	require.Equal(t, 40, single.transactions)
	require.Len(t, single.latencies, 40)
	require.Positive(t, single.wall)

	// 95 events in batches of 10: nine full transactions and one of five.
	batched, err := rawInsert(ctx, pool, client, accounts, 95, 4, 10)
	require.NoError(t, err)
	require.Equal(t, 95, batched.events)
	require.Equal(t, 10, batched.transactions)

	var events, pending, jobs, jobsForEvents int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE status = 'pending')
		FROM events WHERE account_id = ANY($1) AND type = 'won'`, accounts).Scan(&events, &pending))
	require.Equal(t, 135, events)
	require.Equal(t, 135, pending, "nothing works the jobs in this test")
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(DISTINCT j.id), count(DISTINCT e.id)
		FROM river_job j, jsonb_array_elements_text(j.args->'event_ids') AS named(id)
		LEFT JOIN events e ON e.id = named.id::uuid AND e.account_id = ANY($1)
		WHERE j.kind = 'events.process' AND j.queue = 'events' AND j.state = 'available'`, accounts).Scan(&jobs, &jobsForEvents))
	require.Equal(t, 40+10, jobs, "one job per transaction")
	require.Equal(t, 135, jobsForEvents, "the jobs name every event")

	var amountsInRange bool
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT bool_and((payload->>'amount')::int BETWEEN 1 AND 2000) FROM events WHERE account_id = ANY($1)`, accounts).Scan(&amountsInRange))
	require.True(t, amountsInRange)
}

func TestRawInsertStopsAtTheDeadline(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	accounts, err := rawAccounts(context.Background(), pool, 1, "deadline", "raw")
	require.NoError(t, err)
	client, err := newInserter(pool)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := rawInsert(ctx, pool, client, accounts, MaxEvents, 2, 0)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, res.events, MaxEvents)
	require.Equal(t, res.events, res.transactions)
}

func TestWaitProcessedFollowsTheOldestUnfinishedEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	accounts, err := rawAccounts(ctx, pool, 2, "wait", "raw")
	require.NoError(t, err)
	client, err := newInserter(pool)
	require.NoError(t, err)
	res, err := rawInsert(ctx, pool, client, accounts, pollWindow+250, 2, 50)
	require.NoError(t, err)
	require.Len(t, res.ids, pollWindow+250)
	r := &runner{pool: pool, log: slog.New(slog.DiscardHandler)}

	short := func() (int, bool) {
		ctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		defer cancel()
		left, timedOut, err := r.waitProcessed(ctx, res.ids, "test")
		require.NoError(t, err)
		return left, timedOut
	}
	left, timedOut := short()
	require.True(t, timedOut)
	require.Equal(t, pollWindow+250, left)

	// Finish every event but the newest ten: the first window empties and
	// the second holds what is left.
	newest := slices.Clone(res.ids)
	sortIDs(newest)
	newest = newest[len(newest)-10:]
	_, err = pool.Exec(ctx, `UPDATE events SET status = 'processed', processed_at = now() WHERE id = ANY($1) AND NOT id = ANY($2)`, res.ids, newest)
	require.NoError(t, err)
	left, timedOut = short()
	require.True(t, timedOut)
	require.Equal(t, 10, left)

	_, err = pool.Exec(ctx, `UPDATE events SET status = 'failed', processed_at = now() WHERE id = ANY($1)`, newest)
	require.NoError(t, err)
	left, timedOut = short()
	require.False(t, timedOut, "failed events are finished too")
	require.Zero(t, left)
}

func TestRawIngestLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	o := Defaults()
	o.Accounts, o.Events, o.Concurrency, o.Batch = 3, 45, 2, 10
	r := &runner{o: o, pool: pool, log: slog.New(slog.DiscardHandler), runID: "ingest", rep: &Report{}}

	// Its transactions put the jobs on a queue no worker serves.
	accounts, err := rawAccounts(ctx, pool, 2, "queue", "raw_ingest")
	require.NoError(t, err)
	client, err := newInserter(pool)
	require.NoError(t, err)
	res, err := rawInsert(ctx, pool, queueInserter{client: client, queue: RawIngestQueue}, accounts, 7, 2, 0)
	require.NoError(t, err)
	var queues []string
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT array_agg(DISTINCT queue) FROM river_job
		WHERE kind = 'events.process' AND max_attempts = 10`).Scan(&queues))
	require.Equal(t, []string{RawIngestQueue}, queues)
	require.Equal(t, 7, res.transactions)
	require.NoError(t, removeRawIngest(ctx, pool, accounts))

	ri := r.runRawIngest(ctx, ctx)
	require.Empty(t, ri.Error)
	require.Equal(t, 45, ri.Events)
	require.Equal(t, 5, ri.Transactions)
	require.Positive(t, ri.EventsPerSecond)
	require.Positive(t, ri.TransactionsPerSecond)
	require.True(t, ri.Removed)
	var jobs, events, accountsLeft int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM river_job), (SELECT count(*) FROM events), (SELECT count(*) FROM accounts)`).
		Scan(&jobs, &events, &accountsLeft))
	require.Zero(t, jobs)
	require.Zero(t, events)
	require.Zero(t, accountsLeft)
}

// repeat returns n copies of v.
func repeat(v, n int) []int { return slices.Repeat([]int{v}, n) }

func TestFindStalls(t *testing.T) {
	t.Parallel()
	const bucket, limit = 250 * time.Millisecond, 2 * time.Second
	for _, tc := range []struct {
		name     string
		received []int
		finished []int
		average  float64
		stalls   []Stall
		worst    *Stall
	}{
		{
			name:     "nothing processed",
			received: []int{100},
			finished: repeat(0, 20),
			stalls:   nil,
		},
		{
			name:     "steady",
			received: repeat(100, 20),
			finished: repeat(100, 20),
			average:  400,
			stalls:   []Stall{},
		},
		{
			// 3,100 events at once: 400/s, then 40/s for 2.5 s, then 400/s again.
			name:     "slow stretch with a backlog",
			received: []int{3100},
			finished: slices.Concat(repeat(100, 10), repeat(10, 10), repeat(100, 20)),
			average:  310,
			stalls:   []Stall{{StartSeconds: 2.5, Seconds: 2.5, Rate: 40}},
			worst:    &Stall{StartSeconds: 2.5, Seconds: 2.5, Rate: 40},
		},
		{
			name:     "slow for exactly the limit",
			received: []int{2880},
			finished: slices.Concat(repeat(100, 10), repeat(10, 8), repeat(100, 18)),
			average:  320,
			stalls:   []Stall{},
		},
		{
			// Clients sent less, and the server kept up: a lull, not a stall.
			name:     "slow arrivals",
			received: slices.Concat(repeat(100, 10), repeat(5, 12), repeat(100, 10)),
			finished: slices.Concat(repeat(100, 10), repeat(5, 12), repeat(100, 10)),
			average:  257.5,
			stalls:   []Stall{},
		},
		{
			// Nothing processed for 3 s after the first POST: the first
			// bucket had nothing waiting at its start, the next eleven did.
			name:     "late start",
			received: []int{1000},
			finished: slices.Concat(repeat(0, 12), repeat(100, 10)),
			average:  400,
			stalls:   []Stall{{StartSeconds: 0.25, Seconds: 2.75, Rate: 0}},
			worst:    &Stall{StartSeconds: 0.25, Seconds: 2.75, Rate: 0},
		},
		{
			name:     "two stalls, the longer is the worst",
			received: []int{2040},
			finished: slices.Concat(repeat(100, 4), repeat(0, 9), repeat(100, 4), repeat(20, 12), repeat(100, 10)),
			average:  2040 / 9.75,
			stalls:   []Stall{{StartSeconds: 1, Seconds: 2.25, Rate: 0}, {StartSeconds: 4.25, Seconds: 3, Rate: 80}},
			worst:    &Stall{StartSeconds: 4.25, Seconds: 3, Rate: 80},
		},
		{
			name:     "a stall running to the end of the flow",
			received: []int{500},
			finished: slices.Concat(repeat(100, 4), repeat(1, 12)),
			average:  412.0 / 4,
			stalls:   []Stall{{StartSeconds: 1, Seconds: 3, Rate: 4}},
			worst:    &Stall{StartSeconds: 1, Seconds: 3, Rate: 4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			average, stalls, worst := findStalls(tc.received, tc.finished, bucket, limit)
			require.InDelta(t, tc.average, average, 1e-9)
			require.Equal(t, tc.stalls, stalls)
			require.Equal(t, tc.worst, worst)
		})
	}
}

func TestProcessedNowAndFlowReadTheRunsEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	accounts, err := rawAccounts(ctx, pool, 2, "pace", "raw")
	require.NoError(t, err)
	others, err := rawAccounts(ctx, pool, 1, "other", "raw")
	require.NoError(t, err)
	client, err := newInserter(pool)
	require.NoError(t, err)
	_, err = rawInsert(ctx, pool, client, accounts, 20, 2, 0)
	require.NoError(t, err)
	_, err = rawInsert(ctx, pool, client, others, 5, 1, 0)
	require.NoError(t, err)
	r := &runner{pool: pool, log: slog.New(slog.DiscardHandler)}

	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = pool.Exec(ctx, `UPDATE events SET received_at = $1::timestamptz + interval '100 ms'`, start)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		UPDATE events SET status = 'processed', processed_at = $2::timestamptz + interval '600 ms'
		WHERE id IN (SELECT id FROM events WHERE account_id = ANY($1) ORDER BY id LIMIT 5)`, accounts, start)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		UPDATE events SET status = 'failed', processed_at = $2::timestamptz + interval '1300 ms'
		WHERE id IN (SELECT id FROM events WHERE account_id = ANY($1) AND status = 'pending' ORDER BY id LIMIT 2)`, accounts, start)
	require.NoError(t, err)

	stored, processed, at, err := r.processedNow(ctx, accounts)
	require.NoError(t, err)
	require.Equal(t, 20, stored, "the other account's events are not the run's")
	require.Equal(t, 5, processed, "failed events are not processed")
	require.WithinDuration(t, time.Now(), at, time.Minute)

	received, finished, err := r.flow(ctx, accounts, start, 250*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, []int{20, 0, 0, 0, 0, 0}, received)
	require.Equal(t, []int{0, 0, 5, 0, 0, 2}, finished, "failed events are finished too")
}

func TestPrefillAddsOnlyTheDifference(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	prefill := func(events, evaluations int64) *Prefill {
		r := &runner{pool: pool, log: slog.New(slog.DiscardHandler), rep: &Report{},
			o: Options{PrefillEvents: events, PrefillEvaluations: evaluations}}
		p, err := r.prefill(ctx)
		require.NoError(t, err)
		return p
	}
	type totals struct {
		Events, Processed, Evaluations, Accounts, Rules, EnabledRules int64
		WonCount, EventsOfWrongAccount, V7, IDsInTime                 int64
		WonTotal, Amounts                                             float64
	}
	read := func() totals {
		var s totals
		require.NoError(t, pool.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM events),
			       (SELECT count(*) FROM events WHERE status = 'processed' AND processed_at > received_at AND won_applied_at IS NOT NULL),
			       (SELECT count(*) FROM evaluations e JOIN events ev ON ev.id = e.event_id AND ev.account_id = e.account_id
			        WHERE e.trigger = 'event' AND e.matched = ((ev.payload->>'amount')::int > substring((SELECT condition FROM rules WHERE id = e.rule_id) FROM '\d+$')::int)),
			       (SELECT count(*) FROM accounts WHERE metadata @> '{"bench_prefill": true}' AND status = 'active'),
			       (SELECT count(*) FROM rules JOIN rule_versions v ON v.rule_id = rules.id AND v.version = 1),
			       (SELECT count(*) FROM rules WHERE enabled),
			       (SELECT sum(won_count) FROM accounts),
			       (SELECT count(*) FROM events e JOIN accounts a ON a.id = e.account_id WHERE NOT a.metadata ? 'bench_prefill'),
			       (SELECT count(*) FROM events WHERE substring(id::text FROM 15 FOR 1) = '7'),
			       (SELECT count(*) FROM events WHERE abs(extract(epoch FROM received_at) * 1000 -
			            ('x' || substring(replace(id::text, '-', '') FROM 1 FOR 12))::bit(48)::bigint) < 1),
			       (SELECT sum(won_total) FROM accounts),
			       (SELECT sum((payload->>'amount')::numeric) FROM events)`).
			Scan(&s.Events, &s.Processed, &s.Evaluations, &s.Accounts, &s.Rules, &s.EnabledRules,
				&s.WonCount, &s.EventsOfWrongAccount, &s.V7, &s.IDsInTime, &s.WonTotal, &s.Amounts))
		return s
	}

	p := prefill(1000, 2000)
	require.Equal(t, &Prefill{Accounts: prefillAccounts, Rules: 2, EventsAdded: 1000, EvaluationsAdded: 2000,
		Seconds: p.Seconds, VacuumSeconds: p.VacuumSeconds}, p)
	s := read()
	require.Equal(t, totals{Events: 1000, Processed: 1000, Evaluations: 2000, Accounts: prefillAccounts, Rules: 2,
		WonCount: 1000, V7: 1000, IDsInTime: 1000, WonTotal: s.Amounts, Amounts: s.Amounts}, s)

	// Again with the same figures: nothing to add.
	p = prefill(1000, 2000)
	require.Equal(t, int64(1000), p.EventsBefore)
	require.Equal(t, int64(2000), p.EvaluationsBefore)
	require.Zero(t, p.EventsAdded)
	require.Zero(t, p.EvaluationsAdded)
	require.Equal(t, 2, p.Rules)
	require.Equal(t, int64(1000), read().Events)

	// More, at another ratio and over more than one chunk: only the
	// difference is added, 1.5 evaluations per new event.
	p = prefill(1000+prefillChunk+2000, 2000+(prefillChunk+2000)*3/2)
	require.Equal(t, int64(prefillChunk+2000), p.EventsAdded)
	require.Equal(t, int64(prefillChunk+2000)*3/2, p.EvaluationsAdded)
	s = read()
	require.Equal(t, int64(1000+prefillChunk+2000), s.Events)
	require.Equal(t, s.Events, s.Processed)
	require.Equal(t, int64(2000+(prefillChunk+2000)*3/2), s.Evaluations)
	require.Equal(t, s.Events, s.V7)
	require.Equal(t, s.Events, s.IDsInTime)
	require.Equal(t, s.Events, s.WonCount)
	require.InDelta(t, s.Amounts, s.WonTotal, 1e-6)
	require.Zero(t, s.EnabledRules, "no run's event is evaluated against the pre-fill's rules")

	var maxPerEvent int
	require.NoError(t, pool.QueryRow(ctx, `SELECT max(n) FROM (SELECT count(*) AS n FROM evaluations GROUP BY event_id) x`).Scan(&maxPerEvent))
	require.Equal(t, 2, maxPerEvent)
}

func TestPgbenchScriptWritesTheRawIngestRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.URL(t)
	pool := dbtest.Pool(t, url)
	accounts, err := rawAccounts(ctx, pool, 3, "pgbench", "pgbench")
	require.NoError(t, err)

	for _, batch := range []int{0, 250} {
		script := pgbenchScript("pgbench", accounts, batch)
		require.NotContains(t, script, "::", "pgbench reads :name as a variable")
		_, err := pool.Exec(ctx, script)
		require.NoError(t, err, "batch %d", batch)
	}
	var events, v7, jobs, named, distinctNamed int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM events WHERE account_id = ANY($1) AND status = 'pending'),
		       (SELECT count(*) FROM events WHERE substring(id::text FROM 15 FOR 1) = '7'),
		       (SELECT count(*) FROM river_job WHERE queue = $2 AND kind = 'events.process' AND max_attempts = 10 AND state = 'available'),
		       (SELECT count(*) FROM river_job, jsonb_array_elements_text(args->'event_ids') AS named(id) JOIN events e ON e.id = named.id::uuid),
		       (SELECT count(DISTINCT named.id) FROM river_job, jsonb_array_elements_text(args->'event_ids') AS named(id))`,
		accounts, RawIngestQueue).Scan(&events, &v7, &jobs, &named, &distinctNamed))
	require.Equal(t, 251, events)
	require.Equal(t, 251, v7)
	require.Equal(t, 1+3, jobs, "one job for the single event, three of up to 100 for the batch of 250")
	require.Equal(t, 251, named)
	require.Equal(t, 251, distinctNamed)

	// With pgbench itself, where it is installed.
	bin, err := exec.LookPath("pgbench")
	if err != nil {
		t.Log("pgbench is not installed; the script was run with pgx only")
		return
	}
	path := filepath.Join(t.TempDir(), "ingest.sql")
	require.NoError(t, os.WriteFile(path, []byte(pgbenchScript("pgbench", accounts, 0)), 0o600))
	out, err := exec.CommandContext(ctx, bin, "-n", "-M", "prepared", "-f", path, "-c", "2", "-t", "5", url).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "number of transactions actually processed: 10/10")
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE account_id = ANY($1)`, accounts).Scan(&events))
	require.Equal(t, 251+10, events)
}
