package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/app"
	"github.com/ctrader/ctrader/internal/apptest"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/dbtest"
)

type process struct {
	addr string
	logs *apptest.Logs
	stop context.CancelFunc
	done chan struct{} // closed when Run returns
	err  error         // what Run returned; read after done
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// start runs a ctrader command as main would, in this process, on port 0.
func start(t *testing.T, args []string, vars map[string]string) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{logs: apptest.NewLogs(), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = app.Run(ctx, args, env(vars), io.Discard, p.logs)
	}()
	select {
	case p.addr = <-p.logs.Addr():
	case <-p.done:
		cancel()
		t.Fatalf("%v exited early: %v\n%s", args, p.err, p.logs)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("%v did not start listening\n%s", args, p.logs)
	}
	t.Cleanup(func() {
		p.stop()
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			t.Errorf("%v did not stop", args)
		}
	})
	return p
}

func baseEnv(url string) map[string]string {
	return map[string]string{
		"DATABASE_URL": url,
		"HTTP_ADDR":    "127.0.0.1:0",
		"HEALTH_ADDR":  "127.0.0.1:0",
		"LOG_FORMAT":   "json",
		"LOG_LEVEL":    "info",
	}
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	if v != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
	return resp.StatusCode
}

func TestServeFollowsAccountToActiveAndStopsCleanly(t *testing.T) {
	t.Parallel()
	p := start(t, []string{"serve"}, baseEnv(dbtest.URL(t)))
	base := "http://" + p.addr

	resp, err := http.Post(base+"/v1/accounts", "application/json", strings.NewReader(`{"name":"John Doe"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	location := resp.Header.Get("Location")
	require.NotEmpty(t, location)

	require.Eventually(t, func() bool {
		var a struct {
			Status string `json:"status"`
		}
		return getJSON(t, base+location, &a) == http.StatusOK && a.Status == "active"
	}, 10*time.Second, 50*time.Millisecond, "account never became active")

	require.Equal(t, http.StatusOK, getJSON(t, base+"/readyz", nil))
	for _, path := range []string{"/riverui/", "/docs/", "/openapi.yaml"} {
		r, err := http.Get(base + path)
		require.NoError(t, err)
		r.Body.Close()
		require.Equal(t, http.StatusOK, r.StatusCode, path)
	}

	began := time.Now()
	p.stop()
	select {
	case <-p.done:
		require.NoError(t, p.err, "a signalled shutdown is a clean exit")
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10 seconds")
	}
	require.Less(t, time.Since(began), 10*time.Second)
	require.Contains(t, p.logs.String(), `"msg":"stopped"`)
}

func TestServeRefusesSchemaBehindUnlessMigrating(t *testing.T) {
	t.Parallel()
	url := dbtest.EmptyURL(t)
	err := app.Run(context.Background(), []string{"serve"}, env(baseEnv(url)), io.Discard, io.Discard)
	require.ErrorContains(t, err, "run `ctrader migrate up`")
	require.NotContains(t, err.Error(), "\n", "one line")

	p := start(t, []string{"serve", "--migrate"}, baseEnv(url))
	require.Equal(t, http.StatusOK, getJSON(t, "http://"+p.addr+"/readyz", nil))
}

func TestWorkerServesHealthOnly(t *testing.T) {
	t.Parallel()
	p := start(t, []string{"worker"}, baseEnv(dbtest.URL(t)))
	base := "http://" + p.addr
	require.Equal(t, http.StatusOK, getJSON(t, base+"/healthz", nil))
	require.Equal(t, http.StatusOK, getJSON(t, base+"/readyz", nil))
	require.Equal(t, http.StatusNotFound, getJSON(t, base+"/v1/accounts", nil))
}

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	vars := baseEnv(dbtest.EmptyURL(t))
	run := func(args ...string) string {
		var out bytes.Buffer
		require.NoError(t, app.Run(context.Background(), args, env(vars), &out, io.Discard))
		return out.String()
	}
	require.Contains(t, run("migrate", "status"), "pending")
	require.Contains(t, run("migrate", "up"), "00002_accounts.sql")
	require.Contains(t, run("migrate", "up"), "schema is current")
	for v := db.TargetVersion(); v > 1; v-- {
		require.Contains(t, run("migrate", "down"), fmt.Sprintf("rolled back %05d_", v))
	}
	require.Contains(t, run("migrate", "down"), "rolled back 00001_river_schema")
	require.Contains(t, run("migrate", "down"), "nothing to roll back")
	require.Contains(t, run("migrate", "up"), "00001_river_schema")

	err := app.Run(context.Background(), []string{"migrate", "sideways"}, env(vars), io.Discard, io.Discard)
	require.ErrorIs(t, err, app.ErrUsage)
}

func TestOpenAPINeedsNoDatabase(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	vars := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	require.NoError(t, app.Run(context.Background(), []string{"openapi"}, env(vars), &out, io.Discard))
	require.True(t, strings.HasPrefix(out.String(), "components:") || strings.Contains(out.String(), "openapi: 3.1.0"))

	out.Reset()
	require.NoError(t, app.Run(context.Background(), []string{"openapi", "--openapi-version", "3.0"}, env(vars), &out, io.Discard))
	require.Contains(t, out.String(), "openapi: 3.0.3")
}

func TestBadConfigurationIsOneClearLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		vars map[string]string
		args []string
		want string
	}{
		{map[string]string{"WORKER_CONCURRENCY": "lots"}, []string{"serve"}, "invalid WORKER_CONCURRENCY"},
		{map[string]string{"LOG_FORMAT": "xml"}, []string{"worker"}, "invalid LOG_FORMAT"},
		{map[string]string{"DATABASE_URL": "postgres://user:hunter2@[bad"}, []string{"serve"}, "DATABASE_URL is not a valid"},
		{map[string]string{"JOB_TIMEOUT": "2m", "JOB_RESCUE_AFTER": "1m"}, []string{"serve"}, "JOB_RESCUE_AFTER"},
		{nil, []string{"serve", "--http-addr"}, "flag needs an argument"},
		{nil, []string{"frobnicate"}, "usage"},
		{map[string]string{"DATABASE_URL": "postgres://nobody:hunter2@127.0.0.1:1/none"}, []string{"serve", "--http-addr", "127.0.0.1:0"}, "cannot reach the database: 127.0.0.1:1 (127.0.0.1): dial error"},
	}
	for _, tt := range tests {
		err := app.Run(context.Background(), tt.args, env(tt.vars), io.Discard, io.Discard)
		require.ErrorContains(t, err, tt.want)
		require.NotContains(t, err.Error(), "hunter2", "secrets never appear in errors")
		require.NotContains(t, err.Error(), "\n", "one line")
	}
	for _, args := range [][]string{{"serve", "--http-addr"}, {"openapi", "--format"}, {"migrate", "up", "--nope"}} {
		err := app.Run(context.Background(), args, env(nil), io.Discard, io.Discard)
		require.ErrorIs(t, err, app.ErrUsage, "%q: a refused flag exits 2", args)
	}
}
