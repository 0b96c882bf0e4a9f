package app_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
)

func postJSON(t *testing.T, url string, body any, out any) int {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	if out != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

// The README's walkthrough, through the real server: a big win makes John
// Doe a VIP.
func TestWalkthroughBigWin(t *testing.T) {
	t.Parallel()
	p := start(t, []string{"serve"}, baseEnv(dbtest.URL(t)))
	base := "http://" + p.addr

	var acct struct {
		ID string `json:"id"`
	}
	require.Equal(t, http.StatusCreated, postJSON(t, base+"/v1/accounts", map[string]any{"name": "John Doe"}, &acct))

	var r struct {
		ID      string `json:"id"`
		Version int    `json:"version"`
	}
	require.Equal(t, http.StatusCreated, postJSON(t, base+"/v1/rules", map[string]any{
		"name":        "big win",
		"event_types": []string{"won"},
		"condition":   "event.payload.amount > 1000",
		"actions": []map[string]any{
			{"type": "emit_event", "event_type": "vip_candidate", "payload": map[string]any{"reason": "big win"}},
			{"type": "set_account_status", "status": "vip"},
		},
	}, &r))
	require.Equal(t, 1, r.Version)

	// Testing the rule first shows what the event will do, and does none of it.
	var tested struct {
		Matched bool `json:"matched"`
		Actions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Event  struct {
				Type    string         `json:"type"`
				Payload map[string]any `json:"payload"`
			} `json:"event"`
		} `json:"actions"`
	}
	require.Equal(t, http.StatusOK, postJSON(t, base+"/v1/rules/"+r.ID+"/test", map[string]any{
		"account_id": acct.ID, "event": map[string]any{"type": "won", "payload": map[string]any{"amount": 1500}},
	}, &tested))
	require.True(t, tested.Matched)
	require.Len(t, tested.Actions, 2)
	require.Equal(t, "vip_candidate", tested.Actions[0].Event.Type)
	require.Equal(t, map[string]any{"reason": "big win"}, tested.Actions[0].Event.Payload)
	require.Equal(t, "vip", tested.Actions[1].Status)

	var posted struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	require.Equal(t, http.StatusAccepted, postJSON(t, base+"/v1/events", map[string]any{
		"account_id": acct.ID, "type": "won", "payload": map[string]any{"amount": 1500},
	}, &posted))
	require.Equal(t, "pending", posted.Status)

	type actionResult struct {
		Type      string `json:"type"`
		EventID   string `json:"event_id"`
		EventType string `json:"event_type"`
		Status    string `json:"status"`
	}
	var ev struct {
		Status      string `json:"status"`
		Evaluations []struct {
			RuleID      string         `json:"rule_id"`
			RuleVersion int            `json:"rule_version"`
			Trigger     string         `json:"trigger"`
			Matched     bool           `json:"matched"`
			Actions     []actionResult `json:"actions"`
		} `json:"evaluations"`
	}
	require.Eventually(t, func() bool {
		return getJSON(t, base+"/v1/events/"+posted.ID, &ev) == http.StatusOK && ev.Status == "processed"
	}, 15*time.Second, 50*time.Millisecond, "the won event was never processed")

	require.Len(t, ev.Evaluations, 1)
	e := ev.Evaluations[0]
	require.Equal(t, r.ID, e.RuleID)
	require.Equal(t, 1, e.RuleVersion)
	require.Equal(t, "event", e.Trigger)
	require.True(t, e.Matched)
	require.Len(t, e.Actions, 2)
	require.Equal(t, "emit_event", e.Actions[0].Type)
	require.Equal(t, "vip_candidate", e.Actions[0].EventType)
	require.NotEmpty(t, e.Actions[0].EventID)
	require.Equal(t, actionResult{Type: "set_account_status", Status: "vip"}, actionResult{Type: e.Actions[1].Type, Status: e.Actions[1].Status})

	var followUp struct {
		Type        string `json:"type"`
		CausationID string `json:"causation_id"`
		Depth       int    `json:"depth"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/v1/events/"+e.Actions[0].EventID, &followUp))
	require.Equal(t, "vip_candidate", followUp.Type)
	require.Equal(t, posted.ID, followUp.CausationID)
	require.Equal(t, 1, followUp.Depth)

	var account struct {
		Status   string  `json:"status"`
		WonCount int     `json:"won_count"`
		WonTotal float64 `json:"won_total"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/v1/accounts/"+acct.ID, &account))
	require.Equal(t, "vip", account.Status)
	require.Equal(t, 1, account.WonCount)
	require.Equal(t, 1500.0, account.WonTotal)

	var sinceSignUp struct {
		Items []struct {
			Type string `json:"type"`
		} `json:"items"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/v1/events?account_id="+acct.ID+"&type=account.created", &sinceSignUp))
	require.Len(t, sinceSignUp.Items, 1, "provisioning recorded the sign-up")
	var vipCandidates struct {
		Items []struct{} `json:"items"`
	}
	require.Equal(t, http.StatusOK, getJSON(t, base+"/v1/events?account_id="+acct.ID+"&type=vip_candidate", &vipCandidates))
	require.Len(t, vipCandidates.Items, 1, "the test emitted nothing; the event emitted one")
}
