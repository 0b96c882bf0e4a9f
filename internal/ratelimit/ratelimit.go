// Package ratelimit limits how fast each client may write, with one token
// bucket per client key, and describes the limit in response headers.
package ratelimit

import (
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter keeps one bucket per key. Buckets idle for a while are dropped, so
// memory stays bounded by the number of recently active clients.
type Limiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a limiter allowing perSecond requests per key with bursts of
// burst. perSecond <= 0 returns nil: a nil Limiter allows everything.
func New(perSecond float64, burst int) *Limiter {
	if perSecond <= 0 {
		return nil
	}
	return &Limiter{
		limit: rate.Limit(perSecond), burst: max(burst, 1), idle: 10 * time.Minute,
		now: time.Now, buckets: make(map[string]*bucket),
	}
}

// Decision is the outcome of one request.
type Decision struct {
	Allowed    bool
	Limit      int           // the burst: requests allowed at once
	Remaining  int           // requests left now
	RetryAfter time.Duration // when not allowed: until one request is allowed
	Reset      time.Duration // until the bucket is full again
}

// Allow takes one token from key's bucket if it has one.
func (l *Limiter) Allow(key string) Decision {
	if l == nil {
		return Decision{Allowed: true}
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.idle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	d := Decision{Limit: l.burst}
	r := b.lim.ReserveN(now, 1)
	if wait := r.DelayFrom(now); wait > 0 {
		r.CancelAt(now)
		d.RetryAfter = wait
	} else {
		d.Allowed = true
	}
	tokens := b.lim.TokensAt(now)
	d.Remaining = max(int(math.Floor(tokens)), 0)
	d.Reset = time.Duration((float64(l.burst) - tokens) / float64(l.limit) * float64(time.Second))
	return d
}

// SetHeaders describes d in RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (seconds), plus Retry-After when the request was refused,
// through set (such as http.Header.Set).
func (d Decision) SetHeaders(set func(key, value string)) {
	if d.Limit == 0 {
		return
	}
	set("RateLimit-Limit", strconv.Itoa(d.Limit))
	set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	set("RateLimit-Reset", strconv.Itoa(int(math.Ceil(d.Reset.Seconds()))))
	if !d.Allowed {
		set("Retry-After", strconv.Itoa(max(int(math.Ceil(d.RetryAfter.Seconds())), 1)))
	}
}
