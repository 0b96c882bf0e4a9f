package config_test

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/config"
	"github.com/ctrader/ctrader/internal/engine"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestFlagWinsOverEnvironmentOverDefault(t *testing.T) {
	t.Parallel()
	cfg, rest, err := config.Load("serve", config.Database|config.Server, []string{"--worker-concurrency", "7", "extra"},
		env(map[string]string{"WORKER_CONCURRENCY": "3", "SHUTDOWN_TIMEOUT": "2s"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 7, cfg.WorkerConcurrency, "flag")
	require.Equal(t, 2*time.Second, cfg.ShutdownTimeout, "environment")
	require.Equal(t, ":8000", cfg.HTTPAddr, "default")
	require.Equal(t, 2*time.Second, cfg.HeartbeatInterval, "default")
	require.Equal(t, 10*time.Second, cfg.ProcessDeadAfter, "default")
	require.Equal(t, 1, cfg.BackfillWorkers, "default")
	require.Equal(t, []string{"extra"}, rest)
}

func TestQueueConcurrencyNamesKnownQueues(t *testing.T) {
	t.Parallel()
	cfg, _, err := config.Load("serve", config.Server, nil, env(map[string]string{"QUEUE_CONCURRENCY": "events=20, rules=40"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"events": 20, "rules": 40}, cfg.QueueConcurrency)

	_, _, err = config.Load("serve", config.Server, nil, env(map[string]string{"QUEUE_CONCURRENCY": "nope=1"}), io.Discard)
	require.ErrorContains(t, err, "invalid QUEUE_CONCURRENCY")
}

func TestSecretsNeverEchoed(t *testing.T) {
	t.Parallel()
	_, _, err := config.Load("serve", config.Server, nil, env(map[string]string{"AUTH_HS256_SECRET": "too-short-secret"}), io.Discard)
	require.ErrorContains(t, err, "invalid AUTH_HS256_SECRET")
	require.NotContains(t, err.Error(), "too-short-secret")
}

// The README's configuration table is the operator's reference: every
// setting must be in it, with its flag.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	for _, v := range config.Vars() {
		require.Contains(t, string(readme), "`"+v.Env+"`", "README does not document %s", v.Env)
		require.Contains(t, string(readme), "`--"+v.Flag+"`", "README does not document --%s", v.Flag)
		require.False(t, strings.ContainsAny(v.Flag, "_ "), "flag %s", v.Flag)
	}
}

// Each bad setting stops the process with one line naming the variable.
func TestBadSettingsAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"PPROF_ADDR": "0.0.0.0:6060"}, "invalid PPROF_ADDR: must be a loopback address"},
		{map[string]string{"VACUUM_INTERVAL": "-1s"}, "invalid VACUUM_INTERVAL"},
		{map[string]string{"INGEST_MAX_LAG": "-1s"}, "invalid INGEST_MAX_LAG"},
		{map[string]string{"INGEST_MAX_LAG": "soon"}, "invalid INGEST_MAX_LAG"},
		{map[string]string{"MAX_CASCADE_EVENTS": "0"}, "invalid MAX_CASCADE_EVENTS"},
		{map[string]string{"BACKFILL_WORKERS": "0"}, "invalid BACKFILL_WORKERS"},
		{map[string]string{"QUEUE_CONCURRENCY": "backfill=4"}, "invalid QUEUE_CONCURRENCY: set the backfill queue's workers with BACKFILL_WORKERS"},
		{map[string]string{"WRITE_RATE_LIMIT": "-1"}, "invalid WRITE_RATE_LIMIT"},
		{map[string]string{"WRITE_RATE_LIMIT": "NaN"}, "invalid WRITE_RATE_LIMIT"},
		{map[string]string{"EVENTS_BURST_RATE": "-1"}, "invalid EVENTS_BURST_RATE"},
		{map[string]string{"EVENTS_BURST_RATE": "NaN"}, "invalid EVENTS_BURST_RATE"},
		{map[string]string{"EVENTS_BURST_RATE": "Inf"}, "invalid EVENTS_BURST_RATE"},
		{map[string]string{"EVENTS_BURST_RATE": "fast"}, "invalid EVENTS_BURST_RATE"},
		{map[string]string{"EVENTS_BURST_FETCH_COOLDOWN": "0s"}, "invalid EVENTS_BURST_FETCH_COOLDOWN"},
		{map[string]string{"WRITE_RATE_BURST": "0"}, "invalid WRITE_RATE_BURST"},
		{map[string]string{"WEBHOOK_ALLOWED_CIDRS": "10.0.0.0/8,nope"}, "invalid WEBHOOK_ALLOWED_CIDRS"},
		{map[string]string{"WEBHOOK_SECRET_KEY": "c2hvcnQ="}, "invalid WEBHOOK_SECRET_KEY: must be 32 bytes"},
		{map[string]string{"WEBHOOK_ALLOW_PRIVATE": "maybe"}, "invalid WEBHOOK_ALLOW_PRIVATE"},
		{map[string]string{"MAX_EVENT_DEPTH": "101"}, "invalid MAX_EVENT_DEPTH"},
		{map[string]string{"FETCH_COOLDOWN": "0s"}, "invalid FETCH_COOLDOWN"},
		{map[string]string{"DATABASE_MAX_CONNS": "1"}, "invalid DATABASE_MAX_CONNS"},
		{map[string]string{"UI_USER": "ops"}, "UI_USER and UI_PASSWORD go together"},
		{map[string]string{"PROCESS_DEAD_AFTER": "8s"}, "PROCESS_DEAD_AFTER (8s) must be at least five PROCESS_HEARTBEAT_INTERVALs (2s)"},
		{map[string]string{"PROCESS_HEARTBEAT_INTERVAL": "0s"}, "invalid PROCESS_HEARTBEAT_INTERVAL"},
		{map[string]string{"METRICS_PASSWORD": "x"}, "METRICS_USER and METRICS_PASSWORD go together"},
		{map[string]string{"EVENTS_RETENTION": "90s"}, "invalid EVENTS_RETENTION: must be a duration of at least a day"},
		{map[string]string{"EVALUATIONS_RETENTION": "-1d"}, "invalid EVALUATIONS_RETENTION"},
		{map[string]string{"WEBHOOK_DELIVERIES_RETENTION": "soon"}, "invalid WEBHOOK_DELIVERIES_RETENTION"},
		{map[string]string{"RETENTION_INTERVAL": "0"}, "invalid RETENTION_INTERVAL"},
		{map[string]string{"JOB_DISCARDED_RETENTION": "-1h"}, "invalid JOB_DISCARDED_RETENTION"},
	}
	for _, tt := range tests {
		_, _, err := config.Load("serve", config.Database|config.Server, nil, env(tt.env), io.Discard)
		require.ErrorContains(t, err, tt.want)
		require.NotContains(t, err.Error(), "\n", "one line")
	}
}

