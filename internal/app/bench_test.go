package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/app"
	"github.com/ctrader/ctrader/internal/bench"
	"github.com/ctrader/ctrader/internal/dbtest"
)

func TestBenchAgainstARunningServer(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	vars := baseEnv(url)
	vars["WRITE_RATE_LIMIT"] = "0"         // the bench writes as fast as it can
	vars["WEBHOOK_ALLOW_PRIVATE"] = "true" // --webhook's receiver is on 127.0.0.1
	p := start(t, []string{"serve"}, vars)

	run := func(extra ...string) (string, error) {
		args := append([]string{"bench", "--url", "http://" + p.addr,
			"--accounts", "3", "--rules", "2", "--events", "200", "--concurrency", "4", "--timeout", "2m"}, extra...)
		var out bytes.Buffer
		err := app.Run(context.Background(), args, env(map[string]string{"DATABASE_URL": url, "LOG_FORMAT": "json"}), &out, io.Discard)
		return out.String(), err
	}

	// A pre-fill and a pgbench script alone, with no run: the pre-fill's
	// rules are disabled, so the runs below still see two rules per event.
	script := filepath.Join(t.TempDir(), "ingest.sql")
	out, err := run("--events", "0", "--prefill-events", "300", "--prefill-evaluations", "600", "--pgbench-script", script, "--json")
	require.NoError(t, err, out)
	require.Regexp(t, regexp.MustCompile(`(?m)^pre-fill\s+300 processed events and 600 evaluations on 1000 accounts and 2 disabled rules`), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^\s+pgbench -n -M prepared -f \S+ingest.sql -c 4 -j \d -T 30 "\$DATABASE_URL"$`), out)
	require.NotRegexp(t, regexp.MustCompile(`(?m)^check`), out, "no run, no check")
	require.FileExists(t, script)
	i := strings.Index(out, "\n{")
	require.GreaterOrEqual(t, i, 0)
	var prefilled bench.Report
	require.NoError(t, json.Unmarshal([]byte(out[i+1:]), &prefilled))
	require.Equal(t, int64(300), prefilled.Prefill.EventsAdded)
	require.Equal(t, int64(600), prefilled.Prefill.EvaluationsAdded)
	require.Equal(t, script, prefilled.Pgbench.Path)

	// One event per request; memory from the server's /metrics.
	out, err = run()
	require.NoError(t, err, out)
	require.Regexp(t, regexp.MustCompile(`(?m)^check\s+OK: 200 events processed, none failed, 400 evaluations \(2 per event\)`), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^ingest\s+200 events in `), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^server RSS\s+peak \d`), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^kept pace\s+\d+\.\d% of the run's events processed when the last POST was answered \(\d+ of 200, `), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^stalls\s+`), out)

	// Batches of 50, the raw reference, memory from /proc, and JSON. The first
	// run's rules were deleted, so each event again sees two.
	out, err = run("--batch", "50", "--raw", "--raw-ingest", "--json", "--server-pid", strconv.Itoa(os.Getpid()))
	require.NoError(t, err, out)
	require.Regexp(t, regexp.MustCompile(`(?m)^check\s+OK: `), out)
	require.Regexp(t, regexp.MustCompile(`ctrader ingest = \d+% of raw\n`), out)
	require.Regexp(t, regexp.MustCompile(`ctrader ingest = \d+% of raw ingest, end to end = \d+% of raw ingest`), out)

	i = strings.Index(out, "\n{")
	require.GreaterOrEqual(t, i, 0, "the JSON report follows the table")
	var rep bench.Report
	require.NoError(t, json.Unmarshal([]byte(out[i+1:]), &rep))
	require.True(t, rep.Check.OK)
	require.Equal(t, 200, rep.Check.Events)
	require.Equal(t, 200, rep.Check.Processed)
	require.EqualValues(t, 400, rep.Check.Evaluations)
	require.Equal(t, 2, rep.Check.ExpectedPerEvent)
	require.Equal(t, 200, rep.Ingest.Accepted)
	require.Equal(t, 4, rep.Ingest.Requests)
	require.Zero(t, rep.Ingest.Errors)
	require.Positive(t, rep.Ingest.EventsPerSecond)
	require.Positive(t, rep.Ingest.Latency.P50)
	require.GreaterOrEqual(t, rep.Ingest.Latency.P99, rep.Ingest.Latency.P50)
	require.Equal(t, 200, rep.EndToEnd.Processed)
	require.Positive(t, rep.EndToEnd.EventsPerSecond)
	require.Positive(t, rep.EndToEnd.Latency.P50)
	require.GreaterOrEqual(t, rep.EndToEnd.Latency.P99, rep.EndToEnd.Latency.P50)
	require.True(t, rep.Memory.Available, rep.Memory.Reason)
	require.Positive(t, rep.Memory.PeakMB)
	require.Equal(t, 200, rep.Pace.StoredEventsAtLastPost, "every accepted event is stored when its POST is answered")
	require.InDelta(t, float64(rep.Pace.ProcessedEventsAtLastPost)/200, rep.Pace.ProcessedAtLastPost, 1e-9)
	require.Positive(t, rep.Pace.LastPostSeconds)
	require.Positive(t, rep.Pace.AverageRate)
	require.NotNil(t, rep.Pace.Stalls, "no stalls is an empty list")
	require.InDelta(t, 250.0, rep.Pace.BucketMS, 1e-9)
	require.NotNil(t, rep.Raw)
	require.Empty(t, rep.Raw.Error)
	require.Equal(t, 200, rep.Raw.Events)
	require.Equal(t, 4, rep.Raw.Transactions)
	require.Positive(t, rep.Raw.EventsPerSecond)
	require.Positive(t, rep.Raw.IngestPercent)
	require.True(t, rep.Raw.Drained, "the server processes the raw run's jobs too")
	require.Positive(t, rep.Raw.TransactionsPerSecond)
	require.NotNil(t, rep.RawIngest)
	require.Empty(t, rep.RawIngest.Error)
	require.Equal(t, 200, rep.RawIngest.Events)
	require.Equal(t, 4, rep.RawIngest.Transactions)
	require.Positive(t, rep.RawIngest.TransactionsPerSecond)
	require.Positive(t, rep.RawIngest.IngestPercent)
	require.Positive(t, rep.RawIngest.EndToEndPercent)
	require.True(t, rep.RawIngest.Removed)
	require.NotEmpty(t, rep.Machine.PostgresVersion)

	// A rule matching every event, plain and then with a webhook action: each
	// event has three evaluations, and with the webhook one delivery reaches
	// the bench's receiver.
	out, err = run("--match-all")
	require.NoError(t, err, out)
	require.Regexp(t, regexp.MustCompile(`(?m)^\s+and a rule on won matching every event, with no action$`), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^check\s+OK: 200 events processed, none failed, 600 evaluations \(3 per event\)`), out)
	require.NotRegexp(t, regexp.MustCompile(`(?m)^webhooks`), out)
	out, err = run("--webhook", "--json")
	require.NoError(t, err, out)
	require.Regexp(t, regexp.MustCompile(`(?m)^check\s+OK: 200 events processed, none failed, 600 evaluations \(3 per event\)`), out)
	require.Regexp(t, regexp.MustCompile(`(?m)^webhooks\s+200 of 200 deliveries received, the last \d+\.\d{3} s after the first POST`), out)
	i = strings.Index(out, "\n{")
	require.GreaterOrEqual(t, i, 0)
	var hooked bench.Report
	require.NoError(t, json.Unmarshal([]byte(out[i+1:]), &hooked))
	require.NotNil(t, hooked.Webhooks)
	require.Equal(t, 200, hooked.Webhooks.Received)
	require.GreaterOrEqual(t, hooked.Webhooks.Requests, 200)
	require.Positive(t, hooked.Webhooks.DeliveriesPerSecond)
	require.True(t, hooked.Params.Webhook)
	require.Zero(t, hooked.Params.OtherRules, "the match-all rules of the runs before were deleted")
}

