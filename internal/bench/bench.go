// Package bench loads a running ctrader server and measures it. It creates
// accounts and rules through the API, posts won events (one per request or in
// batches, as fast as possible or at a fixed rate), waits until the server's
// workers have processed every one, and reads processing latencies and a
// correctness check from the server's database. Optionally it also writes the
// same transactions straight to Postgres, as a reference for what the HTTP
// layer costs.
//
// The run leaves its accounts and events in the database; its rules are
// deleted at the end. Point it at a database meant for benchmarks.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/config"
	"github.com/ctrader/ctrader/internal/db"
)

// MaxEvents bounds --events.
const MaxEvents = 10_000_000

// MaxBatch is the most events POST /v1/events/batch accepts.
const MaxBatch = 1000

// ErrFailed is returned when the run finished but its check did not pass.
var ErrFailed = errors.New("bench check failed")

// Options configures a run.
type Options struct {
	URL         string
	DatabaseURL string
	Token       string // bearer token with the admin scope; empty sends none
	Accounts    int
	Rules       int
	RuleActions bool
	Events      int
	Concurrency int
	Batch       int     // 0: POST /v1/events; >0: POST /v1/events/batch with this many events
	Rate        float64 // events per second; 0: as fast as possible
	Timeout     time.Duration
	Raw         bool
	RawOrder    string // "before" or "after" the HTTP run
	ServerPID   int
	JSON        bool
	Logger      *slog.Logger // progress; nil discards it
}

// Defaults returns the options of a plain `ctrader bench`.
func Defaults() Options {
	return Options{
		URL:         "http://127.0.0.1:8000",
		Accounts:    100,
		Rules:       5,
		Events:      10_000,
		Concurrency: 8,
		Timeout:     5 * time.Minute,
		RawOrder:    "after",
	}
}

// Register adds the run's flags to fs, with o's values as defaults. The
// database URL and the secret tokens are minted with are the caller's.
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.URL, "url", o.URL, "base URL of the running ctrader server (loopback addresses only)")
	// A Func flag, so the help text never shows a token taken from BENCH_TOKEN.
	fs.Func("token", "bearer token with the admin scope (env BENCH_TOKEN); when empty, one is minted with AUTH_HS256_SECRET if set, else requests carry none",
		func(s string) error { o.Token = s; return nil })
	fs.IntVar(&o.Accounts, "accounts", o.Accounts, "accounts to create and spread the events over")
	fs.IntVar(&o.Rules, "rules", o.Rules, "rules to create on won events, with conditions on payload.amount")
	fs.BoolVar(&o.RuleActions, "rule-actions", o.RuleActions, "give every rule a set_account_status action (default: rules have no actions)")
	fs.IntVar(&o.Events, "events", o.Events, "won events to post (at most 10,000,000)")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "requests in flight at once")
	fs.IntVar(&o.Batch, "batch", o.Batch, "events per POST /v1/events/batch (up to 1000); 0 posts one event per POST /v1/events")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "events per second, sent on a fixed schedule with latency measured from the scheduled time; 0 sends as fast as possible")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "stop after this long and report whatever is unfinished")
	fs.BoolVar(&o.Raw, "raw", o.Raw, "also write the same transactions straight to Postgres (pgx and River, no HTTP) as a reference")
	fs.StringVar(&o.RawOrder, "raw-order", o.RawOrder, "run the raw reference before or after the HTTP run")
	fs.IntVar(&o.ServerPID, "server-pid", o.ServerPID, "server process id: sample VmRSS from /proc every 100ms; without it, scrape process_resident_memory_bytes from /metrics every 250ms")
	fs.BoolVar(&o.JSON, "json", o.JSON, "print the report as JSON after the table")
}

