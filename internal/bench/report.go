package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured. Durations are in seconds and latencies in
// milliseconds, so the JSON form reads without units.
type Report struct {
	RunID     string         `json:"run_id"`
	Machine   Machine        `json:"machine"`
	Params    Params         `json:"parameters"`
	Ingest    Ingest         `json:"ingest"`
	EndToEnd  EndToEnd       `json:"end_to_end"`
	Pace      Pace           `json:"pace"`
	Memory    Memory         `json:"server_memory"`
	Raw       *Raw           `json:"raw,omitempty"`
	RawIngest *RawIngest     `json:"raw_ingest,omitempty"`
	Prefill   *Prefill       `json:"prefill,omitempty"`
	Pgbench   *PgbenchScript `json:"pgbench_script,omitempty"`
	Backfill  *Backfill      `json:"backfill,omitempty"`
	Webhooks  *Webhooks      `json:"webhooks,omitempty"`
	Check     Check          `json:"check"`
	Notes     []string       `json:"notes,omitempty"`
	Started   time.Time      `json:"started_at"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs            int    `json:"cpus"`
	GoVersion       string `json:"go_version"`
	PostgresVersion string `json:"postgres_version"`
	Autovacuum      string `json:"postgres_autovacuum"`
}

// Params repeats the options the run used.
type Params struct {
	URL            string  `json:"url"`
	Accounts       int     `json:"accounts"`
	Rules          int     `json:"rules"`
	RuleActions    bool    `json:"rule_actions"`
	MatchAll       bool    `json:"match_all_rule"` // one more rule, matching every event
	Webhook        bool    `json:"webhook"`        // with a webhook action to the bench's receiver
	OtherRules     int     `json:"other_rules"`    // enabled rules on won events that the run did not create
	Events         int     `json:"events"`
	Concurrency    int     `json:"concurrency"`
	Batch          int     `json:"batch"`
	Rate           float64 `json:"rate"`
	TimeoutSeconds float64 `json:"timeout_seconds"`
	ServerPID      int     `json:"server_pid,omitempty"`
	RawOrder       string  `json:"raw_order,omitempty"`
	Authenticated  bool    `json:"authenticated"`
}

// Latency summarizes a set of samples, in milliseconds.
type Latency struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50_ms"`
	P95     float64 `json:"p95_ms"`
	P99     float64 `json:"p99_ms"`
	Max     float64 `json:"max_ms"`
}

// Ingest is the HTTP side: how fast the server accepted events.
type Ingest struct {
	Accepted        int            `json:"accepted_events"`
	Requests        int            `json:"requests"`
	PushedBack      int            `json:"pushed_back"` // 503s with Retry-After, waited out and sent again
	Errors          int            `json:"errors"`
	ErrorsByStatus  map[string]int `json:"errors_by_status,omitempty"`
	FirstError      string         `json:"first_error,omitempty"`
	Seconds         float64        `json:"seconds"`
	EventsPerSecond float64        `json:"events_per_second"`
	Latency         Latency        `json:"http_latency"`
	StoppedEarly    bool           `json:"stopped_early,omitempty"`
	TimedOut        bool           `json:"timed_out,omitempty"`
}

