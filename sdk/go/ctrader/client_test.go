package ctrader_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/sdk/go/ctrader"
)

// An error answer that is not a problem document (from a proxy, say) is a
// *ProblemError too, with what the answer says.
func TestAnswerThatIsNotAProblemIsAProblemError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Retry-After", "7")
		w.Header().Set("X-Request-Id", "req-1")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("upstream down\n"))
	}))
	t.Cleanup(srv.Close)

	c, err := ctrader.New(srv.URL)
	require.NoError(t, err)
	_, err = c.GetAccountWithResponse(context.Background(), uuid.Must(uuid.NewV7()))
	var problem *ctrader.ProblemError
	require.ErrorAs(t, err, &problem)
	require.Equal(t, &ctrader.ProblemError{
		Type:       "about:blank",
		Title:      "Bad Gateway",
		Status:     http.StatusBadGateway,
		Detail:     "upstream down",
		Instance:   problem.Instance,
		RequestID:  "req-1",
		RetryAfter: 7 * time.Second,
	}, problem)
	require.Contains(t, problem.Instance, "/v1/accounts/")
	require.Equal(t, "ctrader: 502 Bad Gateway: upstream down", err.Error())
}

func TestProblemErrorSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	err := error(&ctrader.ProblemError{
		Status: 422, Code: "invalid", Detail: "invalid rule",
		Errors: []ctrader.FieldError{
			{Location: "body.name", Message: "must not be blank"},
			{Location: "body.condition", Message: "undeclared reference"},
			{Location: "body.actions[0].type", Message: "unknown"},
			{Location: "body.actions[1].type", Message: "unknown"},
			{Location: "body.actions[2].type", Message: "unknown"},
		},
	})
	require.Equal(t, "ctrader: 422 invalid: invalid rule; body.name: must not be blank; "+
		"body.condition: undeclared reference; body.actions[0].type: unknown; and 2 more", err.Error())
}

// WaitForEvent ends with its context.
func TestWaitForEventEndsWithItsContext(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"id":"0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b","account_id":"0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b",` +
			`"type":"won","payload":{},"occurred_at":"2026-01-01T00:00:00Z","received_at":"2026-01-01T00:00:00Z",` +
			`"status":"pending","depth":0,"evaluations":[]}`))
	}))
	t.Cleanup(srv.Close)

	c, err := ctrader.New(srv.URL)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.WaitForEvent(ctx, uuid.Must(uuid.NewV7()))
	require.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
}
