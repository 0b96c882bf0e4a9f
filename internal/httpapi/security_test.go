package httpapi_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/ratelimit"
)

const testSecret = "0123456789abcdef0123456789abcdef-secret"

func verifier(t *testing.T) *auth.Verifier {
	t.Helper()
	v, err := auth.NewVerifier(t.Context(), auth.Options{HS256Secret: []byte(testSecret), Logger: dbtest.Logger(t)})
	require.NoError(t, err)
	return v
}

func token(t *testing.T, scopes ...auth.Scope) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), "tester", scopes, time.Hour, "", "", time.Now())
	require.NoError(t, err)
	return tok
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func setupSecure(t *testing.T, sec httpapi.Security, m *metrics.Metrics) *testBundle {
	t.Helper()
	sec.Verifier = verifier(t)
	return setupWith(t, dbtest.New(t), sec, m)
}

// fill turns /v1/rules/{id} into a concrete path.
func fill(path string) string {
	return strings.NewReplacer("{id}", "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b").Replace(path)
}

// Every operation is checked from the operation table itself, so an
// operation added without a scope fails here.
func TestEveryOperationRequiresItsScope(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, httpapi.Security{}, nil)
	below := map[string][]auth.Scope{"read": nil, "write": {auth.ScopeRead}, "admin": {auth.ScopeWrite}}

	checked := 0
	for _, op := range operations(httpapi.Describe().OpenAPI()) {
		if op.path == "/healthz" || op.path == "/readyz" {
			require.Equal(t, []map[string][]string{{}}, op.security, "%s is public", op.id)
			continue
		}
		require.Len(t, op.security, 1, "%s %s declares no scope", op.method, op.path)
		scopes := op.security[0]["bearer"]
		require.Len(t, scopes, 1, "%s declares one bearer scope", op.id)
		scope := scopes[0]

		anon := b.doWith(t, op.method, fill(op.path), http.Header{"Content-Type": {"application/json"}}, `{}`)
		p := requireProblem(t, anon, http.StatusUnauthorized, "unauthorized")
		require.Contains(t, anon.header.Get("WWW-Authenticate"), "Bearer", op.id)
		require.NotEmpty(t, p.Detail)

		weak := b.doWith(t, op.method, fill(op.path), http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token(t, below[scope]...)}}, `{}`)
		requireProblem(t, weak, http.StatusForbidden, "forbidden")
		require.Contains(t, weak.header.Get("WWW-Authenticate"), `scope="`+scope+`"`, op.id)

		enough := b.doWith(t, op.method, fill(op.path), http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token(t, auth.Scope(scope))}}, `{}`)
		require.NotContains(t, []int{401, 403}, enough.status, "%s with scope %s", op.id, scope)
		checked++
	}
	require.Greater(t, checked, 20)
}

type operation struct {
	id, method, path string
	security         []map[string][]string
}

func operations(spec *huma.OpenAPI) []operation {
	var ops []operation
	for path, item := range spec.Paths {
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put,
			http.MethodPatch: item.Patch, http.MethodDelete: item.Delete,
		} {
			if op != nil {
				ops = append(ops, operation{id: op.OperationID, method: method, path: path, security: op.Security})
			}
		}
	}
	return ops
}

func TestBadTokensAreRefused(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, httpapi.Security{}, nil)
	sign := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		require.NoError(t, err)
		return s
	}
	now := time.Now()
	good := jwt.MapClaims{"sub": "x", "scope": "admin", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
	expired := jwt.MapClaims{"sub": "x", "scope": "admin", "exp": now.Add(-time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}
	tests := map[string]string{
		"wrong key":   sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), good),
		"expired":     sign(jwt.SigningMethodHS256, []byte(testSecret), expired),
		"alg none":    sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good),
		"garbage":     "not.a.token",
		"basic creds": "",
	}
	for name, tok := range tests {
		h := bearer(tok)
		if name == "basic creds" {
			h = http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("a:b"))}}
		}
		r := b.doWith(t, http.MethodGet, "/v1/accounts", h, "")
		requireProblem(t, r, http.StatusUnauthorized, "unauthorized")
		require.NotContains(t, string(r.body), tok[:min(len(tok), 20)]+"x", name)
	}
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/v1/accounts", bearer(sign(jwt.SigningMethodHS256, []byte(testSecret), good)), "").status)
}

func TestRiverUIDocsAndMetricsRefuseAnonymous(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	b := setupSecure(t, httpapi.Security{UIUser: "ops", UIPassword: "pw", MetricsUser: "prom", MetricsPassword: "scrape"}, m)
	basic := func(u, p string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p))}}
	}
	for _, path := range []string{"/docs/", "/metrics"} {
		r := b.doWith(t, http.MethodGet, path, nil, "")
		require.Equal(t, http.StatusUnauthorized, r.status, path)
		require.Contains(t, r.header.Get("WWW-Authenticate"), "Basic", "%s: a browser or Prometheus can answer", path)
		require.Equal(t, http.StatusUnauthorized, b.doWith(t, http.MethodGet, path, basic("ops", "wrong"), "").status, path)
		require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, path, bearer(token(t, auth.ScopeAdmin)), "").status, path)
		require.Equal(t, http.StatusUnauthorized, b.doWith(t, http.MethodGet, path, bearer(token(t, auth.ScopeWrite)), "").status, "%s needs admin", path)
	}
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/docs/", basic("ops", "pw"), "").status)
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/metrics", basic("prom", "scrape"), "").status)
	require.Equal(t, http.StatusUnauthorized, b.doWith(t, http.MethodGet, "/metrics", basic("ops", "pw"), "").status, "UI credentials do not open /metrics")
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/healthz", nil, "").status, "probes stay open")
}