// Validate checks o before anything is sent.
func (o *Options) Validate() error {
	switch {
	case o.Events < 1 || o.Events > MaxEvents:
		return fmt.Errorf("--events must be from 1 to %d", MaxEvents)
	case o.Accounts < 1 || o.Accounts > 100_000:
		return errors.New("--accounts must be from 1 to 100000")
	case o.Rules < 0 || o.Rules > 100:
		return errors.New("--rules must be from 0 to 100")
	case o.Concurrency < 1 || o.Concurrency > 512:
		return errors.New("--concurrency must be from 1 to 512")
	case o.Batch < 0 || o.Batch > MaxBatch:
		return fmt.Errorf("--batch must be from 0 to %d", MaxBatch)
	case o.Rate < 0 || math.IsInf(o.Rate, 0) || math.IsNaN(o.Rate):
		return errors.New("--rate must be 0 or a positive number of events per second")
	case o.Timeout <= 0:
		return errors.New("--timeout must be positive")
	case o.RawOrder != "before" && o.RawOrder != "after":
		return errors.New("--raw-order must be before or after")
	case o.ServerPID < 0:
		return errors.New("--server-pid must be a process id")
	case o.DatabaseURL == "":
		return errors.New("a database URL is required (--database-url or DATABASE_URL)")
	}
	return CheckLoopback(o.URL)
}

// CheckLoopback accepts an http or https URL whose host is a loopback address
// or localhost: the bench is a load generator and must not be aimed at
// someone else's server.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--url %q is not a URL", raw)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--url %q must be http or https", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("--url %q has no host", raw)
	}
	if config.LoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("--url %q: the bench only loads servers on a loopback address (127.0.0.1, [::1], localhost)", raw)
}

// Run measures the server o points at and prints the report to stdout (and
// its JSON form with o.JSON). It returns ErrFailed, wrapped with the reasons,
// when the run completed but its check failed.
func Run(ctx context.Context, o Options, stdout io.Writer) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	rep, err := execute(ctx, o)
	if rep != nil {
		if werr := rep.WriteText(stdout); werr != nil && err == nil {
			err = werr
		}
		if o.JSON {
			if werr := rep.WriteJSON(stdout); werr != nil && err == nil {
				err = werr
			}
		}
	}
	if err != nil {
		return err
	}
	if !rep.Check.OK {
		return fmt.Errorf("%w: %s", ErrFailed, strings.Join(rep.Check.Problems, "; "))
	}
	return nil
}

type runner struct {
	o      Options
	log    *slog.Logger
	client *http.Client
	base   string
	pool   *pgxpool.Pool
	runID  string
	rep    *Report
}

