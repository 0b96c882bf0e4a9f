package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/backfill"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
	"github.com/ctrader/ctrader/internal/worker"
)

type testBundle struct {
	pool   *pgxpool.Pool
	server *httptest.Server
	client *river.Client[pgx.Tx] // inserts jobs; works none
}

func setupWithPool(t *testing.T, pool *pgxpool.Pool) *testBundle {
	t.Helper()
	return setupWith(t, pool, httpapi.Security{Open: true}, nil)
}

// setupWith serves the API over pool with the given security and metrics;
// tweaks change the dependencies further.
func setupWith(t testing.TB, pool *pgxpool.Pool, security httpapi.Security, m *metrics.Metrics, tweaks ...func(*httpapi.Deps)) *testBundle {
	t.Helper()
	logger := dbtest.Logger(t)
	client, err := worker.NewClient(pool, logger, worker.Options{})
	require.NoError(t, err)
	compiler, err := rule.NewCompiler()
	require.NoError(t, err)
	deps := httpapi.Deps{
		Logger:      logger,
		Pool:        pool,
		Accounts:    account.NewService(pool, client),
		Events:      event.NewService(pool, client),
		Rules:       rule.NewService(pool, compiler, webhook.Referable),
		Manual:      engine.NewManual(pool, client),
		Tester:      engine.NewTester(pool, engine.New(compiler, engine.DefaultMaxDepth, logger)),
		Evaluations: evaluation.NewService(pool),
		Backfills:   backfill.NewService(pool, client),
		Webhooks:    webhook.NewService(pool, nil, 0),
		JobRetrier:  client,
		Security:    security,
		Metrics:     m,
	}
	for _, tweak := range tweaks {
		tweak(&deps)
	}
	srv := httptest.NewServer(httpapi.Handler(deps))
	t.Cleanup(srv.Close)
	return &testBundle{pool: pool, server: srv, client: client}
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return setupWithPool(t, dbtest.New(t))
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// send makes one request without failing the test, so that goroutines other
// than the test's may use it. An empty body sends no body at all.
func (b *testBundle) send(method, path string, header http.Header, body string) (response, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, b.server.URL+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.server.Client().Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

func (b *testBundle) doWith(t *testing.T, method, path string, header http.Header, body string) response {
	t.Helper()
	r, err := b.send(method, path, header, body)
	require.NoError(t, err)
	return r
}

func (b *testBundle) do(t *testing.T, method, path, contentType, body string) response {
	t.Helper()
	header := http.Header{}
	if contentType != "" {
		header.Set("Content-Type", contentType)
	}
	return b.doWith(t, method, path, header, body)
}

func (b *testBundle) postJSON(t *testing.T, path, body string) response {
	return b.do(t, http.MethodPost, path, "application/json", body)
}

// postJSONWithKey posts body with an Idempotency-Key header.
func (b *testBundle) postJSONWithKey(t *testing.T, path, key, body string) response {
	t.Helper()
	return b.doWith(t, http.MethodPost, path, idempotencyHeader(key), body)
}

func idempotencyHeader(key string) http.Header {
	return http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {key}}
}

// createAccount creates an account over HTTP and returns its id. Nothing
// provisions it, so it stays pending.
func (b *testBundle) createAccount(t *testing.T, name string) string {
	t.Helper()
	r := b.postJSON(t, "/v1/accounts", `{"name": "`+name+`"}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	return decode[httpapi.Account](t, r).ID
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	return v
}

func requireProblem(t *testing.T, r response, status int, code string) httpapi.Problem {
	t.Helper()
	require.Equal(t, status, r.status, string(r.body))
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	p := decode[httpapi.Problem](t, r)
	require.Equal(t, status, p.Status)
	require.Equal(t, code, p.Code)
	require.Equal(t, httpapi.ProblemTypePrefix+code, p.Type)
	require.NotEmpty(t, p.Title)
	require.Equal(t, r.header.Get("X-Request-Id"), p.RequestID)
	return p
}

// locations lists the errors[].location entries of a problem.
func locations(p httpapi.Problem) []string {
	out := make([]string, 0, len(p.Errors))
	for _, e := range p.Errors {
		out = append(out, e.Location)
	}
	return out
}

// jobKinds counts the River jobs in the database by kind.
// jobEvents says, for every event an events.process job names, how many jobs
// name it.
func jobEvents(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT named.id, count(*)::int FROM river_job, jsonb_array_elements_text(args->'event_ids') AS named(id)
		WHERE kind = 'events.process' GROUP BY named.id`)
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var (
			id string
			n  int
		)
		require.NoError(t, rows.Scan(&id, &n))
		out[id] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// requireOneJobEach checks that each event is named by exactly one job.
func requireOneJobEach(t *testing.T, pool *pgxpool.Pool, ids []string) {
	t.Helper()
	want := make(map[string]int, len(ids))
	for _, id := range ids {
		want[id] = 1
	}
	require.Equal(t, want, jobEvents(t, pool), "one job names each event")
}

func jobKinds(t *testing.T, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT kind, count(*)::int FROM river_job GROUP BY kind")
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var (
			kind string
			n    int
		)
		require.NoError(t, rows.Scan(&kind, &n))
		out[kind] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func TestCreateAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.postJSON(t, "/v1/accounts", `{"name": "John Doe", "metadata": {"plan": "pro"}}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	a := decode[httpapi.Account](t, r)
	require.Equal(t, "John Doe", a.Name)
	require.Equal(t, "pending", a.Status)
	require.Equal(t, map[string]any{"plan": "pro"}, a.Metadata)
	require.Equal(t, "/v1/accounts/"+a.ID, r.header.Get("Location"))
	require.NotContains(t, string(r.body), "$schema")
	require.Equal(t, 1, count(t, b.pool, "river_job"))

	got := b.do(t, http.MethodGet, r.header.Get("Location"), "", "")
	require.Equal(t, http.StatusOK, got.status)
	require.Equal(t, a.ID, decode[httpapi.Account](t, got).ID)
}

func TestBadInputGetsProblems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		status      int
		code        string
		location    string // the errors entry that must be present, if any
	}{
		{"malformed JSON", "POST", "/v1/accounts", "application/json", `{"name":`, 400, "malformed", "body"},
		{"empty body", "POST", "/v1/accounts", "application/json", ``, 400, "malformed", ""},
		{"body not an object", "POST", "/v1/accounts", "application/json", `[1]`, 422, "invalid", "body"},
		{"missing name", "POST", "/v1/accounts", "application/json", `{}`, 422, "invalid", "body"},
		{"name of wrong type", "POST", "/v1/accounts", "application/json", `{"name": 5}`, 422, "invalid", "body.name"},
		{"blank name", "POST", "/v1/accounts", "application/json", `{"name": "   "}`, 422, "invalid", "body.name"},
		{"name too long", "POST", "/v1/accounts", "application/json", `{"name": "` + strings.Repeat("x", 201) + `"}`, 422, "invalid", "body.name"},
		{"unknown field", "POST", "/v1/accounts", "application/json", `{"name": "a", "nme": "b"}`, 422, "invalid", "body.nme"},
		{"metadata not an object", "POST", "/v1/accounts", "application/json", `{"name": "a", "metadata": [1]}`, 422, "invalid", "body.metadata"},
		{"body over 64 KiB", "POST", "/v1/accounts", "application/json", `{"name": "a", "metadata": {"x": "` + strings.Repeat("x", 70_000) + `"}}`, 413, "too_large", ""},
		{"form instead of JSON", "POST", "/v1/accounts", "application/x-www-form-urlencoded", `name=a`, 415, "unsupported_media_type", ""},
		{"id not a uuid", "GET", "/v1/accounts/42", "", "", 422, "invalid", "path.id"},
		{"unknown id", "GET", "/v1/accounts/0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b", "", "", 404, "not_found", ""},
		{"limit zero", "GET", "/v1/accounts?limit=0", "", "", 422, "invalid", "query.limit"},
		{"limit over max", "GET", "/v1/accounts?limit=501", "", "", 422, "invalid", "query.limit"},
		{"limit not a number", "GET", "/v1/accounts?limit=ten", "", "", 422, "invalid", "query.limit"},
		{"malformed cursor", "GET", "/v1/accounts?cursor=not-a-cursor", "", "", 422, "invalid", "query.cursor"},
		{"unknown route", "GET", "/v1/nothing", "", "", 404, "", ""},
		{"wrong method", "DELETE", "/v1/accounts", "", "", 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.do(t, tt.method, tt.path, tt.contentType, tt.body)
			if tt.code == "" { // answered by net/http's mux, not the API
				require.Equal(t, tt.status, r.status)
				return
			}
			p := requireProblem(t, r, tt.status, tt.code)
			if tt.location != "" {
				var locations []string
				for _, e := range p.Errors {
					locations = append(locations, e.Location)
				}
				require.Contains(t, locations, tt.location)
			}
		})
	}
	require.Zero(t, count(t, b.pool, "accounts"), "no bad input wrote anything")
	require.Zero(t, count(t, b.pool, "river_job"))
}

func TestListAccountsPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		require.Equal(t, http.StatusCreated, b.postJSON(t, "/v1/accounts", `{"name":"`+name+`"}`).status)
	}
	type list struct {
		Items      []httpapi.Account `json:"items"`
		NextCursor *string           `json:"next_cursor"`
	}
	var names []string
	path := "/v1/accounts?limit=2"
	for range 3 {
		r := b.do(t, http.MethodGet, path, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		l := decode[list](t, r)
		for _, a := range l.Items {
			names = append(names, a.Name)
		}
		if l.NextCursor == nil {
			break
		}
		path = "/v1/accounts?limit=2&cursor=" + *l.NextCursor
	}
	require.Equal(t, []string{"e", "d", "c", "b", "a"}, names)

	empty := decode[list](t, b.do(t, http.MethodGet, "/v1/accounts", "", ""))
	require.Len(t, empty.Items, 5)
	require.Nil(t, empty.NextCursor, "no cursor on the last page")
}

func TestDatabaseDownIs503(t *testing.T) {
	t.Parallel()
	b := setupWithPool(t, dbtest.Pool(t, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2"))

	r := b.postJSON(t, "/v1/accounts", `{"name": "John Doe"}`)
	p := requireProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	require.Equal(t, "5", r.header.Get("Retry-After"))
	require.NotContains(t, p.Detail, "127.0.0.1", "no database error text reaches the client")
	require.Empty(t, p.Errors)

	requireProblem(t, b.do(t, http.MethodGet, "/v1/accounts", "", ""), http.StatusServiceUnavailable, "unavailable")
	requireProblem(t, b.do(t, http.MethodGet, "/v1/accounts/0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b", "", ""), http.StatusServiceUnavailable, "unavailable")
	requireProblem(t, b.do(t, http.MethodGet, "/readyz", "", ""), http.StatusServiceUnavailable, "unavailable")
	require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/healthz", "", "").status, "liveness does not depend on the database")
}

func TestReadyzFollowsSchema(t *testing.T) {
	t.Parallel()
	b := setupWithPool(t, dbtest.Pool(t, dbtest.EmptyURL(t)))
	p := requireProblem(t, b.do(t, http.MethodGet, "/readyz", "", ""), http.StatusServiceUnavailable, "unavailable")
	require.Contains(t, p.Detail, "schema")

	ready := setup(t)
	r := ready.do(t, http.MethodGet, "/readyz", "", "")
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"status":"ok"}`, string(r.body))
}

func TestInternalErrorsAreBare500s(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.pool.Exec(context.Background(), `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'secret internal detail'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON river_job FOR EACH ROW EXECUTE FUNCTION refuse();`)
	require.NoError(t, err)

	r := b.postJSON(t, "/v1/accounts", `{"name": "John Doe"}`)
	p := requireProblem(t, r, http.StatusInternalServerError, "internal")
	require.NotContains(t, string(r.body), "secret")
	require.Empty(t, p.Errors)
	require.Zero(t, count(t, b.pool, "accounts"))
}

func TestRequestIDIsHonouredAndEchoed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	req, err := http.NewRequest(http.MethodGet, b.server.URL+"/v1/accounts/0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b", nil)
	require.NoError(t, err)
	req.Header.Set("X-Request-Id", "client-chosen-id")
	resp, err := b.server.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "client-chosen-id", resp.Header.Get("X-Request-Id"))
	var p httpapi.Problem
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&p))
	require.Equal(t, "client-chosen-id", p.RequestID)

	// An id that is unsafe to log is replaced.
	req.Header.Set("X-Request-Id", "bad id\twith tabs")
	resp2, err := b.server.Client().Do(req)
	require.NoError(t, err)
	resp2.Body.Close()
	require.NotEqual(t, "bad id\twith tabs", resp2.Header.Get("X-Request-Id"))
	require.NotEmpty(t, resp2.Header.Get("X-Request-Id"))
}

