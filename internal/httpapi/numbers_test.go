package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/jsonvalue"
)

// exactPayload has numbers that a float64 cannot hold: 2^53 + 1, a decimal
// with 19 significant digits and the largest uint64.
const exactPayload = `{"amount":9007199254740993,"price":12345678901234567.89,"ref":18446744073709551615}`

func TestEventNumbersAreKeptExactly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")

	r := b.postJSON(t, "/v1/events", eventJSON(a, "won", exactPayload))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	require.Contains(t, string(r.body), `"payload":`+exactPayload)
	id := decode[httpapi.Event](t, r).ID

	r = b.do(t, http.MethodGet, "/v1/events/"+id, "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"payload":`+exactPayload, "GET answers the numbers as they were sent")

	r = b.do(t, http.MethodGet, "/v1/events?account_id="+a, "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"payload":`+exactPayload, "so does the list")

	var stored string
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT payload->>'amount' || ' ' || (payload->>'price') FROM events WHERE id = $1`, id).Scan(&stored))
	require.Equal(t, "9007199254740993 12345678901234567.89", stored)
}

func TestEventBatchAndReplayKeepNumbersExactly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")

	body := batchJSON(eventJSON(a, "won", exactPayload), eventJSON(a, "trade", `{"qty":1.10}`))
	first := b.postJSONWithKey(t, "/v1/events/batch", "key-1", body)
	require.Equal(t, http.StatusAccepted, first.status, string(first.body))
	require.Contains(t, string(first.body), `"payload":`+exactPayload)
	require.Contains(t, string(first.body), `"payload":{"qty":1.10}`)

	single := b.postJSONWithKey(t, "/v1/events", "key-2", eventJSON(a, "won", exactPayload))
	require.Equal(t, http.StatusAccepted, single.status, string(single.body))

	for _, tt := range []struct {
		key, path, body string
		want            response
	}{
		{"key-1", "/v1/events/batch", body, first},
		{"key-2", "/v1/events", eventJSON(a, "won", exactPayload), single},
	} {
		key, path, body, want := tt.key, tt.path, tt.body, tt.want
		retry := b.postJSONWithKey(t, path, key, body)
		require.Equal(t, http.StatusAccepted, retry.status, string(retry.body))
		require.Equal(t, "true", retry.header.Get("Idempotent-Replayed"))
		require.Equal(t, string(want.body), string(retry.body), "a replay answers the same exact numbers")
	}
}

func TestWonAmountsAreBounded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")
	for name, amount := range map[string]string{
		"too many digits":          strings.Repeat("9", 40),
		"too many decimals":        "0." + strings.Repeat("1", 30),
		"an exponent out of range": "1e400",
		"a huge digit string":      strings.Repeat("1", 30*1024),
	} {
		t.Run(name, func(t *testing.T) {
			p := requireProblem(t, b.postJSON(t, "/v1/events", eventJSON(a, "won", `{"amount": `+amount+`}`)), 422, "invalid")
			require.Contains(t, locations(p), "body.payload.amount")
		})
	}
	r := b.postJSON(t, "/v1/events", eventJSON(a, "won", `{"amount": 1.5e3}`))
	require.Equal(t, http.StatusAccepted, r.status, "an exponent within range is fine: %s", r.body)
	require.Zero(t, count(t, b.pool, "events")-1)
}

func TestAccountWonTotalIsAnsweredExactly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")
	// 9007199254740993 + 12345678901234567.89, as the events worker adds them.
	_, err := b.pool.Exec(context.Background(), `UPDATE accounts SET won_count = 2, won_total = 21352878155975560.89 WHERE id = $1`, a)
	require.NoError(t, err)

	r := b.do(t, http.MethodGet, "/v1/accounts/"+a, "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"won_total":21352878155975560.89`)
	r = b.do(t, http.MethodGet, "/v1/accounts", "", "")
	require.Contains(t, string(r.body), `"won_total":21352878155975560.89`)

	// Trailing zeros of the numeric's scale are left out; zero is 0.
	_, err = b.pool.Exec(context.Background(), `UPDATE accounts SET won_total = 1500.100 WHERE id = $1`, a)
	require.NoError(t, err)
	r = b.do(t, http.MethodGet, "/v1/accounts/"+a, "", "")
	require.Contains(t, string(r.body), `"won_total":1500.1,`)
	fresh := b.postJSON(t, "/v1/accounts", `{"name": "Jane Doe"}`)
	require.Contains(t, string(fresh.body), `"won_total":0,`)
}

