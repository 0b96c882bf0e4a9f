package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/backfill"
	"github.com/ctrader/ctrader/internal/backlog"
	"github.com/ctrader/ctrader/internal/config"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/liveness"
	"github.com/ctrader/ctrader/internal/logging"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/ratelimit"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/version"
	"github.com/ctrader/ctrader/internal/webhook"
	"github.com/ctrader/ctrader/internal/worker"
)

// process is what serve and worker share: configuration, logger, pool and a
// River client that works jobs.
type process struct {
	cfg      *config.Config
	logger   *slog.Logger
	pool     *pgxpool.Pool
	river    *river.Client[pgx.Tx]
	compiler *rule.Compiler
	engine   *engine.Engine // the workers', which rule tests evaluate with too
	webhooks *webhook.Service
	egress   *http.Client // webhook deliveries
	metrics  *metrics.Metrics
	security httpapi.Security
	// background runs alongside the server until it stops.
	background []func(context.Context)
}

func startProcess(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer) (_ *process, err error) {
	cfg, _, err := config.Load(name, config.Database|config.Server, args, getenv, stderr)
	if err != nil {
		return nil, err
	}
	logger := logging.New(stderr, cfg.LogLevel, cfg.LogFormat)
	logger.Info("starting", slog.String("command", name), slog.String("version", version.String()))
	setGCPercent(getenv, logger)

	sealer, err := webhook.ParseSealKey(cfg.WebhookSecretKey)
	if err != nil {
		return nil, fmt.Errorf("invalid WEBHOOK_SECRET_KEY: %w", err)
	}
	security, err := newSecurity(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	pool, err := db.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns, logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	if err := prepareSchema(ctx, cfg, pool, logger); err != nil {
		return nil, err
	}
	compiler, err := rule.NewCompiler()
	if err != nil {
		return nil, err
	}
	m := metrics.New()
	eng := engine.New(compiler, cfg.MaxEventDepth, logger).WithCascadeLimit(cfg.MaxCascadeEvents).WithMetrics(m)
	webhooks := webhook.NewService(pool, sealer, cfg.WebhookSecretGrace)
	egressClient := egress.NewClient(egress.Options{
		Timeout:      cfg.WebhookTimeout,
		AllowPrivate: cfg.WebhookAllowPrivate,
		AllowCIDRs:   cfg.WebhookAllowedCIDRs,
		UserAgent:    "ctrader-webhooks/" + version.Version,
	})
	sender := webhook.NewSender(webhooks, egressClient)
	client, err := worker.NewClient(pool, logger, worker.Options{
		Work:               true,
		Concurrency:        cfg.WorkerConcurrency,
		QueueConcurrency:   cfg.QueueConcurrency,
		BackfillWorkers:    cfg.BackfillWorkers,
		FetchCooldown:      cfg.FetchCooldown,
		FetchPollInterval:  cfg.FetchPollInterval,
		BurstFetchCooldown: cfg.EventsBurstFetchCooldown,
		JobTimeout:         cfg.JobTimeout,
		RescueAfter:        cfg.JobRescueAfter,
		Engine:             eng,
		Webhooks:           sender,
		WebhookTimeout:     cfg.WebhookTimeout,
		RulesInterval:      cfg.RulesEvalInterval,
		VacuumInterval:     cfg.VacuumInterval,
		Metrics:            m,
		Retention: worker.Retention{Events: cfg.EventsRetention, Evaluations: cfg.EvaluationsRetention,
			WebhookDeliveries: cfg.WebhookDeliveriesRetention, Interval: cfg.RetentionInterval},
		JobRetention: worker.JobRetention{Completed: cfg.JobCompletedRetention,
			Cancelled: cfg.JobCancelledRetention, Discarded: cfg.JobDiscardedRetention},
	})
	if err != nil {
		return nil, err
	}
	return &process{cfg: cfg, logger: logger, pool: pool, river: client, compiler: compiler, engine: eng,
		webhooks: webhooks, egress: egressClient, metrics: m, security: security}, nil
}

// newSecurity builds the token verifier and write limiter from cfg.
func newSecurity(ctx context.Context, cfg *config.Config, logger *slog.Logger) (httpapi.Security, error) {
	s := httpapi.Security{
		WriteLimiter: ratelimit.New(cfg.WriteRateLimit, cfg.WriteRateBurst),
		UIUser:       cfg.UIUser, UIPassword: cfg.UIPassword,
		MetricsUser: cfg.MetricsUser, MetricsPassword: cfg.MetricsPassword,
	}
	if !cfg.AuthConfigured() {
		s.Open = true
		return s, nil
	}
	v, err := auth.NewVerifier(ctx, auth.Options{
		HS256Secret: []byte(cfg.AuthHS256Secret),
		JWKSURL:     cfg.AuthJWKSURL,
		JWKSFile:    cfg.AuthJWKSFile,
		Issuer:      cfg.AuthIssuer,
		Audience:    cfg.AuthAudience,
		Logger:      logger.With(slog.String("component", "auth")),
	})
	if err != nil {
		return s, fmt.Errorf("authentication: %w", err)
	}
	s.Verifier = v
	return s, nil
}

// listenAddr refuses to expose an unauthenticated process by accident: with
// no way to verify tokens it listens on loopback only, unless told it is
// insecure.
func listenAddr(addr string, cfg *config.Config, logger *slog.Logger) (string, error) {
	if cfg.AuthConfigured() {
		return addr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	switch {
	case config.LoopbackHost(host):
	case cfg.Insecure:
		logger.Warn("serving without authentication on a non-loopback address because --insecure is set", slog.String("addr", addr))
	case host == "":
		addr = net.JoinHostPort("127.0.0.1", port)
		logger.Warn("no authentication configured: listening on loopback only; set AUTH_HS256_SECRET or AUTH_JWKS_URL, or --insecure", slog.String("addr", addr))
	default:
		return "", fmt.Errorf("refusing to serve without authentication on %s: set AUTH_HS256_SECRET or AUTH_JWKS_URL/AUTH_JWKS_FILE, listen on a loopback address, or pass --insecure", addr)
	}
	return addr, nil
}

// prepareSchema migrates when asked to and otherwise refuses to run against a
// schema older than the binary.
func prepareSchema(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, logger *slog.Logger) error {
	if cfg.Migrate {
		m, err := db.NewMigrator(pool, logger)
		if err != nil {
			return err
		}
		defer m.Close()
		if _, err := m.Up(ctx); err != nil {
			return err
		}
	}
	if err := db.CheckSchema(ctx, pool); err != nil {
		var connectErr *pgconn.ConnectError
		if errors.As(err, &connectErr) {
			// Say why, without the user and database the connect error
			// leads with; it has one line per address tried: keep the first.
			reason, _, _ := strings.Cut(connectErr.Unwrap().Error(), "\n")
			return fmt.Errorf("cannot reach the database: %s", reason)
		}
		return err
	}
	return nil
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	p, err := startProcess(ctx, "serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	ui, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(p.river, nil),
		Logger:    p.logger.With(slog.String("component", "riverui")),
		Prefix:    "/riverui",
	})
	if err != nil {
		p.pool.Close()
		return fmt.Errorf("river ui: %w", err)
	}
	addr, err := listenAddr(p.cfg.HTTPAddr, p.cfg, p.logger)
	if err != nil {
		p.pool.Close()
		return err
	}
	// The lag is sampled only where events are posted, and only when it
	// can refuse them.
	var lag *backlog.Watcher
	if p.cfg.IngestMaxLag > 0 {
		lag = backlog.NewWatcher(p.pool, 0, p.logger.With(slog.String("component", "backlog")))
		p.background = append(p.background, lag.Run)
	}
	handler := httpapi.Handler(httpapi.Deps{
		Security:    p.security,
		Metrics:     p.metrics,
		Logger:      p.logger,
		Pool:        p.pool,
		Accounts:    account.NewService(p.pool, p.river),
		Events:      event.NewService(p.pool, p.river, event.BurstRate(p.cfg.EventsBurstRate)),
		Rules:       rule.NewService(p.pool, p.compiler, webhook.Referable),
		Manual:      engine.NewManual(p.pool, p.river),
		Tester:      engine.NewTester(p.pool, p.engine),
		Evaluations: evaluation.NewService(p.pool),
		Backfills:   backfill.NewService(p.pool, p.river),
		Webhooks:    p.webhooks,
		JobRetrier:  p.river,
		RiverUI:     ui,
		Backlog:     lag,
		MaxLag:      p.cfg.IngestMaxLag,
	})
	return p.run(ctx, addr, handler, ui.Start)
}

func runWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	p, err := startProcess(ctx, "worker", args, getenv, stderr)
	if err != nil {
		return err
	}
	security := p.security
	security.Open = security.Open && (p.cfg.Insecure || config.LoopbackAddr(p.cfg.HealthAddr))
	handler := httpapi.HealthHandler(httpapi.Deps{Logger: p.logger, Pool: p.pool, Metrics: p.metrics, Security: security})
	return p.run(ctx, p.cfg.HealthAddr, handler, nil)
}