// Loading configuration must not pull in the database driver or River: a
// command that only reads settings should not link them, and a setting's
// check belongs in a package that does not need them.
func TestConfigDependsOnNoDatabaseOrQueue(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		require.False(t, strings.HasPrefix(dep, "github.com/jackc/") || strings.HasPrefix(dep, "github.com/riverqueue/"),
			"config depends on %s", dep)
	}
}

// The engine's defaults are what tests and a bare engine.New run with; the
// settings must default to the same, or tests would prove another product.
// config cannot import engine (it would pull in the database driver), so
// the repetition is checked here.
func TestDefaultsAreTheEngines(t *testing.T) {
	t.Parallel()
	defaults := map[string]string{}
	for _, v := range config.Vars() {
		defaults[v.Env] = v.Default
	}
	require.Equal(t, strconv.Itoa(engine.DefaultMaxDepth), defaults["MAX_EVENT_DEPTH"])
	require.Equal(t, strconv.Itoa(engine.DefaultMaxCascade), defaults["MAX_CASCADE_EVENTS"])
}

// Retention periods read whole days, and 0 keeps rows forever.
func TestRetentionSettings(t *testing.T) {
	t.Parallel()
	cfg, _, err := config.Load("serve", config.Server, nil, env(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 90*24*time.Hour, cfg.EventsRetention)
	require.Equal(t, 90*24*time.Hour, cfg.EvaluationsRetention)
	require.Equal(t, 30*24*time.Hour, cfg.WebhookDeliveriesRetention)
	require.Equal(t, 7*24*time.Hour, cfg.JobDiscardedRetention)
	require.Equal(t, time.Hour, cfg.RetentionInterval)

	cfg, _, err = config.Load("serve", config.Server, []string{"--events-retention", "0", "--evaluations-retention", "400d"},
		env(map[string]string{"JOB_COMPLETED_RETENTION": "0"}), io.Discard)
	require.NoError(t, err)
	require.Zero(t, cfg.EventsRetention)
	require.Equal(t, 400*24*time.Hour, cfg.EvaluationsRetention)
	require.Zero(t, cfg.JobCompletedRetention)
}
