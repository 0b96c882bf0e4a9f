package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/ratelimit"
	"github.com/ctrader/ctrader/internal/rule"
)

// sideEffectTables are every table an evaluation, its actions or the jobs
// that follow them write to.
var sideEffectTables = []string{"accounts", "events", "evaluations", "webhook_deliveries", "event_cascades", "river_job", "rules", "rule_versions"}

// snapshot counts the rows of sideEffectTables and sums what an account's
// status or totals could change in.
func snapshot(t *testing.T, pool *pgxpool.Pool) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, table := range sideEffectTables {
		out[table] = count(t, pool, table)
	}
	var statuses string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT coalesce(string_agg(status || ':' || won_count || ':' || won_total, ',' ORDER BY id), '') FROM accounts`).Scan(&statuses))
	out["account states"] = statuses
	return out
}

// requireUnchanged checks that nothing was written since before was taken.
func requireUnchanged(t *testing.T, pool *pgxpool.Pool, before map[string]any) {
	t.Helper()
	require.Equal(t, before, snapshot(t, pool), "a rule test writes, queues and sends nothing")
}

func (b *testBundle) testRule(t *testing.T, body string) httpapi.RuleTest {
	t.Helper()
	r := b.postJSON(t, "/v1/rules/test", body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	return decode[httpapi.RuleTest](t, r)
}

func (b *testBundle) testStoredRule(t *testing.T, id, body string) httpapi.RuleTest {
	t.Helper()
	r := b.postJSON(t, "/v1/rules/"+id+"/test", body)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	return decode[httpapi.RuleTest](t, r)
}

// inlineSample is an event and an account described in the request.
const inlineSample = `"event": {"type": "won", "payload": {"amount": 1500, "region": "EU"}},
	"account": {"name": "John Doe", "status": "active", "won_count": 2, "won_total": 800, "metadata": {"tier": "gold"}}`

func TestTestRuleRendersEveryActionAndWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ep := b.createEndpoint(t, endpointJSON("https://example.com/hooks/ctrader?token=abc"))
	before := snapshot(t, b.pool)

	r := b.postJSON(t, "/v1/rules/test", `{
		"name": "big win",
		"event_types": ["won"],
		"condition": "event.payload.amount > 1000 && account.metadata.tier == 'gold'",
		"actions": [
			{"type": "emit_event", "event_type": "vip_candidate", "payload_expr": "{'amount': event.payload.amount * 2.0, 'total': account.won_total}"},
			{"type": "emit_event", "event_type": "note", "payload": {"exact": 12345678901234567.89}},
			{"type": "set_account_status", "status": "vip"},
			{"type": "webhook", "endpoint_id": "`+ep.ID+`"}
		],
		`+inlineSample+`}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	got := decode[httpapi.RuleTest](t, r)

	require.True(t, got.Matched)
	require.Empty(t, got.Error)
	require.Positive(t, got.Cost)
	require.GreaterOrEqual(t, got.DurationMS, 0.0)
	require.Equal(t, "event", got.Trigger)
	require.True(t, got.Applies)
	require.False(t, got.DepthLimited)
	require.Empty(t, got.RuleID, "a rule given in the request is not stored")
	require.NotNil(t, got.Event)
	require.Equal(t, "won", got.Event.Type)
	require.Equal(t, "John Doe", got.Account.Name)
	require.EqualValues(t, 3, got.Account.WonCount, "the won amount is added before the condition, as the events worker does")
	require.Equal(t, "2300", got.Account.WonTotal.String())
	require.Equal(t, "active", got.Account.Status, "the account as the condition saw it")
	require.Len(t, got.Actions, 4)

	emitted := got.Actions[0]
	require.Equal(t, "emit_event", emitted.Type)
	require.Equal(t, "vip_candidate", emitted.EventType)
	require.NotNil(t, emitted.Event)
	require.Equal(t, "vip_candidate", emitted.Event.Type)
	require.Equal(t, got.Account.ID, emitted.Event.AccountID)
	require.Equal(t, map[string]any{"amount": 3000.0, "total": 2300.0}, emitted.Event.Payload, "payload_expr is rendered")
	require.NotNil(t, emitted.Event.CausationID)
	require.Equal(t, got.Event.ID, *emitted.Event.CausationID)
	require.Equal(t, 1, emitted.Event.Depth)
	require.Contains(t, string(r.body), `"exact":12345678901234567.89`, "a static payload keeps its digits")
	require.Equal(t, "note", got.Actions[1].Event.Type)

	status := got.Actions[2]
	require.Equal(t, httpapi.RuleTestAction{Type: "set_account_status", Status: "vip", PreviousStatus: "active"}, status)

	hook := got.Actions[3]
	require.Equal(t, "webhook", hook.Type)
	require.Equal(t, ep.ID, hook.EndpointID)
	require.Equal(t, "https://example.com/hooks/ctrader?token=abc", hook.EndpointURL)
	require.Empty(t, hook.Skipped)
	var body struct {
		Type string `json:"type"`
		Data struct {
			Event      map[string]any `json:"event"`
			Rule       map[string]any `json:"rule"`
			Evaluation map[string]any `json:"evaluation"`
			Account    map[string]any `json:"account"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(hook.Body, &body), string(hook.Body))
	require.Equal(t, "rule.matched", body.Type)
	require.Equal(t, got.Event.ID, body.Data.Event["id"])
	require.Equal(t, "big win", body.Data.Rule["name"])
	require.EqualValues(t, 0, body.Data.Rule["version"])
	require.Equal(t, true, body.Data.Evaluation["matched"])
	require.Equal(t, "event", body.Data.Evaluation["trigger"])
	require.Equal(t, "vip", body.Data.Account["status"], "the webhook follows the status change before it, as a delivery would")
	require.EqualValues(t, 3, body.Data.Account["won_count"])

	requireUnchanged(t, b.pool, before)
}

func TestTestRuleThatDoesNotMatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := snapshot(t, b.pool)

	r := b.postJSON(t, "/v1/rules/test", `{"condition": "event.payload.amount > 5000",
		"actions": [{"type": "set_account_status", "status": "vip"}], `+inlineSample+`}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"actions":[]`, "an empty list, not null")
	got := decode[httpapi.RuleTest](t, r)
	require.False(t, got.Matched)
	require.Empty(t, got.Error)
	require.Positive(t, got.Cost)

	// A rule for other event types is still evaluated, and says so.
	other := b.testRule(t, `{"event_types": ["deposit"], "condition": "true", `+inlineSample+`}`)
	require.True(t, other.Matched)
	require.False(t, other.Applies, "won events are not evaluated against a rule for deposits")
	requireUnchanged(t, b.pool, before)
}

func TestTestRuleReportsRuntimeErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got := b.testRule(t, `{"condition": "event.payload.country == 'FR'",
		"actions": [{"type": "set_account_status", "status": "vip"}], `+inlineSample+`}`)
	require.False(t, got.Matched)
	require.Contains(t, got.Error, "no such key: country")
	require.Empty(t, got.Actions)

	// A payload expression that fails is the action's error, as in a real
	// evaluation.
	got = b.testRule(t, `{"condition": "true",
		"actions": [{"type": "emit_event", "event_type": "x", "payload_expr": "{'c': event.payload.country}"}], `+inlineSample+`}`)
	require.True(t, got.Matched)
	require.Len(t, got.Actions, 1)
	require.Contains(t, got.Actions[0].Error, "no such key: country")
	require.Nil(t, got.Actions[0].Event)
}

// Rules stored before conditions were estimated at write time are bounded
// by the runtime cost limit, and a test stops where their evaluation would.
func TestTestRuleStopsAtTheCostLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	id := uuid.NewString()
	// CEL charges a match by the sizes of the string and the pattern: one
	// call past the cost limit, which takes a few milliseconds under the
	// race detector, so the limit and not EvalTimeout stops it even on a
	// loaded machine (a loop of cheap steps to the limit took 100 ms here
	// and more than EvalTimeout in CI).
	condition := "account.metadata.a.matches(account.metadata.b)"
	_, err := b.pool.Exec(ctx, `INSERT INTO rules (id, name, condition) VALUES ($1, 'old', $2)`, id, condition)
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `
		INSERT INTO rule_versions (rule_id, version, name, description, event_types, scheduled, condition, actions, enabled)
		VALUES ($1, 1, 'old', '', '{}', false, $2, '[]', true)`, id, condition)
	require.NoError(t, err)
	long := func(c string) string { return strings.Repeat(c, 7000) }

	got := b.testStoredRule(t, id, `{"account": {"metadata": {"a": "`+long("x")+`", "b": "`+long("y")+`"}}}`)
	require.False(t, got.Matched)
	require.Contains(t, got.Error, "cost limit")
	require.Greater(t, got.Cost, uint64(rule.CostLimit))

	// Such a condition is refused when written, or tested unstored.
	p := requireProblem(t, b.postJSON(t, "/v1/rules/test", `{"condition": "`+condition+`", "account": {}}`), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, p.Errors[0].Message, "estimated worst-case cost")
}

// A rule that a write would refuse is refused by a test with the very same
// problem.
func TestTestRuleRefusesWhatCreateRefuses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, fields := range map[string]string{
		"syntax error":        `"condition": "true &&\n  (event.type =="`,
		"undefined field":     `"condition": "event.tpye == 'x'"`,
		"not a bool":          `"condition": "event.type"`,
		"cost over the limit": `"condition": "lists.range(60000).distinct().size() > 0"`,
		"payload_expr cost over the limit": `"condition": "true", "actions": [{"type": "emit_event", "event_type": "x",
			"payload_expr": "{'s': event.payload.s.replace('a', event.payload.s)}"}]`,
		"bad action":       `"condition": "true", "actions": [{"type": "set_account_status", "status": "pending"}]`,
		"unknown endpoint": `"condition": "true", "actions": [{"type": "webhook", "endpoint_id": "` + unknownID + `"}]`,
		"empty condition":  `"condition": ""`,
	} {
		t.Run(name, func(t *testing.T) {
			created := requireProblem(t, b.postJSON(t, "/v1/rules", `{"name": "r", `+fields+`}`), http.StatusUnprocessableEntity, "invalid")
			tested := requireProblem(t, b.postJSON(t, "/v1/rules/test", `{"name": "r", `+fields+`, `+inlineSample+`}`), http.StatusUnprocessableEntity, "invalid")
			require.Equal(t, created.Detail, tested.Detail)
			require.Equal(t, created.Errors, tested.Errors)
		})
	}
	p := requireProblem(t, b.postJSON(t, "/v1/rules/test", `{"condition": "true &&\n  (event.type ==", `+inlineSample+`}`), http.StatusUnprocessableEntity, "invalid")
	require.Equal(t, []string{"body.condition"}, locations(p))
	require.Contains(t, p.Errors[0].Message, "line 2, column")
	position, ok := p.Errors[0].Value.(map[string]any)
	require.True(t, ok, "the problem gives the position as data: %v", p.Errors[0].Value)
	require.EqualValues(t, 2, position["line"])
	require.Positive(t, position["column"])
	require.Zero(t, count(t, b.pool, "rules"))
}

func TestTestRuleAgainstStoredEventsAndAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "Jane Roe")
	posted := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(accountID, "won", `{"amount": 250}`)))
	ep := b.createEndpoint(t, endpointJSON("https://example.com/hook"))
	before := snapshot(t, b.pool)

	sendWhen := `"condition": "account.won_total >= 250.0", "actions": [{"type": "webhook", "endpoint_id": "` + ep.ID + `"}]`
	got := b.testRule(t, `{`+sendWhen+`, "event_id": "`+posted.ID+`"}`)
	require.True(t, got.Matched)
	require.Equal(t, posted.ID, got.Event.ID)
	require.Equal(t, accountID, got.Account.ID, "a stored event is tested with its own account")
	require.EqualValues(t, 1, got.Account.WonCount, "a pending event's amount is added, as its processing would")
	require.Equal(t, "pending", got.Account.Status)

	// An event described here, for a stored account: only its amount is
	// added, the stored event being still pending.
	got = b.testRule(t, `{"condition": "account.won_total == 100.0", "account_id": "`+accountID+`",
		"event": {"type": "won", "payload": {"amount": 100}}}`)
	require.True(t, got.Matched)
	require.Equal(t, accountID, got.Account.ID)
	require.Equal(t, accountID, got.Event.AccountID)
	require.Equal(t, "100", got.Account.WonTotal.String())

	// An account alone: evaluated as a manual or scheduled evaluation is,
	// with no event.
	got = b.testRule(t, `{"condition": "!has(event.payload.amount) && account.name == 'Jane Roe'",
		"actions": [{"type": "webhook", "endpoint_id": "`+ep.ID+`"}], "account_id": "`+accountID+`"}`)
	require.True(t, got.Matched, got.Error)
	require.Equal(t, "manual", got.Trigger)
	require.Nil(t, got.Event)
	require.Len(t, got.Actions, 1)
	body := asMap(t, got.Actions[0].Body)
	data := body["data"].(map[string]any)
	require.Nil(t, data["event"], "a delivery of an evaluation without an event has a null event")
	require.Equal(t, "manual", data["evaluation"].(map[string]any)["trigger"])

	// An account described here, alone.
	got = b.testRule(t, `{"condition": "account.status == 'gold'", "account": {"status": "gold"}}`)
	require.True(t, got.Matched)
	require.Equal(t, "gold", got.Account.Status)

	requireUnchanged(t, b.pool, before)
}

func TestTestRuleAppliesTheBoundsOfARealEvaluation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	posted := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(accountID, "ping", "")))
	disabled := b.createEndpoint(t, `{"url": "https://example.com/off", "enabled": false}`)
	emitTwice := `"condition": "true", "actions": [
		{"type": "emit_event", "event_type": "pong", "payload": {}},
		{"type": "emit_event", "event_type": "pong", "payload": {}}]`

	// Depth: an event at MAX_EVENT_DEPTH emits nothing.
	got := b.testRule(t, fmt.Sprintf(`{%s, "account_id": %q, "event": {"type": "ping", "depth": %d}}`, emitTwice, accountID, engine.DefaultMaxDepth))
	require.True(t, got.DepthLimited)
	require.Equal(t, engine.SkippedDepthLimit, got.Actions[0].Skipped)
	require.Nil(t, got.Actions[0].Event)
	got = b.testRule(t, fmt.Sprintf(`{%s, "account_id": %q, "event": {"type": "ping", "depth": %d}}`, emitTwice, accountID, engine.DefaultMaxDepth-1))
	require.False(t, got.DepthLimited)
	require.Equal(t, engine.DefaultMaxDepth, got.Actions[0].Event.Depth)

	// Cascade: a chain that has caused all the follow-ups it may cause
	// but one emits one more, then skips.
	_, err := b.pool.Exec(context.Background(), `INSERT INTO event_cascades (root_id, follow_ups) VALUES ($1, $2)`,
		posted.ID, engine.DefaultMaxCascade-1)
	require.NoError(t, err)
	before := snapshot(t, b.pool)
	got = b.testRule(t, `{`+emitTwice+`, "event_id": "`+posted.ID+`"}`)
	require.Empty(t, got.Actions[0].Skipped)
	require.NotNil(t, got.Actions[0].Event)
	require.Equal(t, engine.SkippedCascadeLimit, got.Actions[1].Skipped)
	var followUps int
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT follow_ups FROM event_cascades WHERE root_id = $1`, posted.ID).Scan(&followUps))
	require.Equal(t, engine.DefaultMaxCascade-1, followUps, "the test claimed nothing")

	// A disabled endpoint gets nothing.
	got = b.testRule(t, `{"condition": "true", "actions": [{"type": "webhook", "endpoint_id": "`+disabled.ID+`"}], "event_id": "`+posted.ID+`"}`)
	require.Equal(t, engine.SkippedEndpointDisabled, got.Actions[0].Skipped)
	require.Empty(t, got.Actions[0].Body)
	require.Equal(t, "https://example.com/off", got.Actions[0].EndpointURL)
	requireUnchanged(t, b.pool, before)
}

func TestTestStoredRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.createRule(t, `{"name": "big win", "event_types": ["won"], "condition": "event.payload.amount > 1000",
		"actions": [{"type": "emit_event", "event_type": "vip_candidate", "payload_expr": "{'amount': event.payload.amount}"}]}`)
	require.Equal(t, http.StatusOK, b.patchRule(t, created.ID, `{"condition": "event.payload.amount > 5000"}`).status)
	require.Equal(t, http.StatusOK, b.patchRule(t, created.ID, `{"enabled": false}`).status)
	sample := `"event": {"type": "won", "payload": {"amount": 2000}}, "account": {}`
	before := snapshot(t, b.pool)

	current := b.testStoredRule(t, created.ID, `{`+sample+`}`)
	require.False(t, current.Matched, "the current version wants more than 5000")
	require.Equal(t, created.ID, current.RuleID)
	require.Equal(t, 3, current.RuleVersion)
	require.True(t, current.Applies)

	first := b.testStoredRule(t, created.ID, `{"version": 1, `+sample+`}`)
	require.True(t, first.Matched)
	require.Equal(t, 1, first.RuleVersion)
	require.Equal(t, map[string]any{"amount": 2000.0}, first.Actions[0].Event.Payload)

	p := requireProblem(t, b.postJSON(t, "/v1/rules/"+created.ID+"/test", `{"version": 4, `+sample+`}`), http.StatusNotFound, "not_found")
	require.Equal(t, "rule version not found", p.Detail)
	p = requireProblem(t, b.postJSON(t, "/v1/rules/"+unknownID+"/test", `{`+sample+`}`), http.StatusNotFound, "not_found")
	require.Equal(t, "rule not found", p.Detail)
	p = requireProblem(t, b.postJSON(t, "/v1/rules/"+created.ID+"/test", `{"version": 0, `+sample+`}`), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "body.version")
	requireUnchanged(t, b.pool, before)

	// Deleted rules stay testable, as their versions stay readable.
	require.Equal(t, http.StatusNoContent, b.deleteRule(t, created.ID).status)
	before = snapshot(t, b.pool)
	require.True(t, b.testStoredRule(t, created.ID, `{"version": 1, `+sample+`}`).Matched)
	requireUnchanged(t, b.pool, before)
}

