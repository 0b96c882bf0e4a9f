package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/metrics"
)

func TestRetryWait(t *testing.T) {
	t.Parallel()
	last := RetrySchedule[len(RetrySchedule)-1]
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		want       time.Duration
	}{
		{"first attempt", 1, 0, 5 * time.Second},
		{"second attempt", 2, 0, 5 * time.Minute},
		{"last scheduled", len(RetrySchedule), 0, 24 * time.Hour},
		{"past the schedule", MaxAttempts + 3, 0, last},
		{"no attempt counted yet", 0, 0, RetrySchedule[0]},
		{"longer Retry-After wins", 1, 2 * time.Minute, 2 * time.Minute},
		{"shorter Retry-After is ignored", 3, time.Second, 30 * time.Minute},
		{"capped Retry-After", 2, maxRetryAfter, maxRetryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, RetryWait(tt.attempt, tt.retryAfter))
		})
	}
	require.Len(t, RetrySchedule, MaxAttempts-1)
}

func TestOutcomeStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		outcome Outcome
		status  string
		label   string
	}{
		{OutcomeRetried, StatusPending, metrics.WebhookRetried},
		{OutcomeSucceeded, StatusSucceeded, metrics.WebhookSucceeded},
		{OutcomeFailed, StatusFailed, metrics.WebhookFailed},
	}
	for _, tt := range tests {
		require.Equal(t, tt.status, tt.outcome.status(), "the delivery status %s leaves", tt.outcome)
		require.Equal(t, tt.label, string(tt.outcome), "the metric label of %s", tt.outcome)
	}
}

func TestDescribeFailure(t *testing.T) {
	t.Parallel()
	long := "x" + strings.Repeat("é", 300) // 601 bytes; byte 500 falls inside a character
	tests := []struct {
		name string
		res  Result
		want string
	}{
		{"server error", Result{Status: http.StatusInternalServerError}, "answered 500"},
		{"client error", Result{Status: http.StatusTooManyRequests}, "answered 429"},
		{"redirect", Result{Status: http.StatusFound}, "answered 302: redirects are not followed"},
		{"permanent redirect", Result{Status: http.StatusPermanentRedirect}, "answered 308: redirects are not followed"},
		{"no response", Result{Err: errors.New("connection refused")}, "connection refused"},
		{"the error wins over a status", Result{Status: 200, Err: errors.New("body read failed")}, "body read failed"},
		{"a URL's query is redacted",
			Result{Err: errors.New(`Post "https://hooks.example.com/in?token=s3cret": timeout`)},
			`Post "https://hooks.example.com/in?token=redacted": timeout`},
		{"long errors are cut on a character boundary", Result{Err: errors.New(long)}, long[:499]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := describeFailure(tt.res)
			require.Equal(t, tt.want, got)
			require.LessOrEqual(t, len(got), 500)
			require.True(t, utf8.ValidString(got))
		})
	}
}
