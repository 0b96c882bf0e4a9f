// Package app wires ctrader together: it parses the command line, builds the
// logger, pool, River client and HTTP servers each command needs, and runs
// them until the context ends.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/ctrader/ctrader/internal/config"
)

const usage = `ctrader: Postgres-native event and rules service

Usage:
  ctrader serve     API, workers, scheduler and River UI in one process
  ctrader worker    workers and scheduler only, with /healthz and /readyz
  ctrader migrate   up | down | status
  ctrader openapi   print the OpenAPI document (no database needed)
  ctrader token     mint an HS256 bearer token: --sub NAME --scope write --ttl 1h
  ctrader health    GET a URL and exit 0 on 2xx (container healthchecks)
  ctrader bench     load a running server and report throughput, latency and memory
  ctrader version   print the version

Run "ctrader <command> -h" for a command's flags. Every flag has an
environment variable; see the README.
`

// ErrUsage marks a command line that could not be understood. main exits 2.
var ErrUsage = errors.New("usage")

// Run runs the command in args (args[0] is the command name, not the
// program's). Configuration comes from getenv and flags; output goes to stdout,
// logs to stderr. It returns when the command is done or ctx ends.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ErrUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, rest, getenv, stderr)
	case "worker":
		err = runWorker(ctx, rest, getenv, stderr)
	case "migrate":
		err = runMigrate(ctx, rest, getenv, stdout, stderr)
	case "openapi":
		err = runOpenAPI(rest, stdout, stderr)
	case "token":
		err = runToken(rest, getenv, stdout, stderr)
	case "health":
		err = runHealth(ctx, rest, stdout, stderr)
	case "bench":
		err = runBench(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		err = runVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
		return ErrUsage
	}
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	var flagErr *config.FlagError
	if errors.As(err, &flagErr) {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return err
}

// parseFlags parses a command's own flags. The flag package has already
// printed a refused command line with the usage, so its errors are ErrUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUsage, err)
}