// A server that refuses loopback webhook addresses fails a --webhook run as
// soon as its first attempt does, saying what to set.
func TestBenchWebhookNeedsPrivateAddresses(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	vars := baseEnv(url)
	vars["WRITE_RATE_LIMIT"] = "0"
	p := start(t, []string{"serve"}, vars)
	args := []string{"bench", "--url", "http://" + p.addr, "--accounts", "2", "--rules", "0", "--events", "20", "--webhook", "--timeout", "2m"}
	var out bytes.Buffer
	began := time.Now()
	err := app.Run(context.Background(), args, env(map[string]string{"DATABASE_URL": url}), &out, io.Discard)
	require.ErrorContains(t, err, "WEBHOOK_ALLOW_PRIVATE=true")
	require.Less(t, time.Since(began), time.Minute, "the run stops without waiting for its timeout")
	require.Regexp(t, regexp.MustCompile(`(?m)^webhooks\s+0 of 20 deliveries received`), out.String())
}

func TestBenchRefusesNonLoopbackServers(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"}
	for _, u := range []string{"http://10.0.0.1:8000", "http://example.com"} {
		err := app.Run(context.Background(), []string{"bench", "--url", u}, env(vars), io.Discard, io.Discard)
		require.ErrorIs(t, err, app.ErrUsage, u)
		require.ErrorContains(t, err, "loopback", u)
	}
}

