// Package bench loads a running ctrader server and measures it. It creates
// accounts and rules through the API, posts won events (one per request or in
// batches, as fast as possible or at a fixed rate), waits until the server's
// workers have processed every one, and reads processing latencies and a
// correctness check from the server's database, with how far processing had
// got when the last POST was answered and where it stalled. Optionally it
// also writes the same transactions straight to Postgres, as references for
// what the HTTP layer costs: processed by the server (--raw) or by nothing
// (--raw-ingest), and writes a pgbench script of them. Before a run it can
// fill the database with processed history (--prefill-events).
//
// The run leaves its accounts and events in the database; its rules are
// deleted at the end, and the --raw-ingest reference removes what it wrote.
// Point it at a database meant for benchmarks.
package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/db"
)

// ErrFailed is returned when the run finished but its check did not pass.
var ErrFailed = errors.New("bench check failed")

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
	if o.Events > 0 && !rep.Check.OK {
		return fmt.Errorf("%w: %s", ErrFailed, strings.Join(rep.Check.Problems, "; "))
	}
	return nil
}

// runner holds what the phases of one run share.
type runner struct {
	o      Options
	log    *slog.Logger
	client *http.Client
	base   string
	pool   *pgxpool.Pool
	runID  string
	rep    *Report
	// hook receives the deliveries of a --webhook run, to endpoint.
	hook     *receiver
	endpoint uuid.UUID
}

// execute does the run. The report is nil only when the run could not start.
func execute(parent context.Context, o Options) (*Report, error) {
	r := &runner{
		o:      o,
		log:    o.Logger,
		base:   strings.TrimRight(o.URL, "/"),
		runID:  strings.ToLower(rand.Text()[:8]),
		client: newClient(o.Concurrency),
	}
	defer r.client.CloseIdleConnections()
	r.rep = &Report{
		RunID:   r.runID,
		Started: time.Now(),
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()},
		Params: Params{
			URL: o.URL, Accounts: o.Accounts, Rules: o.Rules, RuleActions: o.RuleActions, MatchAll: o.MatchAll || o.Webhook,
			Webhook: o.Webhook, Events: o.Events,
			Concurrency: o.Concurrency, Batch: o.Batch, Rate: o.Rate, TimeoutSeconds: o.Timeout.Seconds(),
			ServerPID: o.ServerPID, Authenticated: o.Token != "",
		},
	}
	if o.Raw || o.RawIngest {
		r.rep.Params.RawOrder = o.RawOrder
	}

	pool, err := db.Open(parent, o.DatabaseURL, int32(o.Concurrency+2), slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	r.pool = pool
	if err := pool.QueryRow(parent, `SELECT current_setting('server_version'), current_setting('autovacuum')`).
		Scan(&r.rep.Machine.PostgresVersion, &r.rep.Machine.Autovacuum); err != nil {
		return nil, fmt.Errorf("cannot reach the database: %w", err)
	}

	// The pre-fill and the script come before the run and its timeout.
	if o.PrefillEvents > 0 {
		if r.rep.Prefill, err = r.prefill(parent); err != nil {
			return nil, fmt.Errorf("pre-fill: %w", err)
		}
	}
	if o.PgbenchScript != "" {
		if err := r.writePgbenchScript(parent); err != nil {
			return nil, err
		}
	}
	if o.Events == 0 {
		return r.rep, nil
	}

	ctx, cancel := context.WithTimeout(parent, o.Timeout)
	defer cancel()
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
	defer func() { r.deleteRules(parent, ruleIDs) }()
	if err != nil {
		return nil, err
	}
	ownRules := len(ruleIDs)
	if o.MatchAll || o.Webhook {
		if o.Webhook {
			if r.hook, err = startReceiver(); err != nil {
				return nil, err
			}
			defer r.hook.stop()
		}
		rule, endpoint, err := r.createMatchAllRule(ctx, r.hook)
		if endpoint != uuid.Nil {
			r.endpoint = endpoint
			defer r.deleteEndpoint(parent, endpoint)
		}
		if rule != uuid.Nil {
			ownRules++
			// Deferred calls run last first: the rule goes before its
			// endpoint, which the server keeps while a rule sends to it.
			defer r.deleteRules(parent, []uuid.UUID{rule})
		}
		if err != nil {
			return nil, err
		}
	}
	expected, err := r.rulesForWon(ctx)
	if err != nil {
		return nil, err
	}
	r.rep.Params.OtherRules = expected - ownRules

	if o.RawIngest && o.RawOrder == "before" {
		r.rep.RawIngest = r.runRawIngest(ctx, parent)
	}
	if o.Raw && o.RawOrder == "before" {
		r.rep.Raw = r.runRaw(ctx)
		if !r.rep.Raw.Drained {
			r.note("the raw run's events were not all processed before the HTTP run started; its numbers include that backlog")
		}
	}
	var backfill func() *Backfill
	if o.Backfill != "" {
		backfill = r.startBackfill(ctx, ruleIDs[0])
	}
	if err := r.runHTTP(ctx, parent, accounts, expected); err != nil {
		return nil, err
	}
	if backfill != nil {
		r.log.Info("waiting for the backfill")
		r.rep.Backfill = backfill()
	}
	if o.RawIngest && o.RawOrder == "after" {
		if ctx.Err() != nil {
			r.note("raw ingest reference skipped: the timeout was reached first")
		} else {
			r.rep.RawIngest = r.runRawIngest(ctx, parent)
		}
	}
	if o.Raw && o.RawOrder == "after" {
		if ctx.Err() != nil {
			r.note("raw reference skipped: the timeout was reached first")
		} else {
			r.rep.Raw = r.runRaw(ctx)
		}
	}
	r.compare()
	return r.rep, nil
}