// execute does the run. The report is nil only when the run could not start.
func execute(parent context.Context, o Options) (*Report, error) {
	ctx, cancel := context.WithTimeout(parent, o.Timeout)
	defer cancel()

	r := &runner{
		o:     o,
		log:   o.Logger,
		base:  strings.TrimRight(o.URL, "/"),
		runID: strings.ToLower(rand.Text()[:8]),
		client: &http.Client{
			Timeout: time.Minute,
			Transport: &http.Transport{
				Proxy:               nil, // loopback only: never through a proxy
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConns:        o.Concurrency * 2,
				MaxIdleConnsPerHost: o.Concurrency * 2,
				IdleConnTimeout:     90 * time.Second,
				DisableCompression:  true,
			},
		},
	}
	defer r.client.CloseIdleConnections()
	r.rep = &Report{
		RunID:   r.runID,
		Started: time.Now(),
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()},
		Params: Params{
			URL: o.URL, Accounts: o.Accounts, Rules: o.Rules, RuleActions: o.RuleActions, Events: o.Events,
			Concurrency: o.Concurrency, Batch: o.Batch, Rate: o.Rate, TimeoutSeconds: o.Timeout.Seconds(),
			ServerPID: o.ServerPID, Authenticated: o.Token != "",
		},
	}
	if o.Raw {
		r.rep.Params.RawOrder = o.RawOrder
	}

	pool, err := db.Open(ctx, o.DatabaseURL, int32(o.Concurrency+2), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	r.pool = pool
	if err := pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('autovacuum')`).
		Scan(&r.rep.Machine.PostgresVersion, &r.rep.Machine.Autovacuum); err != nil {
		return nil, fmt.Errorf("cannot reach the database: %w", err)
	}
	if r.rep.Machine.Autovacuum != "on" {
		r.note("autovacuum is off: dead rows pile up in river_job and events, so processing slows down from run to run")
	}
	if err := r.checkServer(ctx); err != nil {
		return nil, err
	}

	accounts, err := r.createAccounts(ctx)
	if err != nil {
		return nil, err
	}
	ruleIDs, err := r.createRules(ctx)
	defer r.deleteRules(parent, ruleIDs)
	if err != nil {
		return nil, err
	}
	expected, err := r.rulesForWon(ctx)
	if err != nil {
		return nil, err
	}
	r.rep.Params.OtherRules = expected - len(ruleIDs)

	if o.Raw && o.RawOrder == "before" {
		r.rep.Raw = r.runRaw(ctx)
		if !r.rep.Raw.Drained {
			r.note("the raw run's events were not all processed before the HTTP run started; its numbers include that backlog")
		}
	}
	if err := r.runHTTP(ctx, parent, accounts, expected); err != nil {
		return nil, err
	}
	if o.Raw && o.RawOrder == "after" {
		if ctx.Err() != nil {
			r.note("raw reference skipped: the timeout was reached first")
		} else {
			r.rep.Raw = r.runRaw(ctx)
		}
	}
	if raw := r.rep.Raw; raw != nil && raw.EventsPerSecond > 0 && r.rep.Ingest.EventsPerSecond > 0 {
		raw.IngestPercent = 100 * r.rep.Ingest.EventsPerSecond / raw.EventsPerSecond
		if min(raw.Seconds, r.rep.Ingest.Seconds) < 2 {
			r.note("a timed phase lasted under 2 s: rates from phases this short are noisy, raise --events for a steadier comparison")
		}
	}
	return r.rep, nil
}

func (r *runner) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
}

// checkServer makes sure a ready server answers at the URL.
func (r *runner) checkServer(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("no ctrader server answers at %s (start one with ctrader serve, or pass --url): %w", r.base, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the server at %s is not ready: /readyz answered %s", r.base, resp.Status)
	}
	return nil
}

// call sends one JSON request for setup or cleanup, retrying on 429 and 503
// as the server asks, and decodes a 2xx answer into out.
func (r *runner) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, r.base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		r.authorize(req)
		resp, err := r.client.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			if out != nil {
				if err := json.Unmarshal(data, out); err != nil {
					return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
				}
			}
			return nil
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 10:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(min(s, 10)) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		default:
			return fmt.Errorf("%s %s answered %s: %s%s", method, path, resp.Status, snippet(data), hint(resp.StatusCode))
		}
	}
}

func (r *runner) authorize(req *http.Request) {
	if r.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.o.Token)
	}
}

func hint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return " (pass --token or BENCH_TOKEN, or set AUTH_HS256_SECRET to the server's so one is minted)"
	case http.StatusForbidden:
		return " (the bench creates rules, which needs a token with the admin scope)"
	case http.StatusTooManyRequests:
		return " (the server limits writes per client: start it with WRITE_RATE_LIMIT=0 to benchmark)"
	}
	return ""
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// createAccounts creates the run's accounts through the API and waits until
// the account worker has provisioned every one.
func (r *runner) createAccounts(ctx context.Context) ([]uuid.UUID, error) {
	k := r.o.Accounts
	r.log.Info("creating accounts", slog.Int("accounts", k), slog.String("run", r.runID))
	ids := make([]uuid.UUID, k)
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(r.o.Concurrency, k) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= k || ctx.Err() != nil {
					return
				}
				var a struct {
					ID uuid.UUID `json:"id"`
				}
				in := map[string]any{
					"name":     fmt.Sprintf("bench %s %d", r.runID, i),
					"metadata": map[string]any{"bench_run": r.runID},
				}
				if err := r.call(ctx, http.MethodPost, "/v1/accounts", in, &a); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
				ids[i] = a.ID
			}
		})
	}
	wg.Wait()
	if first != nil {
		return nil, fmt.Errorf("create accounts: %w", first)
	}

	var stored int
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE id = ANY($1)`, ids).Scan(&stored); err != nil {
		return nil, fmt.Errorf("read accounts: %w", err)
	}
	if stored != k {
		return nil, fmt.Errorf("only %d of the %d accounts created through %s are in the database: --database-url must name the server's database", stored, k, r.base)
	}
	for {
		var active int
		err := r.pool.QueryRow(ctx, `SELECT count(*) FROM accounts WHERE id = ANY($1) AND activated_at IS NOT NULL`, ids).Scan(&active)
		if err != nil {
			return nil, fmt.Errorf("wait for accounts: %w", err)
		}
		if active == k {
			return ids, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("only %d of %d accounts were provisioned before the timeout: are the server's workers running?", active, k)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// createRules creates the run's rules: conditions on payload.amount at
// thresholds spread over the amounts posted, so some match and some do not.
// It returns the ids created, also on error, so they can be deleted.
func (r *runner) createRules(ctx context.Context) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, 0, r.o.Rules)
	if r.o.Rules > 0 {
		r.log.Info("creating rules", slog.Int("rules", r.o.Rules))
	}
	for i := range r.o.Rules {
		threshold := (i + 1) * 2000 / (r.o.Rules + 1)
		actions := []map[string]any{}
		if r.o.RuleActions {
			actions = append(actions, map[string]any{"type": "set_account_status", "status": "vip"})
		}
		in := map[string]any{
			"name":        fmt.Sprintf("bench-%s-%d", r.runID, i),
			"description": "ctrader bench run " + r.runID,
			"event_types": []string{"won"},
			"condition":   fmt.Sprintf("event.payload.amount > %d", threshold),
			"actions":     actions,
		}
		var out struct {
			ID uuid.UUID `json:"id"`
		}
		if err := r.call(ctx, http.MethodPost, "/v1/rules", in, &out); err != nil {
			return ids, fmt.Errorf("create rules: %w", err)
		}
		ids = append(ids, out.ID)
	}
	return ids, nil
}

