package config_test

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/config"
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
