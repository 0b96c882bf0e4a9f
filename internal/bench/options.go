package bench

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"time"

	"github.com/ctrader/ctrader/internal/config"
)

// MaxEvents bounds --events.
const MaxEvents = 10_000_000

// MaxPrefill bounds --prefill-events.
const MaxPrefill = 1_000_000_000

// MaxBatch is the most events POST /v1/events/batch accepts.
const MaxBatch = 1000

// Options configures a run.
type Options struct {
	URL         string
	DatabaseURL string
	Token       string // bearer token with the admin scope; empty sends none
	Accounts    int
	Rules       int
	RuleActions bool
	// MatchAll adds a rule on won that matches every event, with no action;
	// Webhook gives it a webhook action to a receiver of the bench's own.
	MatchAll    bool
	Webhook     bool
	Events      int
	Concurrency int
	Batch       int     // 0: POST /v1/events; >0: POST /v1/events/batch with this many events
	Rate        float64 // events per second; 0: as fast as possible
	Timeout     time.Duration
	Raw         bool   // the same transactions straight to Postgres, processed by the server
	RawIngest   bool   // the same transactions straight to Postgres, processed by nothing
	RawOrder    string // "before" or "after" the HTTP run
	ServerPID   int
	JSON        bool

	// PrefillEvents and PrefillEvaluations are the processed history the
	// database should hold before the run (see prefill).
	PrefillEvents      int64
	PrefillEvaluations int64
	// PgbenchScript is where to write a pgbench script of the raw ingest
	// reference's transactions; empty writes none.
	PgbenchScript string
	// Backfill, dry_run or apply, starts a backfill of the run's first rule
	// over the stored history as the live load begins; empty starts none.
	Backfill string

	Logger *slog.Logger // progress; nil discards it
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
	fs.BoolVar(&o.MatchAll, "match-all", o.MatchAll, "add a rule on won that matches every event, with no action (the reference for --webhook)")
	fs.BoolVar(&o.Webhook, "webhook", o.Webhook, "add a rule on won that matches every event with a webhook action to a receiver this command serves on 127.0.0.1, answering 204 at once, and wait for every delivery (the server needs WEBHOOK_ALLOW_PRIVATE=true)")
	fs.IntVar(&o.Events, "events", o.Events, "won events to post (at most 10,000,000)")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "requests in flight at once")
	fs.IntVar(&o.Batch, "batch", o.Batch, "events per POST /v1/events/batch (up to 1000); 0 posts one event per POST /v1/events")
	fs.Float64Var(&o.Rate, "rate", o.Rate, "events per second, sent on a fixed schedule with latency measured from the scheduled time; 0 sends as fast as possible")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "stop after this long and report whatever is unfinished")
	fs.BoolVar(&o.Raw, "raw", o.Raw, "also write the same transactions straight to Postgres (pgx and River, no HTTP) as a reference")
	fs.BoolVar(&o.RawIngest, "raw-ingest", o.RawIngest, "also write the same transactions straight to Postgres with their jobs on a queue nothing works (ingest alone, nothing processing), then remove them")
	fs.StringVar(&o.RawOrder, "raw-order", o.RawOrder, "run the raw references before or after the HTTP run")
	fs.IntVar(&o.ServerPID, "server-pid", o.ServerPID, "server process id: sample VmRSS from /proc every 100ms; without it, scrape process_resident_memory_bytes from /metrics every 250ms")
	fs.BoolVar(&o.JSON, "json", o.JSON, "print the report as JSON after the table")
	fs.Int64Var(&o.PrefillEvents, "prefill-events", o.PrefillEvents, "before the run, add processed won events on accounts of their own until they hold this many (about 450 bytes each with indexes)")
	fs.Int64Var(&o.PrefillEvaluations, "prefill-evaluations", o.PrefillEvaluations, "with --prefill-events: the evaluations those events should have in all, on disabled rules of their own (about 400 bytes each with indexes)")
	fs.StringVar(&o.Backfill, "backfill", o.Backfill, "dry_run or apply: as the events are posted, backfill the run's first rule over the stored history (see --prefill-events) and report how long it took beside the live latency")
	fs.StringVar(&o.PgbenchScript, "pgbench-script", o.PgbenchScript, "write a pgbench script of the raw ingest reference's transactions to this file, on accounts created for it")
}

// Validate checks o before anything is sent.
func (o *Options) Validate() error {
	switch {
	case o.Events < 0 || o.Events > MaxEvents:
		return fmt.Errorf("--events must be from 1 to %d", MaxEvents)
	case o.Events == 0 && o.PrefillEvents == 0 && o.PgbenchScript == "":
		return errors.New("--events 0 runs nothing: it is for --prefill-events or --pgbench-script alone")
	case o.PrefillEvents < 0 || o.PrefillEvents > MaxPrefill:
		return fmt.Errorf("--prefill-events must be from 0 to %d", MaxPrefill)
	case o.PrefillEvaluations < 0 || o.PrefillEvaluations > maxPrefillRules*o.PrefillEvents:
		return fmt.Errorf("--prefill-evaluations must be from 0 to %d times --prefill-events", maxPrefillRules)
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
	case o.Backfill != "" && o.Backfill != "dry_run" && o.Backfill != "apply":
		return errors.New("--backfill must be dry_run or apply")
	case o.Backfill != "" && (o.Rules < 1 || o.Events == 0):
		return errors.New("--backfill needs --rules of at least 1 and some --events")
	case o.MatchAll && o.Webhook:
		return errors.New("--match-all and --webhook each add the match-all rule: give one")
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