// A Security left at its zero value, with no Verifier and not told to be
// open, must not leave the API open: every secured operation, the docs and
// /metrics answer 401, as problem documents.
func TestZeroSecurityFailsClosed(t *testing.T) {
	t.Parallel()
	b := setupWith(t, dbtest.New(t), httpapi.Security{}, metrics.New())
	for _, op := range operations(httpapi.Describe().OpenAPI()) {
		if op.path == "/healthz" || op.path == "/readyz" {
			continue
		}
		r := b.doWith(t, op.method, fill(op.path), http.Header{"Content-Type": {"application/json"}}, `{}`)
		requireProblem(t, r, http.StatusUnauthorized, "unauthorized")
		require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer", op.id)
	}
	for _, path := range []string{"/docs/", "/metrics"} {
		p := requireProblem(t, b.doWith(t, http.MethodGet, path, nil, ""), http.StatusUnauthorized, "unauthorized")
		require.Equal(t, "credentials are required", p.Detail, path)
		require.NotEmpty(t, p.RequestID, "%s: the problem names the request like every other", path)
	}
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/healthz", nil, "").status, "probes stay open")
}

func TestWritesAreRateLimitedPerClient(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, httpapi.Security{WriteLimiter: ratelimit.New(0.01, 2)}, nil)
	h := bearer(token(t, auth.ScopeWrite))
	h.Set("Content-Type", "application/json")
	for range 2 {
		r := b.doWith(t, http.MethodPost, "/v1/accounts", h, `{"name":"a"}`)
		require.Equal(t, http.StatusCreated, r.status)
		require.Equal(t, "2", r.header.Get("RateLimit-Limit"))
	}
	r := b.doWith(t, http.MethodPost, "/v1/accounts", h, `{"name":"a"}`)
	requireProblem(t, r, http.StatusTooManyRequests, "too_many_requests")
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Equal(t, "0", r.header.Get("RateLimit-Remaining"))
	require.Equal(t, 2, count(t, b.pool, "accounts"), "the refused write wrote nothing")

	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/v1/accounts", h, "").status, "reads are not limited")
	other, err := auth.Mint([]byte(testSecret), "someone-else", []auth.Scope{auth.ScopeWrite}, time.Hour, "", "", time.Now())
	require.NoError(t, err)
	h2 := bearer(other)
	h2.Set("Content-Type", "application/json")
	require.Equal(t, http.StatusCreated, b.doWith(t, http.MethodPost, "/v1/accounts", h2, `{"name":"b"}`).status, "each client has its own budget")
}

func TestMetricsMoveWhenWorkIsDone(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	b := setupWith(t, dbtest.New(t), httpapi.Security{Open: true}, m)
	scrape := func() string {
		r := b.do(t, http.MethodGet, "/metrics", "", "")
		require.Equal(t, http.StatusOK, r.status)
		return string(r.body)
	}
	before := scrape()
	require.NotContains(t, before, `ctrader_http_requests_total{method="POST",operation="createEvent",status="202"}`)

	acct := b.createAccount(t, "John Doe")
	for range 3 {
		require.Equal(t, http.StatusAccepted, b.postJSON(t, "/v1/events", `{"account_id":"`+acct+`","type":"signup"}`).status)
	}
	after := scrape()
	require.Contains(t, after, `ctrader_http_requests_total{method="POST",operation="createEvent",status="202"} 3`)
	require.Contains(t, after, `ctrader_events_ingested_total 3`)
	require.Contains(t, after, `ctrader_http_request_duration_seconds_count{method="POST",operation="createAccount"} 1`)
}

func TestRequestIDFollowsIntoJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req-abc-123"}}
	require.Equal(t, http.StatusCreated, b.doWith(t, http.MethodPost, "/v1/accounts", h, `{"name":"John Doe"}`).status)
	var id string
	require.NoError(t, b.pool.QueryRow(t.Context(), `SELECT metadata->>'request_id' FROM river_job WHERE kind = 'account.provision'`).Scan(&id))
	require.Equal(t, "req-abc-123", id, "the job records the request that caused it")
}

// An Idempotency-Key belongs to the subject that used it: another caller
// reusing it creates its own event instead of receiving the first caller's
// response.
func TestIdempotencyKeysAreScopedBySubject(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, httpapi.Security{}, nil)
	mint := func(sub string) http.Header {
		tok, err := auth.Mint([]byte(testSecret), sub, []auth.Scope{auth.ScopeWrite}, time.Hour, "", "", time.Now())
		require.NoError(t, err)
		h := idempotencyHeader("shared-key")
		h.Set("Authorization", "Bearer "+tok)
		return h
	}
	alice, bob := mint("alice"), mint("bob")
	acct := b.doWith(t, http.MethodPost, "/v1/accounts", alice, `{"name": "John Doe"}`)
	require.Equal(t, http.StatusCreated, acct.status, string(acct.body))
	body := eventJSON(decode[httpapi.Account](t, acct).ID, "login", "")

	first := b.doWith(t, http.MethodPost, "/v1/events", alice, body)
	require.Equal(t, http.StatusAccepted, first.status, string(first.body))
	other := b.doWith(t, http.MethodPost, "/v1/events", bob, body)
	require.Equal(t, http.StatusAccepted, other.status, string(other.body))
	require.Empty(t, other.header.Get("Idempotent-Replayed"), "bob must not get alice's response")
	require.NotEqual(t, decode[httpapi.Event](t, first).ID, decode[httpapi.Event](t, other).ID)
	require.Equal(t, 2, count(t, b.pool, "events"))

	again := b.doWith(t, http.MethodPost, "/v1/events", bob, body)
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"), "bob's own retry replays")
	require.Equal(t, string(other.body), string(again.body))
}