func TestBenchMintsATokenForASecuredServer(t *testing.T) {
	t.Parallel()
	const secret = "bench-test-secret-bench-test-secret-0123"
	url := dbtest.URL(t)
	vars := baseEnv(url)
	vars["WRITE_RATE_LIMIT"] = "0"
	vars["AUTH_HS256_SECRET"] = secret
	p := start(t, []string{"serve"}, vars)
	args := []string{"bench", "--url", "http://" + p.addr, "--accounts", "2", "--rules", "1", "--events", "40", "--concurrency", "2", "--json"}

	// Without a token the server refuses, and the bench says what to do.
	err := app.Run(context.Background(), args, env(map[string]string{"DATABASE_URL": url}), io.Discard, io.Discard)
	require.ErrorContains(t, err, "401")
	require.ErrorContains(t, err, "--token")

	var out bytes.Buffer
	err = app.Run(context.Background(), args, env(map[string]string{"DATABASE_URL": url, "AUTH_HS256_SECRET": secret}), &out, io.Discard)
	require.NoError(t, err, out.String())
	i := strings.Index(out.String(), "\n{")
	require.GreaterOrEqual(t, i, 0)
	var rep bench.Report
	require.NoError(t, json.Unmarshal(out.Bytes()[i+1:], &rep))
	require.True(t, rep.Check.OK, rep.Check.Problems)
	require.True(t, rep.Params.Authenticated)
	require.EqualValues(t, 40, rep.Check.Evaluations)
	require.True(t, rep.Memory.Available, "an admin token may scrape /metrics: %s", rep.Memory.Reason)
	require.Contains(t, rep.Memory.Source, "/metrics")

	// At a fixed rate of 200 events/s the 40th event is due 195ms in, so
	// ingest cannot finish sooner.
	out.Reset()
	err = app.Run(context.Background(), append(args, "--rate", "200"), env(map[string]string{"DATABASE_URL": url, "AUTH_HS256_SECRET": secret}), &out, io.Discard)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "200 events/s on a fixed schedule")
	i = strings.Index(out.String(), "\n{")
	require.GreaterOrEqual(t, i, 0)
	rep = bench.Report{}
	require.NoError(t, json.Unmarshal(out.Bytes()[i+1:], &rep))
	require.True(t, rep.Check.OK, rep.Check.Problems)
	require.Equal(t, 40, rep.Ingest.Accepted)
	require.GreaterOrEqual(t, rep.Ingest.Seconds, 0.195)
}
