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
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/auth"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/queue"
)

type backfillList struct {
	Items      []httpapi.Backfill `json:"items"`
	NextCursor *string            `json:"next_cursor"`
}

func (b *testBundle) startBackfill(t *testing.T, ruleID, body string) httpapi.Backfill {
	t.Helper()
	r := b.postJSON(t, "/v1/rules/"+ruleID+"/backfills", body)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	got := decode[httpapi.Backfill](t, r)
	require.Equal(t, "/v1/backfills/"+got.ID, r.header.Get("Location"))
	return got
}

func since(d time.Duration) string {
	return time.Now().Add(-d).UTC().Truncate(time.Second).Format(time.RFC3339)
}

func TestCreateAndReadBackfills(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rule := b.createRule(t, `{"name": "big", "event_types": ["won", "deposit"], "condition": "event.payload.amount > 1000"}`)
	accountID := b.createAccount(t, "John Doe")

	from, to := since(48*time.Hour), since(time.Hour)
	dry := b.startBackfill(t, rule.ID, fmt.Sprintf(`{"from": %q, "to": %q, "mode": "dry_run"}`, from, to))
	require.Equal(t, rule.ID, dry.RuleID)
	require.Equal(t, 1, dry.RuleVersion)
	require.Equal(t, "dry_run", dry.Mode)
	require.Equal(t, "pending", dry.State)
	require.Equal(t, []string{"deposit", "won"}, dry.EventTypes, "the rule's types by default")
	require.Empty(t, dry.AccountID)
	require.Equal(t, from, dry.From.Format(time.RFC3339))
	require.Equal(t, to, dry.To.Format(time.RFC3339))
	require.Equal(t, "/v1/evaluations?backfill_id="+dry.ID, dry.EvaluationsURL)
	require.Nil(t, dry.StartedAt)
	require.Equal(t, 1, jobKinds(t, b.pool)["backfill.page"])
	var jobQueue string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT queue FROM river_job WHERE kind = 'backfill.page'`).Scan(&jobQueue))
	require.Equal(t, queue.Backfill, jobQueue)

	apply := b.startBackfill(t, rule.ID, fmt.Sprintf(`{"from": %q, "event_types": ["won"], "account_id": %q, "mode": "apply"}`, from, accountID))
	require.Equal(t, []string{"won"}, apply.EventTypes)
	require.Equal(t, accountID, apply.AccountID)
	require.WithinDuration(t, time.Now(), apply.To, time.Minute, "to defaults to now")

	got := b.do(t, http.MethodGet, "/v1/backfills/"+dry.ID, "", "")
	require.Equal(t, http.StatusOK, got.status, string(got.body))
	require.Equal(t, dry, decode[httpapi.Backfill](t, got))

	other := b.createRule(t, `{"name": "other", "condition": "true"}`)
	third := b.startBackfill(t, other.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from))
	list := func(query string) []string {
		r := b.do(t, http.MethodGet, "/v1/backfills"+query, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		ids := []string{}
		for _, bf := range decode[backfillList](t, r).Items {
			ids = append(ids, bf.ID)
		}
		return ids
	}
	require.Equal(t, []string{third.ID, apply.ID, dry.ID}, list(""))
	require.Equal(t, []string{apply.ID, dry.ID}, list("?rule_id="+rule.ID))
	require.Equal(t, []string{third.ID}, list("?rule_id="+other.ID+"&state=pending"))
	require.Empty(t, list("?state=running"))
	first := decode[backfillList](t, b.do(t, http.MethodGet, "/v1/backfills?limit=2", "", ""))
	require.Len(t, first.Items, 2)
	require.NotNil(t, first.NextCursor)
	require.Equal(t, []string{dry.ID}, list("?limit=2&cursor="+*first.NextCursor))

	// One apply backfill of a rule at a time.
	p := requireProblem(t, b.postJSON(t, "/v1/rules/"+rule.ID+"/backfills", fmt.Sprintf(`{"from": %q, "mode": "apply"}`, from)),
		http.StatusConflict, "conflict")
	require.Contains(t, p.Detail, "apply backfill")

	// Cancelling.
	r := b.postJSON(t, "/v1/backfills/"+apply.ID+"/cancel", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	cancelled := decode[httpapi.Backfill](t, r)
	require.Equal(t, "cancelled", cancelled.State)
	require.NotNil(t, cancelled.FinishedAt)
	require.Zero(t, cancelled.Progress.EventsToDo)
	again := b.postJSON(t, "/v1/backfills/"+apply.ID+"/cancel", "")
	require.Equal(t, http.StatusOK, again.status, string(again.body))
	require.Equal(t, cancelled, decode[httpapi.Backfill](t, again))
	// With the apply cancelled, another may start.
	b.startBackfill(t, rule.ID, fmt.Sprintf(`{"from": %q, "mode": "apply"}`, from))

	_, err := b.pool.Exec(context.Background(), `UPDATE backfills SET state = 'succeeded', finished_at = now() WHERE id = $1`, dry.ID)
	require.NoError(t, err)
	requireProblem(t, b.postJSON(t, "/v1/backfills/"+dry.ID+"/cancel", ""), http.StatusConflict, "conflict")
}

func TestBackfillBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	rule := b.createRule(t, `{"name": "big", "event_types": ["won"], "condition": "true"}`)
	disabled := b.createRule(t, `{"name": "disabled", "event_types": ["won"], "condition": "true", "enabled": false}`)
	deleted := b.createRule(t, ruleJSON("deleted", "true"))
	require.Equal(t, http.StatusNoContent, b.deleteRule(t, deleted.ID).status)
	scheduled := b.createRule(t, `{"name": "scheduled", "condition": "true", "scheduled": true}`)
	from := since(24 * time.Hour)
	jobsBefore := jobKinds(t, b.pool)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)

	tests := []struct {
		name     string
		rule     string
		body     string
		status   int
		code     string
		location string
	}{
		{"from after to", rule.ID, fmt.Sprintf(`{"from": %q, "to": %q, "mode": "dry_run"}`, since(time.Hour), since(2*time.Hour)), 422, "invalid", "body.from"},
		{"from equal to to", rule.ID, fmt.Sprintf(`{"from": %q, "to": %q, "mode": "dry_run"}`, from, from), 422, "invalid", "body.from"},
		{"to in the future", rule.ID, fmt.Sprintf(`{"from": %q, "to": %q, "mode": "dry_run"}`, from, future), 422, "invalid", "body.to"},
		{"from in the future", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, future), 422, "invalid", "body.from"},
		{"from missing", rule.ID, `{"mode": "dry_run"}`, 422, "invalid", "body"},
		{"from not a time", rule.ID, `{"from": "yesterday", "mode": "dry_run"}`, 422, "invalid", "body.from"},
		{"mode missing", rule.ID, fmt.Sprintf(`{"from": %q}`, from), 422, "invalid", "body"},
		{"unknown mode", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "now"}`, from), 422, "invalid", "body.mode"},
		{"a type the rule is not for", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run", "event_types": ["deposit"]}`, from), 422, "invalid", "body.event_types[0]"},
		{"a malformed type", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run", "event_types": ["no spaces"]}`, from), 422, "invalid", "body.event_types[0]"},
		{"no types", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run", "event_types": []}`, from), 422, "invalid", "body.event_types"},
		{"unknown account", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run", "account_id": %q}`, from, unknownID), 422, "invalid", "body.account_id"},
		{"the nil uuid is no account", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run", "account_id": %q}`, from, uuid.Nil), 422, "invalid", "body.account_id"},
		{"account not a uuid", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run", "account_id": "42"}`, from), 422, "invalid", "body.account_id"},
		{"unknown field", rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run", "accout_id": %q}`, from, accountID), 422, "invalid", "body.accout_id"},
		{"malformed JSON", rule.ID, `{"from": `, 400, "malformed", ""},
		{"no body", rule.ID, ``, 400, "malformed", ""},
		{"a scheduled rule", scheduled.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from), 422, "invalid", "path.id"},
		{"applying a disabled rule", disabled.ID, fmt.Sprintf(`{"from": %q, "mode": "apply"}`, from), 409, "conflict", ""},
		{"a deleted rule", deleted.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from), 409, "conflict", ""},
		{"unknown rule", unknownID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from), 404, "not_found", ""},
		{"rule id not a uuid", "42", fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from), 422, "invalid", "path.id"},
		{"too large", rule.ID, `{"from": "` + strings.Repeat("a", 9000) + `"}`, 413, "too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := requireProblem(t, b.postJSON(t, "/v1/rules/"+tt.rule+"/backfills", tt.body), tt.status, tt.code)
			if tt.location != "" {
				require.Contains(t, locations(p), tt.location)
			}
		})
	}
	require.Zero(t, count(t, b.pool, "backfills"))
	require.Equal(t, jobsBefore, jobKinds(t, b.pool), "no refused backfill queued anything")

	// A disabled rule can be tried out.
	b.startBackfill(t, disabled.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from))

	requireProblem(t, b.do(t, http.MethodGet, "/v1/backfills/"+unknownID, "", ""), http.StatusNotFound, "not_found")
	requireProblem(t, b.postJSON(t, "/v1/backfills/"+unknownID+"/cancel", ""), http.StatusNotFound, "not_found")
	p := requireProblem(t, b.do(t, http.MethodGet, "/v1/backfills/42", "", ""), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "path.id")
	for _, query := range []struct{ query, location string }{
		{"?rule_id=42", "query.rule_id"},
		{"?state=done", "query.state"},
		{"?limit=0", "query.limit"},
		{"?cursor=nope", "query.cursor"},
	} {
		p := requireProblem(t, b.do(t, http.MethodGet, "/v1/backfills"+query.query, "", ""), http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, locations(p), query.location, query.query)
	}
	for _, query := range []struct{ query, location string }{
		{"?trigger=later", "query.trigger"},
		{"?backfill_id=42", "query.backfill_id"},
	} {
		p := requireProblem(t, b.do(t, http.MethodGet, "/v1/evaluations"+query.query, "", ""), http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, locations(p), query.location, query.query)
	}
}

func TestBackfillsAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	from := since(time.Hour)
	for i := range 10 {
		rule := b.createRule(t, ruleJSON(fmt.Sprintf("r%d", i), "true"))
		b.startBackfill(t, rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from))
	}
	rule := b.createRule(t, ruleJSON("one too many", "true"))
	p := requireProblem(t, b.postJSON(t, "/v1/rules/"+rule.ID+"/backfills", fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, from)),
		http.StatusConflict, "conflict")
	require.Contains(t, p.Detail, "10 backfills")
}

func TestBackfillScopes(t *testing.T) {
	t.Parallel()
	b := setupSecure(t, httpapi.Security{}, nil)
	rule := b.createRuleAs(t, token(t, auth.ScopeAdmin), ruleJSON("r", "true"))
	body := fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, since(time.Hour))
	header := func(scope auth.Scope) http.Header {
		h := bearer(token(t, scope))
		h.Set("Content-Type", "application/json")
		return h
	}
	requireProblem(t, b.doWith(t, http.MethodPost, "/v1/rules/"+rule+"/backfills", header(auth.ScopeWrite), body), http.StatusForbidden, "forbidden")
	r := b.doWith(t, http.MethodPost, "/v1/rules/"+rule+"/backfills", header(auth.ScopeAdmin), body)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	id := decode[httpapi.Backfill](t, r).ID
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/v1/backfills/"+id, header(auth.ScopeRead), "").status)
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodGet, "/v1/backfills?rule_id="+rule, header(auth.ScopeRead), "").status)
	requireProblem(t, b.doWith(t, http.MethodPost, "/v1/backfills/"+id+"/cancel", header(auth.ScopeWrite), ""), http.StatusForbidden, "forbidden")
	require.Equal(t, http.StatusOK, b.doWith(t, http.MethodPost, "/v1/backfills/"+id+"/cancel", header(auth.ScopeAdmin), "").status)
}