// rulesForWon counts the enabled rules a won event is evaluated against, as
// the rules worker selects them.
func (r *runner) rulesForWon(ctx context.Context) (int, error) {
	var n int
	err := r.pool.QueryRow(ctx, `
		SELECT count(*) FROM rules
		WHERE enabled AND deleted_at IS NULL
		  AND ((event_types = '{}' AND NOT scheduled) OR 'won' = ANY (event_types))`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count rules: %w", err)
	}
	return n, nil
}

// deleteRules deletes the run's rules, so that later runs against the same
// database evaluate only their own.
func (r *runner) deleteRules(parent context.Context, ids []uuid.UUID) {
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := r.call(ctx, http.MethodDelete, "/v1/rules/"+id.String(), nil, nil); err != nil {
			r.log.Warn("could not delete a bench rule", slog.String("rule", id.String()), slog.String("error", err.Error()))
		}
	}
}

// runHTTP posts the events, waits for their processing and fills the
// report's ingest, end-to-end, memory and check sections.
func (r *runner) runHTTP(ctx, parent context.Context, accounts []uuid.UUID, expected int) error {
	mem := r.startMemory(ctx)

	var dbStart time.Time
	if err := r.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&dbStart); err != nil {
		mem.stop()
		return fmt.Errorf("read the database clock: %w", err)
	}
	r.log.Info("posting events", slog.Int("events", r.o.Events), slog.Int("concurrency", r.o.Concurrency), slog.Int("batch", r.o.Batch))
	res := r.ingest(ctx, accounts)
	r.rep.Ingest = res.report()
	r.log.Info("events posted", slog.Int("accepted", res.accepted), slog.Int("errors", res.errors),
		slog.Float64("events_per_second", math.Round(r.rep.Ingest.EventsPerSecond)))

	r.log.Info("waiting for the server to process them")
	_, timedOut, err := r.waitProcessed(ctx, res.ids, "processing")
	mem.stop()
	r.rep.Memory = mem.report()
	if err != nil {
		return err
	}

	qctx, cancel := context.WithTimeout(parent, 2*time.Minute)
	defer cancel()
	e2e, err := r.endToEnd(qctx, accounts, dbStart)
	if err != nil {
		return err
	}
	e2e.TimedOut = timedOut
	r.rep.EndToEnd = e2e

	check, err := r.check(qctx, res.ids, expected)
	if err != nil {
		return err
	}
	if res.stopped {
		check.Problems = append([]string{fmt.Sprintf("ingest stopped early: %d of %d requests failed (more than 1%%)", res.errors, res.requests)}, check.Problems...)
	}
	if res.timedOut {
		check.Problems = append(check.Problems, fmt.Sprintf("timed out while posting: %d of %d events accepted", res.accepted, r.o.Events))
	}
	if timedOut && e2e.Pending > 0 {
		check.Problems = append(check.Problems, fmt.Sprintf("timed out after %s with %d events still pending", r.o.Timeout, e2e.Pending))
	}
	if e2e.Stored > res.accepted {
		r.note("%d events are stored that the bench was not told about (requests cut short by the stop, or answered with an error after their commit); the check covers the accepted ones", e2e.Stored-res.accepted)
	}
	if res.errors > 0 && !res.stopped {
		r.note("%d requests failed (%s), first: %s", res.errors, statusList(res.byStatus), res.firstErr)
	}
	if res.byStatus["429"] > 0 {
		r.note("429 means the server limits writes per client: start it with WRITE_RATE_LIMIT=0 to benchmark")
	}
	check.OK = len(check.Problems) == 0
	r.rep.Check = check
	return nil
}

