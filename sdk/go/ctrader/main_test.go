package ctrader_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ctrader/ctrader/internal/app"
	"github.com/ctrader/ctrader/internal/apptest"
	"github.com/ctrader/ctrader/internal/dbtest"
)

// The examples run against a real server: ctrader serve, in this process, on
// its own database, with River working jobs.
var (
	// serverURL is the API's base URL, such as http://localhost:8000.
	serverURL string
	// token is a bearer token with the admin scope, as minted by
	// `ctrader token --sub examples --scope admin`.
	token string
)

// TestMain starts the server the examples talk to, runs the package's tests
// and examples, then stops the server and drops its database (kept when
// something failed).
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) (code int) {
	tb := &mainTB{}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal)
			if !ok {
				panic(r)
			}
			fmt.Fprintf(os.Stderr, "sdk/go/ctrader: %s\n(the examples need a Postgres server, like the rest of the tests: set CTRADER_TEST_DATABASE_URL)\n", f)
			code = 1
		}
		tb.failed = code != 0
		tb.cleanup()
		if tb.failed {
			for _, l := range tb.logs {
				fmt.Fprintln(os.Stderr, l)
			}
		}
	}()

	vars := map[string]string{
		"DATABASE_URL":      dbtest.URL(tb),
		"HTTP_ADDR":         "127.0.0.1:0",
		"LOG_FORMAT":        "json",
		"LOG_LEVEL":         "info",
		"AUTH_HS256_SECRET": "examples-examples-examples-examples",
	}
	getenv := func(k string) string { return vars[k] }

	var out bytes.Buffer
	if err := app.Run(context.Background(), []string{"token", "--sub", "examples", "--scope", "admin"}, getenv, &out, io.Discard); err != nil {
		tb.Fatalf("mint a token: %v", err)
	}
	token = strings.TrimSpace(out.String())

	logs := apptest.NewLogs()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, []string{"serve"}, getenv, io.Discard, logs) }()
	tb.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				tb.Fatalf("serve: %v", err)
			}
		case <-time.After(15 * time.Second):
			tb.Fatalf("serve did not stop")
		}
		if tb.failed {
			fmt.Fprintf(os.Stderr, "server log:\n%s", logs)
		}
	})
	select {
	case addr := <-logs.Addr():
		serverURL = "http://" + addr
	case err := <-done:
		done <- err
		tb.Fatalf("serve exited early: %v\n%s", err, logs)
	case <-time.After(20 * time.Second):
		tb.Fatalf("serve did not start listening\n%s", logs)
	}
	return m.Run()
}

// fatal is what mainTB.Fatalf panics with; runMain recovers it.
type fatal string

// mainTB is what dbtest needs of a test, for TestMain, which has no
// *testing.T: Fatalf stops runMain, and cleanups run when it returns.
type mainTB struct {
	failed   bool
	cleanups []func()
	logs     []string // printed when something failed
}

func (tb *mainTB) Cleanup(f func()) { tb.cleanups = append(tb.cleanups, f) }
func (tb *mainTB) Failed() bool     { return tb.failed }
func (tb *mainTB) Helper()          {}
func (tb *mainTB) Logf(format string, args ...any) {
	tb.logs = append(tb.logs, fmt.Sprintf(format, args...))
}
func (tb *mainTB) Fatalf(format string, args ...any) { panic(fatal(fmt.Sprintf(format, args...))) }

// cleanup runs the cleanups last first; one that fails is reported and the
// rest still run.
func (tb *mainTB) cleanup() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		func() {
			defer func() {
				if r := recover(); r != nil {
					fmt.Fprintf(os.Stderr, "sdk/go/ctrader: cleanup: %v\n", r)
				}
			}()
			tb.cleanups[i]()
		}()
	}
}