// compare puts ctrader's rates beside the references'.
func (r *runner) compare() {
	in, e2e := r.rep.Ingest, r.rep.EndToEnd
	short := false
	if raw := r.rep.Raw; raw != nil && raw.EventsPerSecond > 0 && in.EventsPerSecond > 0 {
		raw.IngestPercent = 100 * in.EventsPerSecond / raw.EventsPerSecond
		short = short || raw.Seconds < 2
	}
	if ri := r.rep.RawIngest; ri != nil && ri.EventsPerSecond > 0 {
		ri.IngestPercent = 100 * in.EventsPerSecond / ri.EventsPerSecond
		ri.EndToEndPercent = 100 * e2e.EventsPerSecond / ri.EventsPerSecond
		short = short || ri.Seconds < 2
	}
	if (r.rep.Raw != nil || r.rep.RawIngest != nil) && (short || in.Seconds < 2) {
		r.note("a timed phase lasted under 2 s: rates from phases this short are noisy, raise --events for a steadier comparison")
	}
}

func (r *runner) note(format string, args ...any) {
	r.rep.Notes = append(r.rep.Notes, fmt.Sprintf(format, args...))
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
	firstPost := time.Now()
	res := r.ingest(ctx, accounts)
	r.rep.Ingest = res.report()
	r.rep.Pace.BucketMS, r.rep.Pace.StallSeconds = ms(paceBucket), stallLimit.Seconds()
	if stored, processed, at, err := r.processedNow(ctx, accounts); err == nil {
		p := &r.rep.Pace
		p.StoredEventsAtLastPost, p.ProcessedEventsAtLastPost = stored, processed
		p.ProcessedAtLastPost = fraction(processed, stored)
		p.LastPostSeconds = at.Sub(dbStart).Seconds()
	} else if ctx.Err() == nil {
		r.note("%v", err)
	}
	r.log.Info("events posted", slog.Int("accepted", res.accepted), slog.Int("errors", res.errors),
		slog.Float64("events_per_second", math.Round(r.rep.Ingest.EventsPerSecond)),
		slog.Float64("processed_at_last_post", r.rep.Pace.ProcessedAtLastPost))

	r.log.Info("waiting for the server to process them")
	_, timedOut, err := r.waitProcessed(ctx, res.ids, "processing")
	mem.stop()
	r.rep.Memory = mem.report()
	if err != nil {
		return err
	}

	var hookErr error
	if r.hook != nil {
		var w Webhooks
		w, hookErr = r.waitDeliveries(ctx, res.accepted, firstPost)
		r.rep.Webhooks = &w
	}

	qctx, cancel := context.WithTimeout(parent, 2*time.Minute)
	defer cancel()
	e2e, err := r.endToEnd(qctx, accounts, dbStart)
	if err != nil {
		return err
	}
	e2e.TimedOut = timedOut
	r.rep.EndToEnd = e2e

	received, finished, err := r.flow(qctx, accounts, dbStart, paceBucket)
	if err != nil {
		return err
	}
	p := &r.rep.Pace
	p.AverageRate, p.Stalls, p.WorstStall = findStalls(received, finished, paceBucket, stallLimit)

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
	if hookErr != nil {
		check.Problems = append(check.Problems, hookErr.Error())
	} else if w := r.rep.Webhooks; w != nil && w.Received < w.Expected {
		check.Problems = append(check.Problems, fmt.Sprintf("%d of %d webhook deliveries arrived", w.Received, w.Expected))
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