func TestAccountMetadataNumbersAreKeptExactly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.postJSON(t, "/v1/accounts", `{"name": "John Doe", "metadata": {"customer_id": 18446744073709551615}}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	require.Contains(t, string(r.body), `"metadata":{"customer_id":18446744073709551615}`)
	id := decode[httpapi.Account](t, r).ID
	r = b.do(t, http.MethodGet, "/v1/accounts/"+id, "", "")
	require.Contains(t, string(r.body), `"metadata":{"customer_id":18446744073709551615}`)
}

func TestRulePayloadNumbersAreKeptExactly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	body := `{"name": "r", "event_types": ["won"], "condition": "true", "actions": [
		{"type": "emit_event", "event_type": "won", "payload": {"amount": 9007199254740993}}]}`
	created := b.postJSON(t, "/v1/rules", body)
	require.Equal(t, http.StatusCreated, created.status, string(created.body))
	require.Contains(t, string(created.body), `"payload":{"amount":9007199254740993}`)
	r := b.do(t, http.MethodGet, "/v1/rules/"+decode[httpapi.Rule](t, created).ID, "", "")
	require.Contains(t, string(r.body), `"payload":{"amount":9007199254740993}`)
}

// nested is a JSON object nested depth levels deep: {"a":{"a":{}}} is 3.
func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + `{}` + strings.Repeat(`}`, depth-1)
}

func TestDeepJSONIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")
	deep := nested(jsonvalue.MaxDepth + 1)
	// Arrays keep the deepest one under the payload size limit.
	deepest := `{"a":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}`
	ruleJSON := func(payload string) string {
		return `{"name": "r", "condition": "true", "actions": [{"type": "emit_event", "event_type": "x", "payload": ` + payload + `}]}`
	}
	tests := []struct {
		name, path, body, location string
	}{
		{"event payload", "/v1/events", eventJSON(a, "login", deep), "body.payload"},
		{"event payload 9,998 levels deep", "/v1/events", eventJSON(a, "login", deepest), "body.payload"},
		{"an array in a payload", "/v1/events", eventJSON(a, "login", `{"a":`+strings.Repeat("[", jsonvalue.MaxDepth)+strings.Repeat("]", jsonvalue.MaxDepth)+`}`), "body.payload"},
		{"batch event payload", "/v1/events/batch", batchJSON(eventJSON(a, "login", ""), eventJSON(a, "login", deep)), "body.events[1].payload"},
		{"account metadata", "/v1/accounts", `{"name": "x", "metadata": ` + deep + `}`, "body.metadata"},
		{"rule action payload", "/v1/rules", ruleJSON(deep), "body.actions[0].payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := requireProblem(t, b.postJSONWithKey(t, tt.path, uuid.NewString(), tt.body), 422, "invalid")
			require.Equal(t, []string{tt.location}, locations(p))
		})
	}
	require.Equal(t, 1, count(t, b.pool, "accounts"))
	require.Zero(t, count(t, b.pool, "events"))
	require.Zero(t, count(t, b.pool, "rules"))

	rule := b.createRule(t, `{"name": "ok", "condition": "true"}`)
	p := requireProblem(t, b.patchRule(t, rule.ID, `{"actions": [{"type": "emit_event", "event_type": "x", "payload": `+deep+`}]}`), 422, "invalid")
	require.Equal(t, []string{"body.actions[0].payload"}, locations(p))

	r := b.postJSON(t, "/v1/events", eventJSON(a, "login", nested(jsonvalue.MaxDepth)))
	require.Equal(t, http.StatusAccepted, r.status, "the limit itself is fine: %s", r.body)
}

// A response that cannot be encoded is a 500 problem, not a 200 with a broken
// body: here a stored delivery body nested deeper than encoding/json goes.
func TestUnencodableResponseIsA500Problem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ep := b.createEndpoint(t, endpointJSON("https://example.com/hooks"))
	id := uuid.Must(uuid.NewV7())
	body := `{"data":` + strings.Repeat("[", 10_001) + strings.Repeat("]", 10_001) + `}`
	_, err := b.pool.Exec(context.Background(), `
		INSERT INTO webhook_deliveries (id, endpoint_id, event_type, body) VALUES ($1, $2, 'rule.matched', $3)`,
		id, ep.ID, []byte(body))
	require.NoError(t, err)

	r := b.do(t, http.MethodGet, "/v1/webhook-deliveries/"+id.String(), "", "")
	p := requireProblem(t, r, http.StatusInternalServerError, "internal")
	require.Equal(t, "/v1/webhook-deliveries/"+id.String(), p.Instance)
	require.NotContains(t, string(r.body), "marshal")
	require.NotContains(t, string(r.body), "depth")
}
