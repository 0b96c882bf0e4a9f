package worker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
	"github.com/ctrader/ctrader/internal/worker"
)

// Won amounts a float64 cannot hold are added exactly, and what the rules
// emit and deliver carries them exactly too.
func TestWonTotalsAndFollowUpsKeepNumbersExactly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	ep, _, err := webhook.NewService(b.pool, nil, 0).Create(ctx, webhook.Input{URL: "https://example.com/hooks", Enabled: true})
	require.NoError(t, err)
	createRule(t, b, rule.Input{
		Name: "relay", EventTypes: []string{event.TypeWon}, Condition: `event.payload.amount > 1000`,
		Actions: []rule.Action{
			{Type: rule.ActionEmitEvent, EventType: "bonus", Payload: map[string]any{"ref": json.Number("18446744073709551615"), "rate": json.Number("0.10")}},
			{Type: rule.ActionWebhook, EndpointID: ep.ID.String()},
		},
	})
	w := worker.NewEventsWorker(b.pool, b.engine)

	first := ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": json.Number("9007199254740993")})
	_, err = workEvent(t, b, w, first.ID)
	require.NoError(t, err)
	second := ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": json.Number("12345678901234567.89")})
	_, err = workEvent(t, b, w, second.ID)
	require.NoError(t, err)

	var total string
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT won_total::text FROM accounts WHERE id = $1`, a.ID).Scan(&total))
	require.Equal(t, "21352878155975560.89", total, "the database holds the exact sum")
	got := getAccount(t, b, a.ID)
	require.Equal(t, "21352878155975560.89", got.WonTotal.String())
	require.Equal(t, int64(2), got.WonCount)
	require.Equal(t, json.Number("12345678901234567.89"), getEvent(t, b, second.ID).Payload["amount"], "read back exactly")

	var payloads []string
	rows, err := b.pool.Query(ctx, `SELECT payload::text FROM events WHERE type = 'bonus' ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var p string
		require.NoError(t, rows.Scan(&p))
		payloads = append(payloads, p)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{`{"ref": 18446744073709551615, "rate": 0.10}`, `{"ref": 18446744073709551615, "rate": 0.10}`}, payloads,
		"a static follow-up payload keeps its numbers")

	var body []byte
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT body FROM webhook_deliveries ORDER BY id DESC LIMIT 1`).Scan(&body))
	require.Contains(t, string(body), `"won_total":21352878155975560.89`)
	require.Contains(t, string(body), `"amount":12345678901234567.89`)
}