// createRuleAs creates a rule with a bearer token and returns its id.
func (b *testBundle) createRuleAs(t *testing.T, tok, body string) string {
	t.Helper()
	h := bearer(tok)
	h.Set("Content-Type", "application/json")
	r := b.doWith(t, http.MethodPost, "/v1/rules", h, body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	return decode[httpapi.Rule](t, r).ID
}

func TestEvaluationsOfABackfillAreListed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	ev := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(accountID, "won", `{"amount": 5}`)))
	rule := b.createRule(t, ruleJSON("r", "true"))
	bf := b.startBackfill(t, rule.ID, fmt.Sprintf(`{"from": %q, "mode": "dry_run"}`, since(time.Hour)))

	// Nothing works jobs here: record evaluations as the workers would.
	ruleID, account, eventID, backfillID := uuid.MustParse(rule.ID), uuid.MustParse(accountID), uuid.MustParse(ev.ID), uuid.MustParse(bf.ID)
	now := time.Now().UTC().Truncate(time.Microsecond)
	live := &evaluation.Evaluation{ID: uuid.Must(uuid.NewV7()), RuleID: ruleID, RuleVersion: 1, AccountID: account, EventID: &eventID,
		Trigger: evaluation.TriggerEvent, Matched: true, StartedAt: now, EvaluatedAt: now}
	backfilled := &evaluation.Evaluation{ID: uuid.Must(evaluation.IDAt(eventID)), RuleID: ruleID, RuleVersion: 1, AccountID: account,
		EventID: &eventID, Trigger: evaluation.TriggerBackfill, BackfillID: &backfillID, Matched: true, StartedAt: now, EvaluatedAt: now}
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		_, err := evaluation.InsertNew(ctx, tx, []*evaluation.Evaluation{live, backfilled})
		return err
	}))

	list := func(query string) []httpapi.Evaluation {
		r := b.do(t, http.MethodGet, "/v1/evaluations"+query, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		return decode[evaluationList](t, r).Items
	}
	got := list("?trigger=backfill")
	require.Len(t, got, 1)
	require.Equal(t, backfilled.ID.String(), got[0].ID)
	require.Equal(t, "backfill", got[0].Trigger)
	require.Equal(t, bf.ID, got[0].BackfillID)
	require.Equal(t, ev.ID, got[0].EventID)
	require.Equal(t, got, list("?backfill_id="+bf.ID))
	require.Equal(t, got, list(strings.TrimPrefix(bf.EvaluationsURL, "/v1/evaluations")))
	require.Len(t, list("?trigger=event"), 1)
	require.Len(t, list("?event_id="+ev.ID), 2, "a dry run and the live evaluation of one event and version")
}
