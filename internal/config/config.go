// Package config loads ctrader's configuration from the environment and from
// command-line flags that mirror it. A flag wins over its environment variable,
// which wins over the default. The result is validated once, in Load.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Config is everything a ctrader process needs to know at start.
type Config struct {
	DatabaseURL       string
	DatabaseMaxConns  int32
	LogLevel          slog.Level
	LogFormat         string // auto, text or json
	HTTPAddr          string
	HealthAddr        string
	WorkerConcurrency int
	Migrate           bool
	ShutdownTimeout   time.Duration
	JobTimeout        time.Duration
	JobRescueAfter    time.Duration
	HeartbeatInterval time.Duration
	ProcessDeadAfter  time.Duration
	QueueConcurrency  map[string]int
	BackfillWorkers   int
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// EventsBurstRate and EventsBurstFetchCooldown: see queue.EventsBurst.
	EventsBurstRate          float64
	EventsBurstFetchCooldown time.Duration
	MaxEventDepth            int
	MaxCascadeEvents         int
	WebhookTimeout           time.Duration
	WebhookAllowPrivate      bool
	WebhookAllowedCIDRs      []netip.Prefix
	WebhookSecretKey         string
	WebhookSecretGrace       time.Duration
	RulesEvalInterval        time.Duration

	AuthHS256Secret string
	AuthJWKSURL     string
	AuthJWKSFile    string
	AuthIssuer      string
	AuthAudience    string
	Insecure        bool
	UIUser          string
	UIPassword      string
	MetricsUser     string
	MetricsPassword string
	WriteRateLimit  float64
	WriteRateBurst  int
	PprofAddr       string
	VacuumInterval  time.Duration
	IngestMaxLag    time.Duration

	// Retention: how long each kind of row is kept; 0 keeps it forever.
	EventsRetention            time.Duration
	EvaluationsRetention       time.Duration
	WebhookDeliveriesRetention time.Duration
	JobCompletedRetention      time.Duration
	JobCancelledRetention      time.Duration
	JobDiscardedRetention      time.Duration
	RetentionInterval          time.Duration
}

// FlagError is a command line the flag package refused. The flag package has
// already printed it with the usage to Load's output.
type FlagError struct{ Err error }

func (e *FlagError) Error() string { return e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

// Load reads the settings of the given groups from getenv, then from args.
// It returns the arguments left after the flags. Help output and flag errors
// go to output. extra registers a command's own flags on the same flag set.
func Load(name string, groups Group, args []string, getenv func(string) string, output io.Writer, extra ...func(*flag.FlagSet)) (*Config, []string, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	for _, register := range extra {
		register(fs)
	}

	for _, v := range Vars() {
		if v.Group&groups == 0 {
			continue
		}
		if err := v.set(cfg, v.Default); err != nil {
			return nil, nil, fmt.Errorf("default of %s: %w", v.Env, err)
		}
		if env := strings.TrimSpace(getenv(v.Env)); env != "" {
			if err := v.set(cfg, env); err != nil {
				return nil, nil, fmt.Errorf("invalid %s: %w", v.Env, err)
			}
		}
		setter := v.set
		usage := fmt.Sprintf("%s (env %s, default %q)", v.Usage, v.Env, v.Default)
		if v.Group&Secret != 0 {
			usage = fmt.Sprintf("%s (env %s)", v.Usage, v.Env)
		}
		if v.Flag == "migrate" || v.Flag == "insecure" {
			fs.BoolFunc(v.Flag, usage, func(s string) error { return setter(cfg, s) })
			continue
		}
		fs.Func(v.Flag, usage, func(s string) error { return setter(cfg, s) })
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, &FlagError{Err: err}
	}
	if err := cfg.validate(groups); err != nil {
		return nil, nil, err
	}
	return cfg, fs.Args(), nil
}

func (c *Config) validate(groups Group) error {
	if groups&Server == 0 {
		return nil
	}
	if c.JobRescueAfter <= c.JobTimeout {
		return fmt.Errorf("JOB_RESCUE_AFTER (%s) must be longer than JOB_TIMEOUT (%s)", c.JobRescueAfter, c.JobTimeout)
	}
	if c.ProcessDeadAfter < 5*c.HeartbeatInterval {
		return fmt.Errorf("PROCESS_DEAD_AFTER (%s) must be at least five PROCESS_HEARTBEAT_INTERVALs (%s)", c.ProcessDeadAfter, c.HeartbeatInterval)
	}
	if (c.UIUser == "") != (c.UIPassword == "") {
		return errors.New("UI_USER and UI_PASSWORD go together")
	}
	if (c.MetricsUser == "") != (c.MetricsPassword == "") {
		return errors.New("METRICS_USER and METRICS_PASSWORD go together")
	}
	return nil
}

// AuthConfigured reports whether bearer tokens can be verified.
func (c *Config) AuthConfigured() bool {
	return c.AuthHS256Secret != "" || c.AuthJWKSURL != "" || c.AuthJWKSFile != ""
}

// LoopbackHost reports whether host names this machine only: "localhost" or
// a loopback address.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// LoopbackAddr reports whether a host:port address listens on loopback only.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && LoopbackHost(host)
}