type ingestResult struct {
	ids       []uuid.UUID
	latencies []time.Duration
	requests  int
	accepted  int
	errors    int
	byStatus  map[string]int
	firstErr  string
	wall      time.Duration
	stopped   bool
	timedOut  bool
}

func (res *ingestResult) report() Ingest {
	in := Ingest{
		Accepted: res.accepted, Requests: res.requests, Errors: res.errors, FirstError: res.firstErr,
		Seconds: res.wall.Seconds(), Latency: summarize(res.latencies), StoppedEarly: res.stopped, TimedOut: res.timedOut,
	}
	if len(res.byStatus) > 0 {
		in.ErrorsByStatus = res.byStatus
	}
	if res.wall > 0 {
		in.EventsPerSecond = float64(res.accepted) / res.wall.Seconds()
	}
	return in
}

// slot is one request to send and when it was meant to be sent.
type slot struct {
	index int
	at    time.Time
}

// ingest posts the events with o.Concurrency requests in flight. Without a
// rate each request's latency runs from its own start; with one, requests are
// due on a fixed schedule and latency runs from the due time, so a slow
// server cannot hide its slowness by delaying the requests that would have
// measured it.
func (r *runner) ingest(parent context.Context, accounts []uuid.UUID) *ingestResult {
	per := max(r.o.Batch, 1)
	total := (r.o.Events + per - 1) / per
	path := "/v1/events"
	if r.o.Batch > 0 {
		path = "/v1/events/batch"
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	type workerOut struct {
		ids       []uuid.UUID
		latencies []time.Duration
		requests  int
		accepted  int
		byStatus  map[string]int
		firstErr  string
	}
	outs := make([]workerOut, r.o.Concurrency)
	var (
		next     atomic.Int64
		failures atomic.Int64
		stopped  atomic.Bool
		wg       sync.WaitGroup
	)
	begin := time.Now()

	var due chan slot
	if r.o.Rate > 0 {
		due = make(chan slot, r.o.Concurrency*4)
		interval := time.Duration(float64(per) / r.o.Rate * float64(time.Second))
		wg.Go(func() {
			defer close(due)
			tick := time.NewTicker(max(interval, time.Millisecond))
			defer tick.Stop()
			for i := 0; i < total; {
				at := begin.Add(time.Duration(i) * interval)
				if time.Now().Before(at) {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
					continue
				}
				select {
				case <-ctx.Done():
					return
				case due <- slot{index: i, at: at}:
					i++
				}
			}
		})
	}

	seed := uint64(time.Now().UnixNano())
	for w := range r.o.Concurrency {
		wg.Go(func() {
			out := &outs[w]
			out.byStatus = map[string]int{}
			rng := mrand.New(mrand.NewPCG(seed, uint64(w)))
			var body []byte
			for {
				var s slot
				if due != nil {
					var ok bool
					select {
					case <-ctx.Done():
						return
					case s, ok = <-due:
						if !ok {
							return
						}
					}
				} else {
					s.index = int(next.Add(1) - 1)
					if s.index >= total {
						return
					}
					s.at = time.Now()
				}
				if ctx.Err() != nil {
					return
				}
				n := min(per, r.o.Events-s.index*per)
				body = eventsBody(body[:0], rng, accounts, n, r.o.Batch > 0)
				status, ids, msg := r.post(ctx, path, body)
				latency := time.Since(s.at)
				if status == 0 && ctx.Err() != nil {
					return // cut short by the timeout or an early stop: neither success nor failure
				}
				out.requests++
				if status >= 200 && status < 300 {
					out.ids = append(out.ids, ids...)
					out.accepted += len(ids)
					out.latencies = append(out.latencies, latency)
					continue
				}
				key := strconv.Itoa(status)
				if status == 0 {
					key = "transport"
				}
				out.byStatus[key]++
				if out.firstErr == "" {
					out.firstErr = msg
				}
				if failures.Add(1)*100 > int64(total) {
					stopped.Store(true)
					cancel()
				}
			}
		})
	}
	wg.Wait()

	res := &ingestResult{wall: time.Since(begin), byStatus: map[string]int{}, stopped: stopped.Load()}
	res.timedOut = parent.Err() != nil
	for _, o := range outs {
		res.ids = append(res.ids, o.ids...)
		res.latencies = append(res.latencies, o.latencies...)
		res.requests += o.requests
		res.accepted += o.accepted
		for k, v := range o.byStatus {
			res.byStatus[k] += v
			res.errors += v
		}
		if res.firstErr == "" {
			res.firstErr = o.firstErr
		}
	}
	return res
}

// eventsBody appends the JSON of n won events, as one event or as a batch.
func eventsBody(b []byte, rng *mrand.Rand, accounts []uuid.UUID, n int, batch bool) []byte {
	if batch {
		b = append(b, `{"events":[`...)
	}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"account_id":"`...)
		b = append(b, accounts[rng.IntN(len(accounts))].String()...)
		b = append(b, `","type":"won","payload":{"amount":`...)
		b = strconv.AppendInt(b, int64(1+rng.IntN(2000)), 10)
		b = append(b, `}}`...)
	}
	if batch {
		b = append(b, `]}`...)
	}
	return b
}

