package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/queue"
)

type ruleList struct {
	Items      []httpapi.Rule `json:"items"`
	NextCursor *string        `json:"next_cursor"`
}

type evaluationList struct {
	Items      []httpapi.Evaluation `json:"items"`
	NextCursor *string              `json:"next_cursor"`
}

// createRule posts body and returns the rule it created.
func (b *testBundle) createRule(t *testing.T, body string) httpapi.Rule {
	t.Helper()
	r := b.postJSON(t, "/v1/rules", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	return decode[httpapi.Rule](t, r)
}

func (b *testBundle) getRule(t *testing.T, id string) httpapi.Rule {
	t.Helper()
	r := b.do(t, http.MethodGet, "/v1/rules/"+id, "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	return decode[httpapi.Rule](t, r)
}

func (b *testBundle) patchRule(t *testing.T, id, body string) response {
	t.Helper()
	return b.do(t, http.MethodPatch, "/v1/rules/"+id, "application/json", body)
}

func (b *testBundle) deleteRule(t *testing.T, id string) response {
	t.Helper()
	return b.do(t, http.MethodDelete, "/v1/rules/"+id, "", "")
}

func ruleJSON(name, condition string) string {
	return fmt.Sprintf(`{"name": %q, "condition": %q}`, name, condition)
}

func TestCreateRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.postJSON(t, "/v1/rules", `{
		"name": "  big win ",
		"description": "wins over 1000",
		"event_types": ["won", "deposit", "won"],
		"condition": "event.payload.amount > 1000",
		"actions": [
			{"type": "emit_event", "event_type": "vip_candidate", "payload_expr": "{'amount': event.payload.amount}"},
			{"type": "emit_event", "event_type": "won", "payload": {"amount": 5}},
			{"type": "set_account_status", "status": "vip"}
		]
	}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	got := decode[httpapi.Rule](t, r)
	require.Equal(t, "/v1/rules/"+got.ID, r.header.Get("Location"))
	require.Equal(t, 1, got.Version)
	require.Equal(t, "big win", got.Name, "the name is trimmed")
	require.Equal(t, "wins over 1000", got.Description)
	require.True(t, got.Enabled, "enabled defaults to true")
	require.False(t, got.Scheduled)
	require.Equal(t, []string{"deposit", "won"}, got.EventTypes, "event types are sorted and deduplicated")
	require.Equal(t, "event.payload.amount > 1000", got.Condition)
	require.Equal(t, []httpapi.RuleAction{
		{Type: "emit_event", EventType: "vip_candidate", PayloadExpr: "{'amount': event.payload.amount}"},
		{Type: "emit_event", EventType: "won", Payload: map[string]any{"amount": 5.0}},
		{Type: "set_account_status", Status: "vip"},
	}, got.Actions)
	require.Nil(t, got.DeletedAt)
	require.Equal(t, got.CreatedAt, got.UpdatedAt)
	require.NotContains(t, string(r.body), "deleted_at")

	require.Equal(t, asMap(t, r.body), asMap(t, b.do(t, http.MethodGet, r.header.Get("Location"), "", "").body))
	require.Equal(t, 1, count(t, b.pool, "rules"))
	require.Equal(t, 1, count(t, b.pool, "rule_versions"))
	require.Zero(t, count(t, b.pool, "river_job"), "creating a rule queues nothing")
}

func TestCreateRuleDefaults(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.postJSON(t, "/v1/rules", ruleJSON("minimal", "true"))
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	require.Contains(t, string(r.body), `"event_types":[]`)
	require.Contains(t, string(r.body), `"actions":[]`)
	got := decode[httpapi.Rule](t, r)
	require.True(t, got.Enabled)
	require.Empty(t, got.Description)

	disabled := b.createRule(t, `{"name": "off", "condition": "true", "enabled": false, "scheduled": true}`)
	require.False(t, disabled.Enabled)
	require.True(t, disabled.Scheduled)
	require.Equal(t, 1, disabled.Version)
}

func TestRuleNamesAreUniqueAmongLiveRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first := b.createRule(t, ruleJSON("big win", "true"))

	p := requireProblem(t, b.postJSON(t, "/v1/rules", ruleJSON("big win", "false")), http.StatusConflict, "conflict")
	require.Equal(t, "/v1/rules", p.Instance)
	requireProblem(t, b.postJSON(t, "/v1/rules", ruleJSON("  big win  ", "false")), http.StatusConflict, "conflict")
	require.Equal(t, 1, count(t, b.pool, "rules"))

	other := b.createRule(t, ruleJSON("small win", "true"))
	requireProblem(t, b.patchRule(t, other.ID, `{"name": "big win"}`), http.StatusConflict, "conflict")
	require.Equal(t, 1, b.getRule(t, other.ID).Version, "a refused rename changes nothing")

	require.Equal(t, http.StatusNoContent, b.deleteRule(t, first.ID).status)
	again := b.createRule(t, ruleJSON("big win", "false"))
	require.NotEqual(t, first.ID, again.ID)
	require.Equal(t, 1, again.Version)
	require.Equal(t, 3, count(t, b.pool, "rules"))
}

func TestCreateRuleRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	action := func(a string) string {
		return `{"name": "r", "condition": "true", "actions": [` + a + `]}`
	}
	manyTypes := make([]string, 21)
	for i := range manyTypes {
		manyTypes[i] = fmt.Sprintf("%q", fmt.Sprintf("t%d", i))
	}
	manyActions := make([]string, 11)
	for i := range manyActions {
		manyActions[i] = `{"type": "set_account_status", "status": "vip"}`
	}
	tests := []struct {
		name      string
		body      string
		status    int
		code      string
		locations []string // entries that must be present
		message   string   // text the first entry's message must contain, if any
	}{
		{"syntax error", ruleJSON("r", "event.payload.amount >"), 422, "invalid", []string{"body.condition"}, "line 1, column"},
		{"syntax error on a later line", ruleJSON("r", "true &&\n  (event.type =="), 422, "invalid", []string{"body.condition"}, "line 2, column"},
		{"undefined field", ruleJSON("r", "event.tpye == 'x'"), 422, "invalid", []string{"body.condition"}, "undefined field 'tpye'"},
		{"undeclared variable", ruleJSON("r", "evnt.type == 'x'"), 422, "invalid", []string{"body.condition"}, "undeclared reference"},
		{"condition not a bool", ruleJSON("r", "event.type"), 422, "invalid", []string{"body.condition"}, "must evaluate to bool"},
		{"empty condition", ruleJSON("r", ""), 422, "invalid", []string{"body.condition"}, ""},
		{"blank condition", ruleJSON("r", "   "), 422, "invalid", []string{"body.condition"}, "must not be empty"},
		{"no condition", `{"name": "r"}`, 422, "invalid", []string{"body"}, ""},
		{"condition over 4096 characters", ruleJSON("r", "true"+strings.Repeat(" ", 4096)), 422, "invalid", []string{"body.condition"}, ""},
		{"empty name", ruleJSON("", "true"), 422, "invalid", []string{"body.name"}, ""},
		{"blank name", ruleJSON("   ", "true"), 422, "invalid", []string{"body.name"}, "must not be blank"},
		{"name over 200 characters", ruleJSON(strings.Repeat("n", 201), "true"), 422, "invalid", []string{"body.name"}, ""},
		{"bad event type", `{"name": "r", "condition": "true", "event_types": ["won", "a b"]}`, 422, "invalid", []string{"body.event_types[1]"}, ""},
		{"21 event types", `{"name": "r", "condition": "true", "event_types": [` + strings.Join(manyTypes, ",") + `]}`, 422, "invalid", []string{"body.event_types"}, ""},
		{"11 actions", action(strings.Join(manyActions, ",")), 422, "invalid", []string{"body.actions"}, ""},
		{"unknown action type", action(`{"type": "send_email"}`), 422, "invalid", []string{"body.actions[0].type"}, ""},
		{"emit_event without event_type", action(`{"type": "emit_event"}`), 422, "invalid", []string{"body.actions[0].event_type"}, ""},
		{"emit_event with a bad event_type", action(`{"type": "emit_event", "event_type": "a b"}`), 422, "invalid", []string{"body.actions[0].event_type"}, ""},
		{"emit_event with payload and payload_expr", action(`{"type": "emit_event", "event_type": "x", "payload": {"a": 1}, "payload_expr": "{'a': 1}"}`),
			422, "invalid", []string{"body.actions[0]"}, "not both"},
		{"payload_expr not a map", action(`{"type": "emit_event", "event_type": "x", "payload_expr": "'x'"}`), 422, "invalid", []string{"body.actions[0].payload_expr"}, "must evaluate to map"},
		{"payload_expr does not parse", action(`{"type": "emit_event", "event_type": "x", "payload_expr": "{'a': }"}`), 422, "invalid", []string{"body.actions[0].payload_expr"}, "line 1, column"},
		{"emit_event with a status", action(`{"type": "emit_event", "event_type": "x", "status": "vip"}`), 422, "invalid", []string{"body.actions[0].status"}, ""},
		{"won without an amount", action(`{"type": "emit_event", "event_type": "won", "payload": {"currency": "EUR"}}`), 422, "invalid", []string{"body.actions[0].payload.amount"}, ""},
		{"won with a string amount", action(`{"type": "emit_event", "event_type": "won", "payload": {"amount": "5"}}`), 422, "invalid", []string{"body.actions[0].payload.amount"}, ""},
		{"won without a payload", action(`{"type": "emit_event", "event_type": "won"}`), 422, "invalid", []string{"body.actions[0].payload.amount"}, ""},
		{"set_account_status pending", action(`{"type": "set_account_status", "status": "pending"}`), 422, "invalid", []string{"body.actions[0].status"}, ""},
		{"set_account_status Bad Status", action(`{"type": "set_account_status", "status": "Bad Status"}`), 422, "invalid", []string{"body.actions[0].status"}, ""},
		{"set_account_status without status", action(`{"type": "set_account_status"}`), 422, "invalid", []string{"body.actions[0].status"}, ""},
		{"set_account_status with an event_type", action(`{"type": "set_account_status", "status": "vip", "event_type": "x"}`), 422, "invalid", []string{"body.actions[0]"}, ""},
		{"bad second action", action(`{"type": "set_account_status", "status": "vip"}, {"type": "set_account_status", "status": "pending"}`),
			422, "invalid", []string{"body.actions[1].status"}, ""},
		{"worst-case cost over the limit", ruleJSON("r", "lists.range(60000).distinct().size() > 0"), 422, "invalid", []string{"body.condition"},
			"estimated worst-case cost"},
		{"replace chain over the limit", ruleJSON("r", "event.payload.s.replace('a', event.payload.s).replace('a', event.payload.s).size() > 0"), 422, "invalid",
			[]string{"body.condition"}, "exceeds the limit of 1000000"},
		{"regex program over the limit", ruleJSON("r", "event.payload.s.matches('"+strings.Repeat(".{0,1000}", 100)+"b')"), 422, "invalid",
			[]string{"body.condition"}, "regex program size"},
		{"payload_expr cost over the limit", action(`{"type": "emit_event", "event_type": "x", "payload_expr": "{'s': event.payload.s.replace('a', event.payload.s)}"}`),
			422, "invalid", []string{"body.actions[0].payload_expr"}, "estimated worst-case cost"},
		{"several errors at once", `{"name": " ", "condition": "event.type", "actions": [{"type": "emit_event"}]}`,
			422, "invalid", []string{"body.name", "body.condition", "body.actions[0].event_type"}, ""},
		{"unknown field", `{"name": "r", "condition": "true", "conditon": "x"}`, 422, "invalid", []string{"body.conditon"}, ""},
		{"malformed JSON", `{"name": `, 400, "malformed", nil, ""},
		{"no body", ``, 400, "malformed", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := requireProblem(t, b.postJSON(t, "/v1/rules", tt.body), tt.status, tt.code)
			require.Subset(t, locations(p), tt.locations)
			if tt.message != "" {
				var messages []string
				for _, e := range p.Errors {
					if e.Location == tt.locations[0] {
						messages = append(messages, e.Message)
					}
				}
				require.NotEmpty(t, messages)
				require.Contains(t, strings.Join(messages, "\n"), tt.message)
			}
		})
	}
	require.Zero(t, count(t, b.pool, "rules"), "no bad input wrote anything")
	require.Zero(t, count(t, b.pool, "rule_versions"))
	require.Zero(t, count(t, b.pool, "river_job"))
}

// Postgres cannot store the NUL character in text or jsonb; such input is the
// client's mistake, not a server error.
func TestNULCharactersAreRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.createRule(t, ruleJSON("r", "true"))
	tests := []struct {
		name   string
		method string
		path   string
		body   string
	}{
		{"rule name", http.MethodPost, "/v1/rules", `{"name": "a\u0000b", "condition": "true"}`},
		{"rule description", http.MethodPost, "/v1/rules", `{"name": "n", "description": "\u0000", "condition": "true"}`},
		{"rule condition", http.MethodPost, "/v1/rules", `{"name": "n", "condition": "'\u0000' != ''"}`},
		{"action payload", http.MethodPost, "/v1/rules", `{"name": "n", "condition": "true", "actions": [{"type": "emit_event", "event_type": "x", "payload": {"k": "\u0000"}}]}`},
		{"rule patch", http.MethodPatch, "/v1/rules/" + created.ID, `{"description": "\u0000"}`},
		{"account name", http.MethodPost, "/v1/accounts", `{"name": "a\u0000b"}`},
		{"account metadata", http.MethodPost, "/v1/accounts", `{"name": "a", "metadata": {"k": "\u0000"}}`},
		{"run_id filter", http.MethodGet, "/v1/evaluations?run_id=a%00b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := requireProblem(t, b.do(t, tt.method, tt.path, "application/json", tt.body), http.StatusUnprocessableEntity, "invalid")
			said := p.Detail
			for _, e := range p.Errors {
				said += "; " + e.Message
			}
			require.Contains(t, said, "NUL")
		})
	}
	require.Equal(t, 1, count(t, b.pool, "rules"))
	require.Equal(t, 1, count(t, b.pool, "rule_versions"))
	require.Zero(t, count(t, b.pool, "accounts"))
	require.Zero(t, count(t, b.pool, "river_job"))
}

func TestCreateRuleSyntaxErrorGivesPosition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := requireProblem(t, b.postJSON(t, "/v1/rules", ruleJSON("r", "event.payload.amount >")), http.StatusUnprocessableEntity, "invalid")
	require.Len(t, p.Errors, 1)
	require.Equal(t, "body.condition", p.Errors[0].Location)
	require.True(t, strings.HasPrefix(p.Errors[0].Message, "line 1, column "), p.Errors[0].Message)
	value, ok := p.Errors[0].Value.(map[string]any)
	require.True(t, ok, "the value gives the position as data: %#v", p.Errors[0].Value)
	require.Equal(t, 1.0, value["line"])
	require.Greater(t, value["column"], 1.0)
}

func TestUpdateRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.createRule(t, `{"name": "big win", "event_types": ["won", "deposit"], "condition": "event.payload.amount > 1000",
		"actions": [{"type": "emit_event", "event_type": "won", "payload": {"amount": 1500, "note": "x"}}]}`)

	r := b.patchRule(t, created.ID, `{"condition": "event.payload.amount > 2000"}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	v2 := decode[httpapi.Rule](t, r)
	require.Equal(t, 2, v2.Version)
	require.Equal(t, "event.payload.amount > 2000", v2.Condition)
	require.Equal(t, "big win", v2.Name, "absent fields stay")
	require.Equal(t, created.Actions, v2.Actions)
	require.Equal(t, created.CreatedAt, v2.CreatedAt)
	require.True(t, v2.UpdatedAt.After(created.UpdatedAt))
	require.Equal(t, v2, b.getRule(t, created.ID))
	require.Equal(t, 2, count(t, b.pool, "rule_versions"))

	t.Run("a patch with the same values keeps the version", func(t *testing.T) {
		r := b.patchRule(t, created.ID, `{"name": " big win ", "condition": "event.payload.amount > 2000", "event_types": ["deposit", "won", "won"],
			"actions": [{"type": "emit_event", "event_type": "won", "payload": {"note": "x", "amount": 1500}}], "enabled": true}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.Equal(t, v2, decode[httpapi.Rule](t, r))
		empty := b.patchRule(t, created.ID, `{}`)
		require.Equal(t, http.StatusOK, empty.status, string(empty.body))
		require.Equal(t, v2, decode[httpapi.Rule](t, empty))
		require.Equal(t, 2, count(t, b.pool, "rule_versions"))
	})

	t.Run("invalid CEL changes nothing", func(t *testing.T) {
		p := requireProblem(t, b.patchRule(t, created.ID, `{"condition": "event.payload.amount >"}`), http.StatusUnprocessableEntity, "invalid")
		require.Equal(t, []string{"body.condition"}, locations(p))
		require.Contains(t, p.Errors[0].Message, "line 1, column")
		p = requireProblem(t, b.patchRule(t, created.ID, `{"actions": [{"type": "set_account_status", "status": "pending"}]}`), http.StatusUnprocessableEntity, "invalid")
		require.Equal(t, []string{"body.actions[0].status"}, locations(p))
		requireProblem(t, b.patchRule(t, created.ID, `{"name": ""}`), http.StatusUnprocessableEntity, "invalid")
		requireProblem(t, b.patchRule(t, created.ID, `{"name": "  "}`), http.StatusUnprocessableEntity, "invalid")
		requireProblem(t, b.patchRule(t, created.ID, `{"enabled": "yes"}`), http.StatusUnprocessableEntity, "invalid")
		requireProblem(t, b.patchRule(t, created.ID, `{"condition": `), http.StatusBadRequest, "malformed")
		require.Equal(t, v2, b.getRule(t, created.ID))
		require.Equal(t, 2, count(t, b.pool, "rule_versions"))
	})

	t.Run("clearing lists is a change", func(t *testing.T) {
		r := b.patchRule(t, created.ID, `{"actions": [], "event_types": []}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		got := decode[httpapi.Rule](t, r)
		require.Equal(t, v2.Version+1, got.Version)
		require.Empty(t, got.Actions)
		require.Empty(t, got.EventTypes)
		require.Equal(t, got, b.getRule(t, created.ID))
	})

	t.Run("unknown and malformed ids", func(t *testing.T) {
		requireProblem(t, b.patchRule(t, unknownID, `{"condition": "true"}`), http.StatusNotFound, "not_found")
		p := requireProblem(t, b.patchRule(t, "42", `{"condition": "true"}`), http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, locations(p), "path.id")
	})
}

func TestUpdateDeletedRuleConflicts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.createRule(t, ruleJSON("r", "true"))
	require.Equal(t, http.StatusNoContent, b.deleteRule(t, created.ID).status)
	deleted := b.getRule(t, created.ID)

	requireProblem(t, b.patchRule(t, created.ID, `{"enabled": true}`), http.StatusConflict, "conflict")
	requireProblem(t, b.patchRule(t, created.ID, `{}`), http.StatusConflict, "conflict")
	require.Equal(t, deleted, b.getRule(t, created.ID))
}

func TestDeleteRule(t *testing.T) {
	t.Parallel()
	b := setup(t)
	kept := b.createRule(t, ruleJSON("kept", "true"))
	gone := b.createRule(t, ruleJSON("gone", "true"))

	r := b.deleteRule(t, gone.ID)
	require.Equal(t, http.StatusNoContent, r.status, string(r.body))
	require.Empty(t, r.body)

	got := b.getRule(t, gone.ID)
	require.False(t, got.Enabled)
	require.NotNil(t, got.DeletedAt)
	require.WithinDuration(t, time.Now(), *got.DeletedAt, time.Minute)
	require.Equal(t, 2, got.Version)
	require.Equal(t, gone.Condition, got.Condition, "the rule stays readable")

	again := b.deleteRule(t, gone.ID)
	require.Equal(t, http.StatusNoContent, again.status, string(again.body))
	require.Equal(t, got, b.getRule(t, gone.ID), "deleting again changes nothing")
	require.Equal(t, 3, count(t, b.pool, "rule_versions"))

	list := func(query string) []string {
		r := b.do(t, http.MethodGet, "/v1/rules"+query, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		var ids []string
		for _, rule := range decode[ruleList](t, r).Items {
			ids = append(ids, rule.ID)
		}
		return ids
	}
	require.Equal(t, []string{kept.ID}, list(""))
	require.Equal(t, []string{gone.ID, kept.ID}, list("?include_deleted=true"))
	require.Equal(t, []string{gone.ID}, list("?include_deleted=true&enabled=false"))
	require.Empty(t, list("?enabled=false"))

	requireProblem(t, b.deleteRule(t, unknownID), http.StatusNotFound, "not_found")
	p := requireProblem(t, b.deleteRule(t, "42"), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "path.id")
}

func TestListRules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for _, body := range []string{
		`{"name": "a", "condition": "true"}`,
		`{"name": "b", "condition": "true", "scheduled": true}`,
		`{"name": "c", "condition": "true", "enabled": false}`,
		`{"name": "d", "condition": "true", "scheduled": true, "enabled": false}`,
		`{"name": "e", "condition": "true"}`,
	} {
		ids = append(ids, b.createRule(t, body).ID)
	}
	list := func(t *testing.T, query string) ruleList {
		t.Helper()
		r := b.do(t, http.MethodGet, "/v1/rules"+query, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		return decode[ruleList](t, r)
	}
	idsOf := func(l ruleList) []string {
		out := []string{}
		for _, r := range l.Items {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"?enabled=true", []string{ids[4], ids[1], ids[0]}},
		{"?enabled=false", []string{ids[3], ids[2]}},
		{"?scheduled=true", []string{ids[3], ids[1]}},
		{"?scheduled=false&enabled=true", []string{ids[4], ids[0]}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			require.Equal(t, tt.want, idsOf(list(t, tt.query)))
		})
	}
	t.Run("pages", func(t *testing.T) {
		first := list(t, "?limit=3")
		require.Equal(t, []string{ids[4], ids[3], ids[2]}, idsOf(first))
		require.NotNil(t, first.NextCursor)
		second := list(t, "?limit=3&cursor="+*first.NextCursor)
		require.Equal(t, []string{ids[1], ids[0]}, idsOf(second))
		require.Nil(t, second.NextCursor)
	})
	for _, query := range []string{"?enabled=maybe", "?scheduled=1", "?limit=0", "?cursor=x"} {
		requireProblem(t, b.do(t, http.MethodGet, "/v1/rules"+query, "", ""), http.StatusUnprocessableEntity, "invalid")
	}
}

func TestEvaluateRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("one account", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		accountID := b.createAccount(t, "John Doe")
		rule := b.createRule(t, ruleJSON("r", "true"))
		require.Equal(t, http.StatusOK, b.patchRule(t, rule.ID, `{"condition": "account.won_total > 10"}`).status)

		r := b.postJSON(t, "/v1/rules/"+rule.ID+"/evaluations", fmt.Sprintf(`{"account_id": %q}`, accountID))
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		run := decode[httpapi.EvaluationRun](t, r)
		require.True(t, strings.HasPrefix(run.RunID, "manual:"), run.RunID)
		require.Equal(t, rule.ID, run.RuleID)
		require.Equal(t, 2, run.RuleVersion, "the version current when the run was queued")
		require.Equal(t, accountID, run.AccountID)
		require.Equal(t, "manual", run.Trigger)
		require.Equal(t, "/v1/evaluations?run_id="+run.RunID, run.EvaluationsURL)

		require.Equal(t, map[string]int{"account.provision": 1, "rules.evaluate_accounts": 1}, jobKinds(t, b.pool))
		job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), jobs.EvaluateAccounts{}, &rivertest.RequireInsertedOpts{Queue: queue.Rules})
		require.Equal(t, jobs.EvaluateAccounts{Trigger: "manual", RunID: run.RunID, RuleIDs: []uuid.UUID{uuid.MustParse(rule.ID)},
			AccountID: uuid.MustParse(accountID)}, job.Args)
	})

	t.Run("every account", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name        string
			contentType string
			body        string
		}{
			{"no body at all", "", ""},
			{"no body with a JSON content type", "application/json", ""},
			{"an empty object", "application/json", "{}"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				rule := b.createRule(t, ruleJSON("r", "true"))

				r := b.do(t, http.MethodPost, "/v1/rules/"+rule.ID+"/evaluations", tt.contentType, tt.body)
				require.Equal(t, http.StatusAccepted, r.status, string(r.body))
				run := decode[httpapi.EvaluationRun](t, r)
				require.True(t, strings.HasPrefix(run.RunID, "manual:"), run.RunID)
				require.Empty(t, run.AccountID)
				require.NotContains(t, string(r.body), "account_id")
				require.Equal(t, 1, run.RuleVersion)

				require.Equal(t, map[string]int{"rules.fan_out": 1}, jobKinds(t, b.pool))
				job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), jobs.RulesFanOut{}, &rivertest.RequireInsertedOpts{Queue: queue.Rules})
				require.Equal(t, jobs.RulesFanOut{Trigger: "manual", RunID: run.RunID, RuleIDs: []uuid.UUID{uuid.MustParse(rule.ID)}}, job.Args)
			})
		}
	})

	t.Run("every run is its own", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		accountID := b.createAccount(t, "John Doe")
		rule := b.createRule(t, ruleJSON("r", "true"))
		body := fmt.Sprintf(`{"account_id": %q}`, accountID)
		first := decode[httpapi.EvaluationRun](t, b.postJSON(t, "/v1/rules/"+rule.ID+"/evaluations", body))
		second := decode[httpapi.EvaluationRun](t, b.postJSON(t, "/v1/rules/"+rule.ID+"/evaluations", body))
		require.NotEqual(t, first.RunID, second.RunID)
		require.Equal(t, 2, jobKinds(t, b.pool)["rules.evaluate_accounts"])
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		accountID := b.createAccount(t, "John Doe")
		live := b.createRule(t, ruleJSON("live", "true"))
		disabled := b.createRule(t, `{"name": "disabled", "condition": "true", "enabled": false}`)
		deleted := b.createRule(t, ruleJSON("deleted", "true"))
		require.Equal(t, http.StatusNoContent, b.deleteRule(t, deleted.ID).status)
		jobsBefore := jobKinds(t, b.pool)

		tests := []struct {
			name     string
			rule     string
			body     string
			status   int
			code     string
			location string
		}{
			{"unknown account", live.ID, `{"account_id": "` + unknownID + `"}`, 422, "invalid", "body.account_id"},
			{"account_id not a uuid", live.ID, `{"account_id": "42"}`, 422, "invalid", "body.account_id"},
			{"the nil uuid is no account", live.ID, `{"account_id": "` + uuid.Nil.String() + `"}`, 422, "invalid", "body.account_id"},
			{"unknown field", live.ID, `{"acount_id": "` + accountID + `"}`, 422, "invalid", "body.acount_id"},
			{"malformed JSON", live.ID, `{"account_id": `, 400, "malformed", ""},
			{"disabled rule", disabled.ID, `{"account_id": "` + accountID + `"}`, 409, "conflict", ""},
			{"disabled rule, every account", disabled.ID, ``, 409, "conflict", ""},
			{"deleted rule", deleted.ID, `{"account_id": "` + accountID + `"}`, 409, "conflict", ""},
			{"unknown rule", unknownID, `{"account_id": "` + accountID + `"}`, 404, "not_found", ""},
			{"rule id not a uuid", "42", ``, 422, "invalid", "path.id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := requireProblem(t, b.postJSON(t, "/v1/rules/"+tt.rule+"/evaluations", tt.body), tt.status, tt.code)
				if tt.location != "" {
					require.Contains(t, locations(p), tt.location)
				}
			})
		}
		require.Equal(t, jobsBefore, jobKinds(t, b.pool), "no refused evaluation queued anything")
	})
}

