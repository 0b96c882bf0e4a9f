package ratelimit

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBurstThenRefuse(t *testing.T) {
	t.Parallel()
	l := New(1, 3)
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }

	for i := range 3 {
		d := l.Allow("a")
		require.True(t, d.Allowed, "request %d is within the burst", i)
		require.Equal(t, 2-i, d.Remaining)
	}
	d := l.Allow("a")
	require.False(t, d.Allowed)
	require.Equal(t, 0, d.Remaining)
	require.InDelta(t, time.Second.Seconds(), d.RetryAfter.Seconds(), 0.01)

	h := http.Header{}
	d.SetHeaders(h.Set)
	require.Equal(t, "3", h.Get("RateLimit-Limit"))
	require.Equal(t, "0", h.Get("RateLimit-Remaining"))
	require.Equal(t, "3", h.Get("RateLimit-Reset"))
	require.Equal(t, "1", h.Get("Retry-After"))

	require.True(t, l.Allow("b").Allowed, "keys have their own buckets")

	now = now.Add(time.Second)
	require.True(t, l.Allow("a").Allowed, "a token comes back after a second")
	require.False(t, l.Allow("a").Allowed, "a refused request does not spend a token, but there is none left")
}

func TestIdleBucketsAreDropped(t *testing.T) {
	t.Parallel()
	l := New(10, 10)
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	l.Allow("a")
	l.Allow("b")
	require.Len(t, l.buckets, 2)
	now = now.Add(time.Hour)
	l.Allow("c")
	require.Len(t, l.buckets, 1)
}

func TestNilLimiterAllows(t *testing.T) {
	t.Parallel()
	var l *Limiter = New(0, 10)
	require.Nil(t, l)
	d := l.Allow("x")
	require.True(t, d.Allowed)
	h := http.Header{}
	d.SetHeaders(h.Set)
	require.Empty(t, h)
}