func TestDocsAndSpecAreServed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/openapi.yaml", "/openapi.json", "/docs/"} {
		r := b.do(t, http.MethodGet, path, "", "")
		require.Equal(t, http.StatusOK, r.status, path)
	}
	docs := b.do(t, http.MethodGet, "/docs/", "", "")
	require.NotContains(t, string(docs.body), "cdn", "the docs page loads nothing from the internet")
	require.NotContains(t, string(docs.body), "unpkg")
}

func TestProblemsDoNotEchoSecretsOrWholeBodies(t *testing.T) {
	t.Parallel()
	b := setup(t)
	long := "https://user:hunter2@example.com/" + strings.Repeat("a", 2100)
	r := b.postJSON(t, "/v1/webhook-endpoints", `{"url": "`+long+`"}`)
	p := requireProblem(t, r, http.StatusUnprocessableEntity, "invalid")
	require.NotContains(t, string(r.body), "hunter2", "credentials in a URL are never repeated")
	require.Less(t, len(r.body), 1500, "long values are cut")
	require.Contains(t, locations(p), "body.url")

	r = b.postJSON(t, "/v1/accounts", `{"name": "a", "token": "s3cr3t-value"}`)
	requireProblem(t, r, http.StatusUnprocessableEntity, "invalid")
	require.NotContains(t, string(r.body), "s3cr3t-value", "an unknown field does not echo the whole body")
}

// Paths and methods no operation takes get problem documents too, not the
// router's plain text; a 405 keeps its Allow header.
func TestUnroutedRequestsGetProblems(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := requireProblem(t, b.do(t, http.MethodGet, "/v1/nowhere", "", ""), http.StatusNotFound, "not_found")
	require.Equal(t, "/v1/nowhere", p.Instance)
	r := b.do(t, http.MethodDelete, "/v1/events", "", "")
	requireProblem(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	require.Contains(t, r.header.Get("Allow"), "POST")
	requireProblem(t, b.do(t, http.MethodGet, "/v1/events/a/../..", "", ""), http.StatusNotFound, "not_found")
}