// post sends one event request. It returns the status (0 when no answer
// came), the ids of the stored events on success, and otherwise a short
// description of what went wrong.
func (r *runner) post(ctx context.Context, path string, body []byte) (int, []uuid.UUID, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	r.authorize(req)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err.Error()
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err.Error()
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, nil, resp.Status + ": " + snippet(data)
	}
	var out struct {
		ID     uuid.UUID `json:"id"`
		Events []struct {
			ID uuid.UUID `json:"id"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, nil, "decode answer: " + err.Error()
	}
	if out.Events == nil {
		return resp.StatusCode, []uuid.UUID{out.ID}, ""
	}
	ids := make([]uuid.UUID, len(out.Events))
	for i, e := range out.Events {
		ids[i] = e.ID
	}
	return resp.StatusCode, ids, ""
}

// pollWindow bounds the ids one poll looks up.
const pollWindow = 1000

// waitProcessed polls every 100ms until none of ids is pending, or ctx ends
// (timedOut); remaining is then at most that many events. Accepted events
// are committed before their requests are answered, so none is pending only
// once all are processed. A poll looks up the oldest unfinished ids by
// primary key, a window at a time, so its cost stays bounded however large
// the run or the table, and it barely competes with the server it measures.
func (r *runner) waitProcessed(ctx context.Context, ids []uuid.UUID, what string) (remaining int, timedOut bool, err error) {
	// UUIDv7 ids sort by creation, close to the order workers take them.
	left := slices.Clone(ids)
	slices.SortFunc(left, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		for len(left) > 0 {
			window := left[:min(pollWindow, len(left))]
			// The status is tested here rather than in SQL: with it in the
			// WHERE clause, Postgres may walk the status index over every
			// pending event, comparing each with the whole window.
			rows, err := r.pool.Query(ctx, `SELECT id, status = 'pending' FROM events WHERE id = ANY($1)`, window)
			if err != nil {
				if ctx.Err() != nil {
					return len(left), true, nil
				}
				return len(left), false, fmt.Errorf("poll pending events: %w", err)
			}
			var (
				pending []uuid.UUID
				id      uuid.UUID
				waiting bool
			)
			_, err = pgx.ForEachRow(rows, []any{&id, &waiting}, func() error {
				if waiting {
					pending = append(pending, id)
				}
				return nil
			})
			if err != nil {
				if ctx.Err() != nil {
					return len(left), true, nil
				}
				return len(left), false, fmt.Errorf("poll pending events: %w", err)
			}
			if len(pending) == 0 {
				left = left[len(window):]
				continue
			}
			slices.SortFunc(pending, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
			left = append(pending, left[len(window):]...)
			break
		}
		if len(left) == 0 {
			return 0, false, nil
		}
		if time.Since(lastLog) >= 2*time.Second {
			r.log.Info("waiting for "+what, slog.Int("left", len(left)))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return len(left), true, nil
		case <-tick.C:
		}
	}
}

// endToEnd reads processing rates and latencies of the run's events from the
// database: processed_at is stamped by Postgres when the rules worker
// finishes, received_at by the server when it accepts the event.
func (r *runner) endToEnd(ctx context.Context, accounts []uuid.UUID, start time.Time) (EndToEnd, error) {
	var (
		e            EndToEnd
		lastDone     *time.Time
		percentiles  []float64
		maxProcessed float64
	)
	err := r.pool.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE status = 'processed'),
		       count(*) FILTER (WHERE status = 'failed'),
		       count(*) FILTER (WHERE status = 'pending'),
		       max(processed_at),
		       coalesce(percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP
		           (ORDER BY extract(epoch FROM processed_at - received_at)::float8)
		           FILTER (WHERE processed_at IS NOT NULL), '{}'),
		       coalesce(max(extract(epoch FROM processed_at - received_at)::float8), 0)
		FROM events WHERE type = 'won' AND account_id = ANY($1)`, accounts).
		Scan(&e.Stored, &e.Processed, &e.Failed, &e.Pending, &lastDone, &percentiles, &maxProcessed)
	if err != nil {
		return e, fmt.Errorf("read processing times: %w", err)
	}
	if lastDone != nil {
		e.Seconds = lastDone.Sub(start).Seconds()
		if e.Seconds > 0 {
			e.EventsPerSecond = float64(e.Processed) / e.Seconds
		}
	}
	if len(percentiles) == 3 {
		e.Latency = Latency{Samples: e.Processed + e.Failed, P50: percentiles[0] * 1000, P95: percentiles[1] * 1000,
			P99: percentiles[2] * 1000, Max: maxProcessed * 1000}
	}
	return e, nil
}