// An id in the body that names nothing is bad input, a 422 naming the field
// as for evaluateRule's account_id; an id in the path that names nothing is
// a 404 (TestTestStoredRule).
func TestTestRuleRefusesBadSamples(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	posted := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(accountID, "won", `{"amount": 1}`)))
	event := `{"type": "won", "payload": {"amount": 1}}`
	before := snapshot(t, b.pool)
	tests := []struct {
		name     string
		sample   string
		status   int
		location string
	}{
		{"nothing to test against", ``, 422, "body"},
		{"event_id and event", `, "event_id": "` + posted.ID + `", "event": ` + event, 422, "body.event"},
		{"event_id and account_id", `, "event_id": "` + posted.ID + `", "account_id": "` + accountID + `"`, 422, "body.event_id"},
		{"event without an account", `, "event": ` + event, 422, "body.event"},
		{"account and account_id", `, "account_id": "` + accountID + `", "account": {}`, 422, "body.account_id"},
		{"unknown event", `, "event_id": "` + unknownID + `"`, 422, "body.event_id"},
		{"unknown account", `, "account_id": "` + unknownID + `"`, 422, "body.account_id"},
		{"nil event id", `, "event_id": "00000000-0000-0000-0000-000000000000"`, 422, "body.event_id"},
		{"malformed event id", `, "event_id": "nope"`, 422, "body.event_id"},
		{"won event without an amount", `, "account": {}, "event": {"type": "won"}`, 422, "body.event.payload.amount"},
		{"bad event type", `, "account": {}, "event": {"type": "a b"}`, 422, "body.event.type"},
		{"negative depth", `, "account": {}, "event": {"type": "x", "depth": -1}`, 422, "body.event.depth"},
		{"bad account status", `, "account": {"status": "Not A Status"}`, 422, "body.account.status"},
		{"unknown field", `, "account": {}, "surprise": 1`, 422, "body.surprise"},
		{"payload over 32 KiB", `, "account": {}, "event": {"type": "x", "payload": {"s": "` + strings.Repeat("x", 33*1024) + `"}}`, 413, "body.event.payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.postJSON(t, "/v1/rules/test", `{"condition": "true"`+tt.sample+`}`)
			code := "invalid"
			if tt.status == http.StatusRequestEntityTooLarge {
				code = "too_large"
			}
			p := requireProblem(t, r, tt.status, code)
			require.Contains(t, locations(p), tt.location, string(r.body))
		})
	}
	created := b.createRule(t, ruleJSON("stored", "true"))
	before["rules"], before["rule_versions"] = 1, 1
	r := b.postJSON(t, "/v1/rules/"+created.ID+"/test", `{"event_id": "`+unknownID+`"}`)
	require.Contains(t, locations(requireProblem(t, r, http.StatusUnprocessableEntity, "invalid")), "body.event_id")
	requireUnchanged(t, b.pool, before)
}

func TestTestingARuleNeedsAdminAndIsRateLimited(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, httpapi.Security{WriteLimiter: ratelimit.New(0.01, 2)}, nil)
	body := `{"condition": "true", "account": {}}`
	post := func(scope auth.Scope) response {
		h := bearer(token(t, scope))
		h.Set("Content-Type", "application/json")
		return b.doWith(t, http.MethodPost, "/v1/rules/test", h, body)
	}
	requireProblem(t, post(auth.ScopeRead), http.StatusForbidden, "forbidden")
	requireProblem(t, post(auth.ScopeWrite), http.StatusForbidden, "forbidden")
	for range 2 {
		require.Equal(t, http.StatusOK, post(auth.ScopeAdmin).status)
	}
	requireProblem(t, post(auth.ScopeAdmin), http.StatusTooManyRequests, "too_many_requests")
}
