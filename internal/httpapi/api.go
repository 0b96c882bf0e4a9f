// Package httpapi is ctrader's HTTP surface: the Huma operations for every
// resource, the problem documents errors become, the docs page, River UI's
// mount point and the middleware every request passes through.
package httpapi

import (
	"log/slog"
	"maps"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/backfill"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

// APIVersion is the version of the HTTP contract in the OpenAPI document. It
// changes when the contract does, not with every build.
const APIVersion = "1.0.0"

// Deps are what the operations need. The zero value is enough to describe the
// API (for `ctrader openapi`) but not to serve it.
type Deps struct {
	Logger      *slog.Logger
	Pool        *pgxpool.Pool // readiness checks
	Accounts    *account.Service
	Events      *event.Service
	Rules       *rule.Service
	Manual      *engine.Manual // evaluations of rules started by hand
	Tester      *engine.Tester // rule tests, which change nothing
	Evaluations *evaluation.Service
	Backfills   *backfill.Service
	Webhooks    *webhook.Service
	JobRetrier  webhook.JobRetrier
	// Security guards the API, River UI, the docs and /metrics.
	Security Security
	// Metrics, when set, records every request and is served at /metrics.
	Metrics *metrics.Metrics
	// RiverUI, when set, is served under /riverui/.
	RiverUI http.Handler
	// Backlog, when set, makes posting events answer 503 while event
	// processing lags more than MaxLag behind.
	Backlog interface{ Lag() time.Duration }
	MaxLag  time.Duration
}

// Config returns the Huma configuration. Huma's default docs page loads its
// script from a CDN and its link transformer adds a $schema field to every
// body; ctrader serves its own offline docs and keeps bodies plain.
func Config() huma.Config {
	cfg := huma.DefaultConfig("ctrader", APIVersion)
	cfg.CreateHooks = nil
	cfg.Formats = map[string]huma.Format{"application/json": jsonFormat, "json": jsonFormat}
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.OpenAPIPath = "/openapi"
	cfg.Info.Description = "Postgres-native event and rules service. Clients create accounts, post events about them " +
		"and define rules that act when events match. Errors are RFC 9457 problem documents; lists are cursor-paginated."
	cfg.Info.Contact = &huma.Contact{Name: "ctrader maintainers"}
	cfg.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		securityScheme: {
			Type: "http", Scheme: "bearer", BearerFormat: "JWT",
			Description: "A JWT whose scope (or scp) claim grants read, write or admin; admin includes write, write includes read. `ctrader token --sub NAME --scope write` mints one for development.",
		},
	}
	cfg.Servers = []*huma.Server{{URL: "/", Description: "the server that serves this document"}}
	cfg.Tags = []*huma.Tag{
		{Name: "accounts", Description: "Client accounts. A new account is provisioned by a background job."},
		{Name: "events", Description: "Things that happened to accounts. Each event is processed by background jobs: won events update the account's totals, then matching rules are evaluated."},
		{Name: "rules", Description: "CEL conditions with actions, evaluated on events, on a schedule or on demand."},
		{Name: "evaluations", Description: "The record of every rule evaluation: matched or not, errors, actions taken."},
		{Name: "backfills", Description: "Evaluations of a rule version over stored events, as a dry run or applying the actions, worked in the background."},
		{Name: "webhooks", Description: "Endpoints that receive signed Standard Webhooks deliveries when rules with a webhook action match, and the record of every delivery."},
		{Name: "operations", Description: "Liveness and readiness probes."},
	}
	return cfg
}