// checkChunk bounds the ids sent in one query.
const checkChunk = 50_000

// check verifies the events the HTTP run posted: every accepted id is stored
// and processed, none failed, and each has exactly one evaluation per rule.
func (r *runner) check(ctx context.Context, ids []uuid.UUID, expected int) (Check, error) {
	c := Check{Events: len(ids), ExpectedPerEvent: expected}
	for start := 0; start < len(ids); start += checkChunk {
		chunk := ids[start:min(start+checkChunk, len(ids))]
		var found, processed, failed int
		err := r.pool.QueryRow(ctx, `
			SELECT count(e.id), count(*) FILTER (WHERE e.status = 'processed'), count(*) FILTER (WHERE e.status = 'failed')
			FROM unnest($1::uuid[]) AS v(id) LEFT JOIN events e ON e.id = v.id`, chunk).Scan(&found, &processed, &failed)
		if err != nil {
			return c, fmt.Errorf("check events: %w", err)
		}
		c.Missing += len(chunk) - found
		c.Processed += processed
		c.Failed += failed

		var evaluations, mismatched int64
		err = r.pool.QueryRow(ctx, `
			SELECT coalesce(sum(n), 0)::bigint, count(*) FILTER (WHERE n <> $2)
			FROM (SELECT v.id, count(ev.event_id) AS n
			      FROM unnest($1::uuid[]) AS v(id) LEFT JOIN evaluations ev ON ev.event_id = v.id
			      GROUP BY v.id) per_event`, chunk, expected).Scan(&evaluations, &mismatched)
		if err != nil {
			return c, fmt.Errorf("check evaluations: %w", err)
		}
		c.Evaluations += evaluations
		c.Mismatched += mismatched
	}
	if c.Missing > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d accepted events are not in the database", c.Missing))
	}
	if c.Failed > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d events failed", c.Failed))
	}
	if notDone := c.Events - c.Missing - c.Processed - c.Failed; notDone > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d events not processed", notDone))
	}
	if want := int64(c.Events) * int64(expected); c.Evaluations != want || c.Mismatched > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d evaluations, want %d (%d per event); %d events have another count",
			c.Evaluations, want, expected, c.Mismatched))
	}
	if c.Events == 0 {
		c.Problems = append(c.Problems, "no event was accepted")
	}
	return c, nil
}