// run serves handler on addr and works jobs until ctx ends, then shuts down in
// order: stop accepting requests and drain them, stop River softly (running
// jobs get the rest of the shutdown budget, then are cancelled and retried
// later), close the pool.
func (p *process) run(ctx context.Context, addr string, handler http.Handler, startUI func(context.Context) error) error {
	defer p.pool.Close()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	// Requests and jobs outlive the signal: they are drained, not cut.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
	}

	if startUI != nil {
		if err := startUI(baseCtx); err != nil {
			ln.Close()
			return fmt.Errorf("start river ui: %w", err)
		}
	}
	go p.metrics.RunQueueDepth(baseCtx, p.pool, 15*time.Second, p.logger)
	for _, run := range p.background {
		go run(baseCtx)
	}
	if p.cfg.PprofAddr != "" {
		go servePprof(baseCtx, p.cfg.PprofAddr, p.logger)
	}
	// The first heartbeat is recorded before River fetches any job, and the
	// heartbeats continue until River has stopped, so a job of this process
	// is never taken for a dead process's.
	heartbeat, err := liveness.Start(baseCtx, p.pool, liveness.Options{
		ClientID:  p.river.ID(),
		Interval:  p.cfg.HeartbeatInterval,
		DeadAfter: p.cfg.ProcessDeadAfter,
		Logger:    p.logger.With(slog.String("component", "liveness")),
	})
	if err != nil {
		ln.Close()
		return fmt.Errorf("start heartbeat: %w", err)
	}
	if err := p.river.Start(baseCtx); err != nil {
		ln.Close()
		p.stopHeartbeat(ctx, heartbeat)
		return fmt.Errorf("start river: %w", err)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	p.logger.Info("http server listening", slog.String("addr", ln.Addr().String()))

	var runErr error
	select {
	case <-ctx.Done():
		p.logger.Info("shutting down", slog.Duration("timeout", p.cfg.ShutdownTimeout))
	case err := <-serveErr:
		runErr = fmt.Errorf("http server: %w", err)
	}

	deadline, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(deadline); err != nil {
		p.logger.Warn("http requests cut short by shutdown", logging.ErrorAttr(err))
	}
	// Connections Shutdown did not get to close (a new one it waits five
	// seconds for, or one still busy at the deadline) are closed now.
	_ = srv.Close()
	if err := p.river.Stop(deadline); err != nil {
		p.logger.Warn("jobs still running at shutdown deadline; cancelling them, they will run again", logging.ErrorAttr(err))
		hard, cancelHard := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancelHard()
		if err := p.river.StopAndCancel(hard); err != nil {
			p.logger.Warn("river did not stop", logging.ErrorAttr(err))
		}
	}
	p.stopHeartbeat(ctx, heartbeat)
	cancelBase()
	// The webhook client's kept connections end with the process's work.
	p.egress.CloseIdleConnections()
	p.logger.Info("stopped")
	return runErr
}

// stopHeartbeat ends this process's heartbeats and deletes its row, once its
// jobs are stopped. Should the delete fail, the row goes stale and others
// find no job of this process to retry.
func (p *process) stopHeartbeat(ctx context.Context, h *liveness.Heartbeat) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := h.Stop(stopCtx, p.pool); err != nil {
		p.logger.Warn("heartbeat row not deleted", logging.ErrorAttr(err))
	}
}

// servePprof serves Go's profiles on a loopback address until ctx ends.
func servePprof(ctx context.Context, addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	logger.Info("pprof listening", slog.String("addr", addr))
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Warn("pprof server stopped", logging.ErrorAttr(err))
	}
}
