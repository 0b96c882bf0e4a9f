package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/config"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/logging"
	"github.com/ctrader/ctrader/internal/version"
	"github.com/ctrader/ctrader/migrations"
)

func runVersion(stdout io.Writer) error {
	_, err := fmt.Fprintln(stdout, "ctrader", version.String())
	return err
}

func runOpenAPI(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("openapi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	specVersion := fs.String("openapi-version", "3.1", "3.1, or 3.0 for generators that lack 3.1")
	format := fs.String("format", "yaml", "yaml or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	spec := httpapi.Describe().OpenAPI()
	var (
		out []byte
		err error
	)
	switch {
	case *specVersion == "3.1" && *format == "yaml":
		out, err = spec.YAML()
	case *specVersion == "3.1" && *format == "json":
		out, err = spec.MarshalJSON()
	case *specVersion == "3.0" && *format == "yaml":
		out, err = spec.DowngradeYAML()
	case *specVersion == "3.0" && *format == "json":
		out, err = spec.Downgrade()
	default:
		return fmt.Errorf("%w: --openapi-version must be 3.1 or 3.0 and --format yaml or json", ErrUsage)
	}
	if err != nil {
		return fmt.Errorf("render openapi: %w", err)
	}
	_, err = stdout.Write(out)
	return err
}

func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8000/readyz", "URL to GET")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("%w: bad --url: %v", ErrUsage, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("unhealthy: %s answered %s", *url, resp.Status)
	}
	fmt.Fprintln(stdout, "healthy")
	return nil
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := config.Load("migrate", config.Database, args, getenv, stderr)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return fmt.Errorf("%w: migrate needs up, down or status", ErrUsage)
	}
	sub := rest[0]
	fs := flag.NewFlagSet("migrate "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	createDB := fs.Bool("create-db", false, "create the database named in DATABASE_URL when it does not exist (up only)")
	if err := parseFlags(fs, rest[1:]); err != nil {
		return err
	}
	logger := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)

	if *createDB {
		if sub != "up" {
			return fmt.Errorf("%w: --create-db goes with up", ErrUsage)
		}
		if err := db.CreateDatabase(ctx, cfg.DatabaseURL, logger); err != nil {
			return err
		}
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := db.NewMigrator(pool, logger)
	if err != nil {
		return err
	}
	defer m.Close()

	switch sub {
	case "up":
		res, err := m.Up(ctx)
		for _, r := range res {
			fmt.Fprintf(stdout, "applied %s (%s)\n", describe(r.Source), r.Duration.Round(time.Millisecond))
		}
		if err != nil {
			return err
		}
		if len(res) == 0 {
			fmt.Fprintln(stdout, "schema is current")
		}
	case "down":
		r, err := m.Down(ctx)
		if errors.Is(err, goose.ErrNoNextVersion) {
			fmt.Fprintln(stdout, "nothing to roll back")
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rolled back %s (%s)\n", describe(r.Source), r.Duration.Round(time.Millisecond))
	case "status":
		res, err := m.Status(ctx)
		if err != nil {
			return err
		}
		for _, s := range res {
			applied := "pending"
			if !s.AppliedAt.IsZero() {
				applied = "applied " + s.AppliedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%-40s %s\n", describe(s.Source), applied)
		}
	default:
		return fmt.Errorf("%w: migrate needs up, down or status, not %q", ErrUsage, sub)
	}
	return nil
}

// describe names a migration; those written in Go (River's schema, the
// partitioning of events) have no file.
func describe(s *goose.Source) string {
	if s.Path == "" {
		return migrations.GoName(s.Version)
	}
	return path.Base(s.Path)
}

func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		sub, scope *string
		ttl        *time.Duration
	)
	cfg, _, err := config.Load("token", config.Token, args, getenv, stderr, func(fs *flag.FlagSet) {
		sub = fs.String("sub", "", "subject: who the token is for (required)")
		scope = fs.String("scope", "read", "scopes, space or comma separated: read, write, admin")
		ttl = fs.Duration("ttl", time.Hour, "lifetime of the token")
	})
	if err != nil {
		return err
	}
	if cfg.AuthHS256Secret == "" {
		return errors.New("AUTH_HS256_SECRET is not set: the token would not verify anywhere")
	}
	if *sub == "" {
		return fmt.Errorf("%w: --sub is required", ErrUsage)
	}
	scopes, err := auth.ParseScopes(*scope)
	if err != nil {
		return fmt.Errorf("%w: --scope: %v", ErrUsage, err)
	}
	token, err := auth.Mint([]byte(cfg.AuthHS256Secret), *sub, scopes, *ttl, cfg.AuthIssuer, cfg.AuthAudience, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
