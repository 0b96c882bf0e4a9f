package httpapi

import (
	"context"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/ratelimit"
)

// securityScheme names the bearer scheme in the OpenAPI document.
const securityScheme = "bearer"

// Security is how requests prove who they are. Its zero value fails closed:
// with neither a Verifier nor Open, every secured operation answers 401.
type Security struct {
	// Verifier checks bearer tokens. Without one the API is closed unless
	// Open is set, which the process allows only on a loopback address or
	// when told it is insecure.
	Verifier *auth.Verifier
	// WriteLimiter limits writes per client; nil allows everything.
	WriteLimiter *ratelimit.Limiter
	// Basic credentials for River UI and the docs in a browser, and for
	// Prometheus on /metrics. Empty means bearer tokens (admin) only.
	UIUser, UIPassword           string
	MetricsUser, MetricsPassword string
	// Open serves the API without a Verifier, and River UI, the docs and
	// /metrics without credentials when none are configured (loopback or
	// insecure processes).
	Open bool
}

// register adds an operation that requires scope.
func register[I, O any](api huma.API, op huma.Operation, scope auth.Scope, handler func(context.Context, *I) (*O, error)) {
	op.Security = []map[string][]string{{securityScheme: {string(scope)}}}
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata["scope"] = scope
	op.Errors = append(op.Errors, http.StatusUnauthorized, http.StatusForbidden)
	if op.Method != http.MethodGet {
		op.Errors = append(op.Errors, http.StatusTooManyRequests)
	}
	huma.Register(api, op, handler)
}

// guard authenticates and authorizes every operation that declares a scope,
// limits writes per client, and records request metrics.
func (h *handlers) guard(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		start := time.Now()
		op := ctx.Operation()
		defer func() {
			h.Metrics.ObserveHTTP(op.OperationID, op.Method, ctx.Status(), time.Since(start))
		}()

		scope, secured := op.Metadata["scope"].(auth.Scope)
		client := "addr:" + clientHost(ctx.RemoteAddr())
		if secured && h.Security.Verifier != nil {
			token, err := auth.FromHeader(ctx.Header("Authorization"))
			if err != nil {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="ctrader"`)
				_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, "a bearer token is required")
				return
			}
			p, err := h.Security.Verifier.Verify(ctx.Context(), token)
			if err != nil {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="ctrader", error="invalid_token"`)
				_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, "the bearer token is not valid")
				return
			}
			if !p.Has(scope) {
				ctx.SetHeader("WWW-Authenticate", `Bearer realm="ctrader", error="insufficient_scope", scope="`+string(scope)+`"`)
				_ = huma.WriteErr(api, ctx, http.StatusForbidden, "this operation needs the "+string(scope)+" scope")
				return
			}
			ctx = huma.WithContext(ctx, auth.NewContext(ctx.Context(), p))
			client = "sub:" + p.Subject
		} else if secured && !h.Security.Open {
			// No way to verify a token and not told to be open: fail closed.
			ctx.SetHeader("WWW-Authenticate", `Bearer realm="ctrader"`)
			_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, "a bearer token is required")
			return
		}
		if secured && op.Method != http.MethodGet && h.Security.WriteLimiter != nil {
			d := h.Security.WriteLimiter.Allow(client)
			d.SetHeaders(ctx.SetHeader)
			if !d.Allowed {
				_ = huma.WriteErr(api, ctx, http.StatusTooManyRequests, "too many writes; retry after the time in Retry-After")
				return
			}
		}
		next(ctx)
	}
}

func clientHost(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// browser guards pages people open in a browser (River UI, the docs): HTTP
// basic credentials, or a bearer token with the admin scope.
func (s Security) browser() func(http.Handler) http.Handler {
	return s.protect(s.UIUser, s.UIPassword)
}

// scraper guards /metrics: Prometheus's basic credentials, or a bearer token
// with the admin scope.
func (s Security) scraper() func(http.Handler) http.Handler {
	return s.protect(s.MetricsUser, s.MetricsPassword)
}

func (s Security) protect(user, password string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if s.Open && s.Verifier == nil && user == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); ok && user != "" && equal(u, user) && equal(p, password) {
				next.ServeHTTP(w, r)
				return
			}
			if s.Verifier != nil {
				if token, err := auth.FromHeader(r.Header.Get("Authorization")); err == nil {
					p, err := s.Verifier.Verify(r.Context(), token)
					if err == nil && p.Has(auth.ScopeAdmin) {
						next.ServeHTTP(w, r)
						return
					}
				}
			}
			challenges := []string{`Bearer realm="ctrader"`}
			if user != "" {
				challenges = append([]string{`Basic realm="ctrader", charset="UTF-8"`}, challenges...)
			}
			w.Header().Set("WWW-Authenticate", strings.Join(challenges, ", "))
			writeProblem(w, newProblem(r.Context(), http.StatusUnauthorized, "credentials are required", nil))
		})
	}
}

// equal compares secrets in constant time.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// subjectOf names the caller of a request for what belongs to it, such as
// its Idempotency-Keys: the token's subject, or "" when the API runs without
// authentication.
func subjectOf(ctx context.Context) string {
	if p, ok := auth.FromContext(ctx); ok {
		return p.Subject
	}
	return ""
}
