package webhook

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{" 7 ", 7 * time.Second},
		{"-5", 0},
		{"86400", maxRetryAfter},
		{"90000", maxRetryAfter},
		// Large numbers of seconds overflowed time.Duration: these became
		// a 5 s and a 0 s wait.
		{"18446744074", maxRetryAfter},
		{"9227000000", maxRetryAfter},
		{"99999999999999999999999", maxRetryAfter},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter},
		{"soon", 0},
		{"1.5", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.header, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.header, got, tt.want)
		}
	}
}

// FuzzRetryAfter holds the parser to its promise for any header a receiver
// may send: a wait from zero to maxRetryAfter, and for a whole number of
// seconds exactly that many, capped.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "5", "120", "-1", "18446744074", "9227000000", "1e3", "+5",
		"Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "9223372036854775807", "\x00"} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, h string) {
		got := retryAfter(h, now)
		if got < 0 || got > maxRetryAfter {
			t.Fatalf("retryAfter(%q) = %v, outside [0, %v]", h, got, maxRetryAfter)
		}
		secs, err := strconv.ParseInt(strings.TrimSpace(h), 10, 64)
		if err != nil {
			return
		}
		want := time.Duration(0)
		switch {
		case secs >= int64(maxRetryAfter/time.Second):
			want = maxRetryAfter
		case secs > 0:
			want = time.Duration(secs) * time.Second
		}
		if got != want {
			t.Fatalf("retryAfter(%q) = %v, want %v", h, got, want)
		}
	})
}