// Register adds every operation to api with the scope it requires. This
// function is the whole HTTP surface of ctrader's API: reads need read,
// creating accounts and events needs write, and everything about rules,
// backfills and webhook endpoints needs admin.
func Register(api huma.API, d Deps) {
	h := &handlers{Deps: d}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	api.UseMiddleware(h.guard(api), holdStatus)

	huma.Register(api, opHealthz, h.healthz)
	huma.Register(api, opReadyz, h.readyz)

	register(api, opCreateAccount, auth.ScopeWrite, h.createAccount)
	register(api, opListAccounts, auth.ScopeRead, h.listAccounts)
	register(api, opGetAccount, auth.ScopeRead, h.getAccount)

	register(api, opCreateEvent, auth.ScopeWrite, h.createEvent)
	register(api, opCreateEventBatch, auth.ScopeWrite, h.createEventBatch)
	register(api, opListEvents, auth.ScopeRead, h.listEvents)
	register(api, opGetEvent, auth.ScopeRead, h.getEvent)

	register(api, opCreateRule, auth.ScopeAdmin, h.createRule)
	register(api, opListRules, auth.ScopeRead, h.listRules)
	register(api, opGetRule, auth.ScopeRead, h.getRule)
	register(api, opUpdateRule, auth.ScopeAdmin, h.updateRule)
	register(api, opDeleteRule, auth.ScopeAdmin, h.deleteRule)
	register(api, opEvaluateRule, auth.ScopeAdmin, h.evaluateRule)
	register(api, withExamples(opTestRule, testRuleExamples), auth.ScopeAdmin, h.testRule)
	register(api, withExamples(opTestStoredRule, testStoredRuleExamples), auth.ScopeAdmin, h.testStoredRule)

	register(api, opListEvaluations, auth.ScopeRead, h.listEvaluations)

	register(api, createBackfillOp(), auth.ScopeAdmin, h.createBackfill)
	register(api, opListBackfills, auth.ScopeRead, h.listBackfills)
	register(api, opGetBackfill, auth.ScopeRead, h.getBackfill)
	register(api, opCancelBackfill, auth.ScopeAdmin, h.cancelBackfill)

	register(api, opCreateWebhookEndpoint, auth.ScopeAdmin, h.createWebhookEndpoint)
	register(api, opListWebhookEndpoints, auth.ScopeAdmin, h.listWebhookEndpoints)
	register(api, opGetWebhookEndpoint, auth.ScopeAdmin, h.getWebhookEndpoint)
	register(api, opUpdateWebhookEndpoint, auth.ScopeAdmin, h.updateWebhookEndpoint)
	register(api, opDeleteWebhookEndpoint, auth.ScopeAdmin, h.deleteWebhookEndpoint)
	register(api, opRotateWebhookSecret, auth.ScopeAdmin, h.rotateWebhookSecret)
	register(api, opListWebhookDeliveries, auth.ScopeAdmin, h.listWebhookDeliveries)
	register(api, opGetWebhookDelivery, auth.ScopeAdmin, h.getWebhookDelivery)
	register(api, opRetryWebhookDelivery, auth.ScopeAdmin, h.retryWebhookDelivery)
}

type handlers struct {
	Deps
}

// NewAPI returns an API described by Register and served on mux.
func NewAPI(mux *http.ServeMux, d Deps) huma.API {
	api := humago.New(mux, Config())
	Register(api, d)
	return api
}

// Describe returns the API without serving it, for printing the spec.
func Describe() huma.API {
	return NewAPI(http.NewServeMux(), Deps{})
}

// Handler returns the complete HTTP handler of a serve process: the API, the
// spec, the docs page and River UI, behind the request middleware.
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	NewAPI(mux, d)
	mountDocs(mux, d.Security.browser())
	if d.RiverUI != nil {
		mux.Handle("/riverui/", d.Security.browser()(d.RiverUI))
		mux.Handle("GET /riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
	}
	mux.Handle("GET /metrics", d.Security.scraper()(d.Metrics.Handler()))
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return observe(logger, unrouted(mux))
}

// unrouted makes the answers ServeMux gives itself to requests no route
// takes (404, and 405 with its Allow header) problem documents like every
// other error. Its redirects to a cleaned path pass through.
func unrouted(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		c := &capture{header: http.Header{}}
		h.ServeHTTP(c, r)
		if c.status < 400 {
			maps.Copy(w.Header(), c.header)
			w.WriteHeader(c.status)
			_, _ = w.Write(c.body)
			return
		}
		if allow := c.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		detail := "no operation at this path"
		if c.status == http.StatusMethodNotAllowed {
			detail = "this path does not take " + r.Method
		}
		writeProblem(w, newProblem(r.Context(), c.status, detail, nil))
	})
}

// capture holds what a handler wrote, for unrouted to rewrite.
type capture struct {
	header http.Header
	status int
	body   []byte
}

func (c *capture) Header() http.Header { return c.header }

func (c *capture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if len(c.body) < 4096 {
		c.body = append(c.body, b...)
	}
	return len(b), nil
}

// HealthHandler serves only /healthz and /readyz, for worker processes.
func HealthHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	api := humago.New(mux, Config())
	h := &handlers{Deps: d}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	huma.Register(api, opHealthz, h.healthz)
	huma.Register(api, opReadyz, h.readyz)
	mux.Handle("GET /metrics", d.Security.scraper()(d.Metrics.Handler()))
	return observe(h.Logger, mux)
}