func TestListEvaluations(t *testing.T) {
	t.Parallel()
	b := setup(t)

	r := b.do(t, http.MethodGet, "/v1/evaluations", "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.JSONEq(t, `{"items": []}`, string(r.body))

	for _, query := range []struct{ query, location string }{
		{"?rule_id=42", "query.rule_id"},
		{"?account_id=42", "query.account_id"},
		{"?event_id=42", "query.event_id"},
		{"?matched=maybe", "query.matched"},
		{"?run_id=" + strings.Repeat("r", 101), "query.run_id"},
		{"?limit=501", "query.limit"},
		{"?cursor=nope", "query.cursor"},
	} {
		p := requireProblem(t, b.do(t, http.MethodGet, "/v1/evaluations"+query.query, "", ""), http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, locations(p), query.location, query.query)
	}
}

func TestEvaluationsAreListedAndShownOnTheirEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	ev := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(accountID, "won", `{"amount": 5}`)))
	rule := b.createRule(t, ruleJSON("r", "true"))

	// Nothing works jobs here: record evaluations as the workers would.
	ruleID, account, eventID := uuid.MustParse(rule.ID), uuid.MustParse(accountID), uuid.MustParse(ev.ID)
	now := time.Now().UTC().Truncate(time.Microsecond)
	runID := "manual:run-1"
	newID := func() uuid.UUID { id, err := uuid.NewV7(); require.NoError(t, err); return id }
	onEvent := &evaluation.Evaluation{ID: newID(), RuleID: ruleID, RuleVersion: 1, AccountID: account, EventID: &eventID,
		Trigger: evaluation.TriggerEvent, Matched: true, StartedAt: now, EvaluatedAt: now}
	manual := &evaluation.Evaluation{ID: newID(), RuleID: ruleID, RuleVersion: 1, AccountID: account,
		Trigger: evaluation.TriggerManual, RunID: &runID, Matched: false, StartedAt: now, EvaluatedAt: now}
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := evaluation.InsertNew(ctx, tx, []*evaluation.Evaluation{onEvent, manual})
		return err
	}))

	list := func(query string) []string {
		r := b.do(t, http.MethodGet, "/v1/evaluations"+query, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		ids := []string{}
		for _, e := range decode[evaluationList](t, r).Items {
			ids = append(ids, e.ID)
		}
		return ids
	}
	require.Equal(t, []string{manual.ID.String(), onEvent.ID.String()}, list(""))
	require.Equal(t, []string{onEvent.ID.String()}, list("?matched=true"))
	require.Equal(t, []string{manual.ID.String()}, list("?matched=false"))
	require.Equal(t, []string{manual.ID.String()}, list("?run_id="+runID))
	require.Equal(t, []string{onEvent.ID.String()}, list("?event_id="+ev.ID))
	require.Equal(t, []string{manual.ID.String(), onEvent.ID.String()}, list("?rule_id="+rule.ID+"&account_id="+accountID))
	require.Empty(t, list("?rule_id="+unknownID))

	detail := decode[httpapi.EventDetail](t, b.do(t, http.MethodGet, "/v1/events/"+ev.ID, "", ""))
	require.Len(t, detail.Evaluations, 1)
	got := detail.Evaluations[0]
	require.Equal(t, onEvent.ID.String(), got.ID)
	require.Equal(t, ev.ID, got.EventID)
	require.Equal(t, "event", got.Trigger)
	require.True(t, got.Matched)
	require.Equal(t, []httpapi.ActionResult{}, got.Actions)
}