// memSampler follows the server's resident set size.
type memSampler struct {
	source string
	reason string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	start   float64
	peak    float64
	samples int
}

// startMemory samples /proc/PID/status with --server-pid, else the server's
// /metrics. When neither answers, the report says n/a.
func (r *runner) startMemory(ctx context.Context) *memSampler {
	m := &memSampler{done: make(chan struct{})}
	var (
		read     func(context.Context) (float64, error)
		interval time.Duration
		reasons  []string
	)
	if pid := r.o.ServerPID; pid > 0 {
		path := fmt.Sprintf("/proc/%d/status", pid)
		probe := func(context.Context) (float64, error) { return readVmRSS(path) }
		if _, err := probe(ctx); err == nil {
			read, interval, m.source = probe, 100*time.Millisecond, path
		} else {
			reasons = append(reasons, "--server-pid: "+err.Error())
		}
	}
	if read == nil {
		if _, err := r.scrapeRSS(ctx); err == nil {
			read, interval, m.source = r.scrapeRSS, 250*time.Millisecond, r.base+"/metrics"
		} else {
			reasons = append(reasons, "/metrics: "+err.Error())
		}
	}
	if read == nil {
		m.reason = strings.Join(reasons, "; ")
		close(m.done)
		m.cancel = func() {}
		return m
	}
	ctx, m.cancel = context.WithCancel(ctx)
	go func() {
		defer close(m.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if v, err := read(ctx); err == nil {
				m.mu.Lock()
				if m.samples == 0 {
					m.start = v
				}
				m.samples++
				m.peak = max(m.peak, v)
				m.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *memSampler) stop() {
	m.cancel()
	<-m.done
}

func (m *memSampler) report() Memory {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.source == "" || m.samples == 0 {
		reason := m.reason
		if reason == "" {
			reason = "no sample taken"
		}
		return Memory{Reason: reason}
	}
	const mb = 1 << 20
	return Memory{Available: true, Source: m.source, StartMB: m.start / mb, PeakMB: m.peak / mb, Samples: m.samples}
}

// readVmRSS reads a process's resident set size, in bytes, from
// /proc/PID/status.
func readVmRSS(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmRSS line (is it a kernel thread?)")
}

// scrapeRSS reads process_resident_memory_bytes from the server's /metrics.
func (r *runner) scrapeRSS(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	r.authorize(req)
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answered %s", resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes ")
		if !ok {
			continue
		}
		return strconv.ParseFloat(strings.TrimSpace(rest), 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no process_resident_memory_bytes metric")
}
