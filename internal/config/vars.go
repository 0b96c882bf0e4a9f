package config

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/queue"
	"github.com/ctrader/ctrader/internal/seal"
)

// Group selects which settings a command accepts.
type Group int

const (
	// Database settings: every command that talks to Postgres.
	Database Group = 1 << iota
	// Server settings: serve and worker.
	Server
	// Secret marks a setting whose value must never be shown.
	Secret
	// Token settings: the token command.
	Token
)

// Var describes one setting; the README's configuration table lists the same.
type Var struct {
	Env     string
	Flag    string
	Default string
	Usage   string
	Group   Group
	set     func(c *Config, v string) error
}

// DefaultDatabaseURL points at a local Postgres with trust authentication.
const DefaultDatabaseURL = "postgres://postgres@localhost:5432/ctrader?sslmode=disable"

// Vars lists every setting in the order the help text shows them.
func Vars() []Var {
	return []Var{
		{Env: "DATABASE_URL", Flag: "database-url", Default: DefaultDatabaseURL, Group: Database,
			Usage: "Postgres connection string: a URL or libpq key=value string (host=/var/run/postgresql for a unix socket)",
			set:   func(c *Config, v string) error { c.DatabaseURL = v; return nil }},
		{Env: "DATABASE_MAX_CONNS", Flag: "database-max-conns", Default: "20", Group: Database,
			Usage: "maximum connections in the pool",
			set: func(c *Config, v string) error {
				n, err := strconv.ParseInt(v, 10, 32)
				if err != nil || n < 2 || n > 1000 {
					return errors.New("must be a whole number from 2 to 1000")
				}
				c.DatabaseMaxConns = int32(n)
				return nil
			}},
		{Env: "LOG_LEVEL", Flag: "log-level", Default: "info", Group: Database,
			Usage: "debug, info, warn or error",
			set: func(c *Config, v string) error {
				return c.LogLevel.UnmarshalText([]byte(v))
			}},
		{Env: "LOG_FORMAT", Flag: "log-format", Default: "auto", Group: Database,
			Usage: "auto (coloured text on a terminal, JSON otherwise), text or json",
			set: func(c *Config, v string) error {
				switch v {
				case "auto", "text", "json":
					c.LogFormat = v
					return nil
				}
				return errors.New("must be auto, text or json")
			}},
		{Env: "HTTP_ADDR", Flag: "http-addr", Default: ":8000", Group: Server,
			Usage: "address the API listens on (serve)",
			set:   func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
		{Env: "HEALTH_ADDR", Flag: "health-addr", Default: ":8001", Group: Server,
			Usage: "address /healthz and /readyz listen on (worker)",
			set:   func(c *Config, v string) error { c.HealthAddr = v; return nil }},
		{Env: "WORKER_CONCURRENCY", Flag: "worker-concurrency", Default: "10", Group: Server,
			Usage: "jobs worked at once per queue in this process",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 10_000 {
					return errors.New("must be a whole number from 1 to 10000")
				}
				c.WorkerConcurrency = n
				return nil
			}},
		{Env: "QUEUE_CONCURRENCY", Flag: "queue-concurrency", Default: "events=50", Group: Server,
			Usage: "per-queue overrides of WORKER_CONCURRENCY, such as events=50,rules=40 (queues: " + strings.Join(queue.Tunable(), ", ") + "); events jobs that run at once share transactions, and a waiting one holds no connection",
			set:   setQueueConcurrency},
		{Env: "BACKFILL_WORKERS", Flag: "backfill-workers", Default: "1", Group: Server,
			Usage: "backfill pages worked at once in this process (queue backfill); each backfill works one page at a time",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 100 {
					return errors.New("must be a whole number from 1 to 100")
				}
				c.BackfillWorkers = n
				return nil
			}},
		{Env: "FETCH_COOLDOWN", Flag: "fetch-cooldown", Default: "5ms", Group: Server,
			Usage: "least time between two fetches of a queue; a queue works at most its concurrency per cooldown",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.FetchCooldown })},
		{Env: "FETCH_POLL_INTERVAL", Flag: "fetch-poll-interval", Default: "1s", Group: Server,
			Usage: "how often queues are polled for jobs when no insert notification arrives",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.FetchPollInterval })},
		{Env: "EVENTS_BURST_RATE", Flag: "events-burst-rate", Default: "400", Group: Server,
			Usage: "events a second above which this process puts the jobs of the events it ingests on the events_burst queue, fetched every EVENTS_BURST_FETCH_COOLDOWN (fewer, larger fetches while a burst lasts); 0 never",
			set:   perSecondSetter(func(c *Config) *float64 { return &c.EventsBurstRate }, "events")},
		{Env: "EVENTS_BURST_FETCH_COOLDOWN", Flag: "events-burst-fetch-cooldown", Default: "100ms", Group: Server,
			Usage: "least time between two fetches of the events_burst queue",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.EventsBurstFetchCooldown })},
		{Env: "MAX_EVENT_DEPTH", Flag: "max-event-depth", Default: "8", Group: Server,
			Usage: "longest chain of follow-up events; events at this depth are evaluated but emit nothing",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 100 {
					return errors.New("must be a whole number from 0 to 100")
				}
				c.MaxEventDepth = n
				return nil
			}},
		{Env: "MAX_CASCADE_EVENTS", Flag: "max-cascade-events", Default: "1000", Group: Server,
			Usage: "most follow-up events one posted event may cause in all depths together; emits beyond it are skipped",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 1_000_000 {
					return errors.New("must be a whole number from 1 to 1000000")
				}
				c.MaxCascadeEvents = n
				return nil
			}},
		{Env: "RULES_EVAL_INTERVAL", Flag: "rules-eval-interval", Default: "5m", Group: Server,
			Usage: "period of the scheduled evaluation of scheduled rules",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.RulesEvalInterval })},
		{Env: "WEBHOOK_TIMEOUT", Flag: "webhook-timeout", Default: "15s", Group: Server,
			Usage: "time allowed for one webhook delivery attempt",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.WebhookTimeout })},
		{Env: "WEBHOOK_ALLOW_PRIVATE", Flag: "webhook-allow-private", Default: "false", Group: Server,
			Usage: "allow webhook deliveries to loopback, private and link-local addresses (development only)",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return errors.New("must be true or false")
				}
				c.WebhookAllowPrivate = b
				return nil
			}},
		{Env: "WEBHOOK_ALLOWED_CIDRS", Flag: "webhook-allowed-cidrs", Default: "", Group: Server,
			Usage: "non-public ranges webhook deliveries may reach anyway, such as 10.1.0.0/16,192.168.1.5",
			set: func(c *Config, v string) error {
				prefixes, err := egress.ParseCIDRs(v)
				c.WebhookAllowedCIDRs = prefixes
				return err
			}},
		{Env: "WEBHOOK_SECRET_KEY", Flag: "webhook-secret-key", Default: "", Group: Server | Secret,
			Usage: "32 bytes in base64 (openssl rand -base64 32) that encrypt webhook signing secrets at rest; empty stores them unencrypted",
			set: func(c *Config, v string) error {
				if _, err := seal.ParseKey(v); err != nil {
					return err
				}
				c.WebhookSecretKey = v
				return nil
			}},
		{Env: "WEBHOOK_SECRET_GRACE", Flag: "webhook-secret-grace", Default: "24h", Group: Server,
			Usage: "how long a rotated-out webhook secret keeps signing alongside the new one",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.WebhookSecretGrace })},
		{Env: "AUTH_HS256_SECRET", Flag: "auth-hs256-secret", Default: "", Group: Server | Token | Secret,
			Usage: "shared secret (at least 32 bytes) that verifies HS256 bearer tokens and that the token command signs with",
			set: func(c *Config, v string) error {
				if v != "" && len(v) < 32 {
					return errors.New("must be at least 32 bytes (openssl rand -base64 32)")
				}
				c.AuthHS256Secret = v
				return nil
			}},
		{Env: "AUTH_JWKS_URL", Flag: "auth-jwks-url", Default: "", Group: Server,
			Usage: "URL of a JWK set whose keys verify RS256, ES256 and EdDSA bearer tokens",
			set:   func(c *Config, v string) error { c.AuthJWKSURL = v; return nil }},
		{Env: "AUTH_JWKS_FILE", Flag: "auth-jwks-file", Default: "", Group: Server,
			Usage: "path of a JWK set file, as AUTH_JWKS_URL",
			set:   func(c *Config, v string) error { c.AuthJWKSFile = v; return nil }},
		{Env: "AUTH_ISSUER", Flag: "auth-issuer", Default: "", Group: Server | Token,
			Usage: "required iss claim of bearer tokens (checked when set)",
			set:   func(c *Config, v string) error { c.AuthIssuer = v; return nil }},
		{Env: "AUTH_AUDIENCE", Flag: "auth-audience", Default: "", Group: Server | Token,
			Usage: "required aud claim of bearer tokens (checked when set)",
			set:   func(c *Config, v string) error { c.AuthAudience = v; return nil }},
		{Env: "INSECURE", Flag: "insecure", Default: "false", Group: Server,
			Usage: "serve without authentication on a non-loopback address (never in production)",
			set:   boolSetter(func(c *Config) *bool { return &c.Insecure })},
		{Env: "UI_USER", Flag: "ui-user", Default: "", Group: Server,
			Usage: "HTTP basic user for River UI and /docs in a browser (with UI_PASSWORD)",
			set:   func(c *Config, v string) error { c.UIUser = v; return nil }},
		{Env: "UI_PASSWORD", Flag: "ui-password", Default: "", Group: Server | Secret,
			Usage: "HTTP basic password for River UI and /docs",
			set:   func(c *Config, v string) error { c.UIPassword = v; return nil }},
		{Env: "METRICS_USER", Flag: "metrics-user", Default: "", Group: Server,
			Usage: "HTTP basic user Prometheus scrapes /metrics with (with METRICS_PASSWORD)",
			set:   func(c *Config, v string) error { c.MetricsUser = v; return nil }},
		{Env: "METRICS_PASSWORD", Flag: "metrics-password", Default: "", Group: Server | Secret,
			Usage: "HTTP basic password for /metrics",
			set:   func(c *Config, v string) error { c.MetricsPassword = v; return nil }},
		{Env: "WRITE_RATE_LIMIT", Flag: "write-rate-limit", Default: "100", Group: Server,
			Usage: "writes per second allowed to each client (token subject, or address without authentication); 0 disables",
			set:   perSecondSetter(func(c *Config) *float64 { return &c.WriteRateLimit }, "requests")},
		{Env: "WRITE_RATE_BURST", Flag: "write-rate-burst", Default: "200", Group: Server,
			Usage: "writes a client may make at once before WRITE_RATE_LIMIT applies",
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return errors.New("must be a whole number, 1 or more")
				}
				c.WriteRateBurst = n
				return nil
			}},
		{Env: "VACUUM_INTERVAL", Flag: "vacuum-interval", Default: "5s", Group: Server,
			Usage: "how often ctrader looks at its busiest tables, analyzing those autovacuum's thresholds say changed and vacuuming them too where autovacuum is off; 0 never",
			set:   offDurationSetter(func(c *Config) *time.Duration { return &c.VacuumInterval })},
		{Env: "INGEST_MAX_LAG", Flag: "ingest-max-lag", Default: "5s", Group: Server,
			Usage: "when event processing lags this far behind, posting events answers 503 with Retry-After until it catches up; 0 never",
			set:   offDurationSetter(func(c *Config) *time.Duration { return &c.IngestMaxLag })},
		{Env: "EVENTS_RETENTION", Flag: "events-retention", Default: "90d", Group: Server,
			Usage: "how long events are kept (whole weekly partitions are dropped once entirely older); 0 forever",
			set:   retentionSetter(func(c *Config) *time.Duration { return &c.EventsRetention })},
		{Env: "EVALUATIONS_RETENTION", Flag: "evaluations-retention", Default: "90d", Group: Server,
			Usage: "how long evaluations are kept (whole weekly partitions are dropped once entirely older); 0 forever",
			set:   retentionSetter(func(c *Config) *time.Duration { return &c.EvaluationsRetention })},
		{Env: "WEBHOOK_DELIVERIES_RETENTION", Flag: "webhook-deliveries-retention", Default: "30d", Group: Server,
			Usage: "how long finished webhook deliveries and their attempts are kept; 0 forever",
			set:   retentionSetter(func(c *Config) *time.Duration { return &c.WebhookDeliveriesRetention })},
		{Env: "RETENTION_INTERVAL", Flag: "retention-interval", Default: "1h", Group: Server,
			Usage: "how often partitions of events and evaluations are created ahead and rows past their retention removed",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.RetentionInterval })},
		{Env: "JOB_COMPLETED_RETENTION", Flag: "job-completed-retention", Default: "24h", Group: Server,
			Usage: "how long River keeps completed jobs; 0 forever",
			set:   offDurationSetter(func(c *Config) *time.Duration { return &c.JobCompletedRetention })},
		{Env: "JOB_CANCELLED_RETENTION", Flag: "job-cancelled-retention", Default: "24h", Group: Server,
			Usage: "how long River keeps cancelled jobs; 0 forever",
			set:   offDurationSetter(func(c *Config) *time.Duration { return &c.JobCancelledRetention })},
		{Env: "JOB_DISCARDED_RETENTION", Flag: "job-discarded-retention", Default: "7d", Group: Server,
			Usage: "how long River keeps discarded jobs (those that failed every attempt); 0 forever",
			set:   offDurationSetter(func(c *Config) *time.Duration { return &c.JobDiscardedRetention })},
		{Env: "PPROF_ADDR", Flag: "pprof-addr", Default: "", Group: Server,
			Usage: "loopback address to serve Go's pprof profiles on, such as 127.0.0.1:6060; empty disables",
			set: func(c *Config, v string) error {
				if v != "" && !LoopbackAddr(v) {
					return errors.New("must be a loopback address such as 127.0.0.1:6060")
				}
				c.PprofAddr = v
				return nil
			}},
		{Env: "MIGRATE", Flag: "migrate", Default: "false", Group: Server,
			Usage: "apply pending migrations before starting",
			set:   boolSetter(func(c *Config) *bool { return &c.Migrate })},
		{Env: "SHUTDOWN_TIMEOUT", Flag: "shutdown-timeout", Default: "8s", Group: Server,
			Usage: "time allowed on SIGTERM for in-flight requests and jobs before they are cancelled",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{Env: "JOB_TIMEOUT", Flag: "job-timeout", Default: "30s", Group: Server,
			Usage: "longest a single job may run before its context is cancelled",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.JobTimeout })},
		{Env: "JOB_RESCUE_AFTER", Flag: "job-rescue-after", Default: "1m", Group: Server,
			Usage: "running jobs that heartbeats do not retry (last attempts, cancellations, processes with no heartbeat row) are retried by River's rescuer after this (must exceed JOB_TIMEOUT)",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.JobRescueAfter })},
		{Env: "PROCESS_HEARTBEAT_INTERVAL", Flag: "process-heartbeat-interval", Default: "2s", Group: Server,
			Usage: "how often a working process records that it is alive and retries the jobs of dead processes",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.HeartbeatInterval })},
		{Env: "PROCESS_DEAD_AFTER", Flag: "process-dead-after", Default: "10s", Group: Server,
			Usage: "a process silent this long is dead and the jobs it left running are retried at once (at least five PROCESS_HEARTBEAT_INTERVALs)",
			set:   durationSetter(func(c *Config) *time.Duration { return &c.ProcessDeadAfter })},
	}
}