func TestGetRuleUnknownAndMalformed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := requireProblem(t, b.do(t, http.MethodGet, "/v1/rules/"+unknownID, "", ""), http.StatusNotFound, "not_found")
	require.Equal(t, "/v1/rules/"+unknownID, p.Instance)
	p = requireProblem(t, b.do(t, http.MethodGet, "/v1/rules/42", "", ""), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "path.id")
}

func TestRuleBodiesOverTheLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	created := b.createRule(t, ruleJSON("r", "true"))
	big := `{"name": "r", "condition": "true", "description": "` + strings.Repeat("d", 300*1024) + `"}`
	requireProblem(t, b.postJSON(t, "/v1/rules", big), http.StatusRequestEntityTooLarge, "too_large")
	requireProblem(t, b.patchRule(t, created.ID, big), http.StatusRequestEntityTooLarge, "too_large")
	requireProblem(t, b.postJSON(t, "/v1/rules/"+created.ID+"/evaluations", `{"account_id": "`+strings.Repeat("a", 5000)+`"}`),
		http.StatusRequestEntityTooLarge, "too_large")
	require.Equal(t, created, b.getRule(t, created.ID))
	require.Equal(t, 1, count(t, b.pool, "rules"))
	require.Zero(t, count(t, b.pool, "river_job"))
}
