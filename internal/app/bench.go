package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/bench"
	"github.com/ctrader/ctrader/internal/config"
	"github.com/ctrader/ctrader/internal/logging"
)

// runBench loads a running server and reports what it measured; see package
// bench. Without --token or BENCH_TOKEN it mints an admin token when
// AUTH_HS256_SECRET is set, and sends none otherwise.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	opts := bench.Defaults()
	opts.Token = getenv("BENCH_TOKEN")
	cfg, rest, err := config.Load("bench", config.Database|config.Token, args, getenv, stderr, opts.Register)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: bench takes no arguments, got %q", ErrUsage, rest)
	}
	opts.DatabaseURL = cfg.DatabaseURL
	if err := opts.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if opts.Token == "" && cfg.AuthHS256Secret != "" {
		token, err := auth.Mint([]byte(cfg.AuthHS256Secret), "ctrader-bench", []auth.Scope{auth.ScopeAdmin},
			opts.Timeout+10*time.Minute, cfg.AuthIssuer, cfg.AuthAudience, time.Now())
		if err != nil {
			return fmt.Errorf("mint a bench token: %w", err)
		}
		opts.Token = token
	}
	opts.Logger = logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	return bench.Run(ctx, opts, stdout)
}