// EndToEnd is the worker side: how fast accepted events were processed.
type EndToEnd struct {
	Stored          int     `json:"stored_events"`
	Processed       int     `json:"processed_events"`
	Failed          int     `json:"failed_events"`
	Pending         int     `json:"pending_events"`
	Seconds         float64 `json:"seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	Latency         Latency `json:"processing_latency"` // processed_at - received_at
	TimedOut        bool    `json:"timed_out,omitempty"`
}

// Memory is the server's resident set size during the run.
type Memory struct {
	Available bool    `json:"available"`
	Source    string  `json:"source,omitempty"`
	StartMB   float64 `json:"start_mb,omitempty"`
	PeakMB    float64 `json:"peak_mb,omitempty"`
	Samples   int     `json:"samples,omitempty"`
	Reason    string  `json:"reason,omitempty"`
}

// Raw is the reference run straight to Postgres.
type Raw struct {
	RawWrites
	IngestPercent float64 `json:"ctrader_ingest_percent_of_raw"`
	Order         string  `json:"order"`
	Drained       bool    `json:"drained"`
	DrainSeconds  float64 `json:"drain_seconds"`
	Error         string  `json:"error,omitempty"`
}

// RawWrites is what a raw reference wrote straight to Postgres, and how
// fast.
type RawWrites struct {
	Events                int     `json:"events"`
	Transactions          int     `json:"transactions"`
	Concurrency           int     `json:"concurrency"`
	Batch                 int     `json:"batch"`
	Seconds               float64 `json:"seconds"`
	EventsPerSecond       float64 `json:"events_per_second"`
	TransactionsPerSecond float64 `json:"transactions_per_second"`
	Latency               Latency `json:"transaction_latency"`
}

// RawIngest is the reference run straight to Postgres with nothing
// processing its events: what Postgres alone accepts on this machine, the
// measure ctrader's ingest and end-to-end rates are compared with.
type RawIngest struct {
	RawWrites
	Queue           string  `json:"queue"`
	IngestPercent   float64 `json:"ctrader_ingest_percent_of_raw_ingest"`
	EndToEndPercent float64 `json:"ctrader_end_to_end_percent_of_raw_ingest"`
	Order           string  `json:"order"`
	Removed         bool    `json:"removed"` // its jobs, events and accounts were deleted afterwards
	Error           string  `json:"error,omitempty"`
}

// Check is the correctness verdict over the events the HTTP run posted.
type Check struct {
	OK               bool     `json:"ok"`
	Problems         []string `json:"problems,omitempty"`
	Events           int      `json:"events"`
	Processed        int      `json:"processed"`
	Failed           int      `json:"failed"`
	Missing          int      `json:"missing"`
	Evaluations      int64    `json:"evaluations"`
	ExpectedPerEvent int      `json:"expected_evaluations_per_event"`
	Mismatched       int64    `json:"events_with_other_evaluation_count"`
}

// Percentile returns the p-th percentile (0 to 100) of sorted samples by the
// nearest-rank method: the smallest sample with at least p% of the samples at
// or below it. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// summarize sorts samples in place and returns their percentiles.
func summarize(samples []time.Duration) Latency {
	slices.Sort(samples)
	if len(samples) == 0 {
		return Latency{}
	}
	return Latency{
		Samples: len(samples),
		P50:     ms(Percentile(samples, 50)),
		P95:     ms(Percentile(samples, 95)),
		P99:     ms(Percentile(samples, 99)),
		Max:     ms(samples[len(samples)-1]),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// fraction is part over whole, or 0 for no whole.
func fraction(part, whole int) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// perSecond is n over seconds, or 0 for a span that is not positive.
func perSecond(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// WriteText prints the report as an aligned table.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(label, format string, args ...any) {
		fmt.Fprintf(tw, "%s\t%s\n", label, fmt.Sprintf(format, args...))
	}
	p := r.Params

	fmt.Fprintf(tw, "ctrader bench, run %s, %s\n\n", r.RunID, r.Started.UTC().Format(time.RFC3339))
	line("machine", "%d CPUs, %s, PostgreSQL %s (autovacuum %s)", r.Machine.CPUs, r.Machine.GoVersion, r.Machine.PostgresVersion, r.Machine.Autovacuum)
	if pf := r.Prefill; pf != nil {
		line("pre-fill", "%d processed events and %d evaluations on %d accounts and %d disabled rules of its own",
			pf.EventsBefore+pf.EventsAdded, pf.EvaluationsBefore+pf.EvaluationsAdded, pf.Accounts, pf.Rules)
		line("", "%d events and %d evaluations added in %.1f s (VACUUM ANALYZE %.1f s); %d and %d were there before",
			pf.EventsAdded, pf.EvaluationsAdded, pf.Seconds, pf.VacuumSeconds, pf.EventsBefore, pf.EvaluationsBefore)
	}
	if pg := r.Pgbench; pg != nil {
		line("pgbench script", "%s (%s per transaction, %d accounts of its own)", pg.Path, perTransaction(pg.Batch), pg.Accounts)
		line("", "%s", pg.Command)
	}
	if p.Events == 0 {
		for _, n := range r.Notes {
			line("note", "%s", n)
		}
		return tw.Flush()
	}
	line("server", "%s", p.URL)
	actions := "no actions"
	if p.RuleActions {
		actions = "set_account_status action"
	}
	line("parameters", "%d accounts, %d rules on won (%s), %d events, concurrency %d", p.Accounts, p.Rules, actions, p.Events, p.Concurrency)
	switch {
	case p.Webhook:
		line("", "and a rule on won matching every event, with a webhook action to a receiver on 127.0.0.1 that answers 204 at once")
	case p.MatchAll:
		line("", "and a rule on won matching every event, with no action")
	}
	mode := "one event per POST /v1/events"
	if p.Batch > 0 {
		mode = fmt.Sprintf("%d events per POST /v1/events/batch", p.Batch)
	}
	pace := "as fast as possible"
	if p.Rate > 0 {
		pace = fmt.Sprintf("%g events/s on a fixed schedule (latency from the scheduled time)", p.Rate)
	}
	line("", "%s, %s, timeout %s", mode, pace, time.Duration(p.TimeoutSeconds*float64(time.Second)))
	if p.OtherRules > 0 {
		line("", "%d other enabled rules also apply to won events", p.OtherRules)
	}
	fmt.Fprintln(tw)

	in := r.Ingest
	line("ingest", "%d events in %.3f s = %.0f events/s", in.Accepted, in.Seconds, in.EventsPerSecond)
	errs := fmt.Sprintf("%d errors", in.Errors)
	if in.Errors > 0 {
		errs += " (" + statusList(in.ErrorsByStatus) + ")"
	}
	line("  requests", "%d, %s", in.Requests, errs)
	if in.PushedBack > 0 {
		line("  pushed back", "%d answers of 503 with Retry-After, waited out and sent again", in.PushedBack)
	}
	line("  HTTP latency", "%s", latencyText(in.Latency))

	e := r.EndToEnd
	line("end to end", "%d events processed in %.3f s = %.0f events/s (first POST to last processed_at)", e.Processed, e.Seconds, e.EventsPerSecond)
	line("  received→processed", "%s", latencyText(e.Latency))
	if w := r.Webhooks; w != nil {
		line("webhooks", "%d of %d deliveries received, the last %.3f s after the first POST = %.0f deliveries/s (%d requests)",
			w.Received, w.Expected, w.Seconds, w.DeliveriesPerSecond, w.Requests)
	}
	pc := r.Pace
	line("kept pace", "%.1f%% of the run's events processed when the last POST was answered (%d of %d, %.3f s in)",
		100*pc.ProcessedAtLastPost, pc.ProcessedEventsAtLastPost, pc.StoredEventsAtLastPost, pc.LastPostSeconds)
	if len(pc.Stalls) == 0 {
		line("stalls", "none (no stretch over %g s below half the average of %.0f events/s while events waited; %g ms buckets)",
			pc.StallSeconds, pc.AverageRate, pc.BucketMS)
	} else {
		line("stalls", "%d over %g s below half the average of %.0f events/s while events waited (%g ms buckets); worst %s",
			len(pc.Stalls), pc.StallSeconds, pc.AverageRate, pc.BucketMS, stallText(*pc.WorstStall))
		for _, s := range pc.Stalls {
			line("  stall", "%s", stallText(s))
		}
	}

	if bf := r.Backfill; bf != nil {
		if bf.Error != "" {
			line("backfill", "%s from %s: %s", bf.Mode, bf.From, bf.Error)
		} else {
			line("backfill", "%s of the first rule from %s, beside the live load: %s", bf.Mode, bf.From, bf.State)
		}
		if bf.Seconds > 0 {
			line("", "%d events done (%d evaluated, %d matched, %d skipped) of %d scanned in %d pages, %.1f s = %.0f events/s",
				bf.EventsEvaluated+bf.EventsSkipped, bf.EventsEvaluated, bf.EventsMatched, bf.EventsSkipped, bf.EventsScanned,
				bf.Pages, bf.Seconds, bf.EventsPerSecond)
		}
	}

	m := r.Memory
	if m.Available {
		line("server RSS", "peak %.1f MB (start %.1f MB; %d samples of %s)", m.PeakMB, m.StartMB, m.Samples, m.Source)
	} else {
		line("server RSS", "n/a (%s)", m.Reason)
	}

	if raw := r.Raw; raw != nil {
		per := perTransaction(raw.Batch)
		if raw.Error != "" {
			line("raw reference", "failed: %s", raw.Error)
		} else {
			line("raw reference", "%d events in %.3f s = %.0f events/s, %.0f transactions/s (pgx + River InsertTx, no HTTP, processed by the server; concurrency %d, %s per transaction, run %s)",
				raw.Events, raw.Seconds, raw.EventsPerSecond, raw.TransactionsPerSecond, raw.Concurrency, per, raw.Order)
			line("  transaction latency", "%s", latencyText(raw.Latency))
			if raw.IngestPercent > 0 {
				line("  comparison", "ctrader ingest = %.0f%% of raw", raw.IngestPercent)
			}
			if raw.Drained {
				line("  raw backlog", "processed by the server %.1f s after the raw run ended", raw.DrainSeconds)
			} else {
				line("  raw backlog", "not processed yet after %.1f s", raw.DrainSeconds)
			}
		}
	}
	if ri := r.RawIngest; ri != nil {
		if ri.Error != "" {
			line("raw ingest", "failed: %s", ri.Error)
		} else {
			line("raw ingest", "%d events in %.3f s = %.0f events/s, %.0f transactions/s (pgx + River InsertTx, no HTTP, jobs on queue %s that nothing works; concurrency %d, %s per transaction, run %s)",
				ri.Events, ri.Seconds, ri.EventsPerSecond, ri.TransactionsPerSecond, ri.Queue, ri.Concurrency, perTransaction(ri.Batch), ri.Order)
			line("  transaction latency", "%s", latencyText(ri.Latency))
			if ri.IngestPercent > 0 || ri.EndToEndPercent > 0 {
				line("  comparison", "ctrader ingest = %.0f%% of raw ingest, end to end = %.0f%% of raw ingest", ri.IngestPercent, ri.EndToEndPercent)
			}
		}
		if !ri.Removed {
			line("  cleanup", "its rows were not removed (see the notes)")
		}
	}
	fmt.Fprintln(tw)

	c := r.Check
	if c.OK {
		line("check", "OK: %d events processed, none failed, %d evaluations (%d per event)", c.Processed, c.Evaluations, c.ExpectedPerEvent)
	} else {
		line("check", "FAIL: %s", strings.Join(c.Problems, "; "))
	}
	for _, n := range r.Notes {
		line("note", "%s", n)
	}
	return tw.Flush()
}

// WriteJSON prints the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func stallText(s Stall) string {
	return fmt.Sprintf("%.2f s from %.2f s in, at %.0f events/s", s.Seconds, s.StartSeconds, s.Rate)
}

// perTransaction says how many events a reference run wrote per transaction.
func perTransaction(batch int) string {
	if batch > 0 {
		return fmt.Sprintf("%d events", batch)
	}
	return "1 event"
}

func latencyText(l Latency) string {
	if l.Samples == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms  (%d samples)", l.P50, l.P95, l.P99, l.Max, l.Samples)
}

func statusList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
