package bench

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// ingestResult is what posting the events came to, for one worker or, added
// up, for the run.
type ingestResult struct {
	ids       []uuid.UUID
	latencies []time.Duration
	requests  int
	pushed    int // 503 answers with Retry-After, waited out and sent again
	accepted  int
	errors    int
	byStatus  map[string]int
	firstErr  string
	wall      time.Duration
	stopped   bool
	timedOut  bool
}

func (res *ingestResult) report() Ingest {
	in := Ingest{
		Accepted: res.accepted, Requests: res.requests, PushedBack: res.pushed, Errors: res.errors, FirstError: res.firstErr,
		Seconds: res.wall.Seconds(), Latency: summarize(res.latencies), StoppedEarly: res.stopped, TimedOut: res.timedOut,
	}
	if len(res.byStatus) > 0 {
		in.ErrorsByStatus = res.byStatus
	}
	in.EventsPerSecond = perSecond(res.accepted, in.Seconds)
	return in
}

// slot is one request to send and when it was meant to be sent.
type slot struct {
	index int
	at    time.Time
}

// errTooManyFailures stops the ingest once more than 1% of its requests
// have failed.
var errTooManyFailures = errors.New("more than 1% of the requests failed")

// ingest posts the events with o.Concurrency requests in flight. Without a
// rate each request's latency runs from its own start; with one, requests are
// due on a fixed schedule and latency runs from the due time, so a slow
// server cannot hide its slowness by delaying the requests that would have
// measured it.
func (r *runner) ingest(ctx context.Context, accounts []uuid.UUID) *ingestResult {
	per := max(r.o.Batch, 1)
	total := (r.o.Events + per - 1) / per
	path := "/v1/events"
	if r.o.Batch > 0 {
		path = "/v1/events/batch"
	}

	outs := make([]ingestResult, r.o.Concurrency)
	var failures atomic.Int64
	begin := time.Now()

	var next func(context.Context) (slot, bool)
	stopPacing := func() {}
	if r.o.Rate > 0 {
		interval := time.Duration(float64(per) / r.o.Rate * float64(time.Second))
		next, stopPacing = paced(ctx, begin, total, interval, r.o.Concurrency*4)
	} else {
		index := counter(total)
		next = func(ctx context.Context) (slot, bool) {
			i, ok := index(ctx)
			return slot{index: i, at: time.Now()}, ok
		}
	}

	seed := uint64(time.Now().UnixNano())
	err := work(ctx, r.o.Concurrency, next, func(w int) func(context.Context, slot) error {
		out := &outs[w]
		out.byStatus = map[string]int{}
		rng := mrand.New(mrand.NewPCG(seed, uint64(w)))
		var body []byte
		return func(ctx context.Context, s slot) error {
			n := min(per, r.o.Events-s.index*per)
			body = eventsBody(body[:0], rng, accounts, n, r.o.Batch > 0)
			status, ids, msg, retryAfter := r.post(ctx, path, body)
			// The server pushing back (503 with Retry-After) stored nothing:
			// wait as told and send the same request again, as a client
			// should; the wait counts in its latency.
			for status == http.StatusServiceUnavailable && retryAfter > 0 {
				out.pushed++
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(retryAfter):
				}
				status, ids, msg, retryAfter = r.post(ctx, path, body)
			}
			latency := time.Since(s.at)
			if status == 0 && ctx.Err() != nil {
				return nil // cut short by the timeout or an early stop: neither success nor failure
			}
			out.requests++
			if status >= 200 && status < 300 {
				out.ids = append(out.ids, ids...)
				out.accepted += len(ids)
				out.latencies = append(out.latencies, latency)
				return nil
			}
			key := strconv.Itoa(status)
			if status == 0 {
				key = "transport"
			}
			out.byStatus[key]++
			if out.firstErr == "" {
				out.firstErr = msg
			}
			if failures.Add(1)*100 > int64(total) {
				return errTooManyFailures
			}
			return nil
		}
	})
	stopPacing()

	res := &ingestResult{wall: time.Since(begin), byStatus: map[string]int{}, stopped: errors.Is(err, errTooManyFailures)}
	res.timedOut = ctx.Err() != nil
	for i := range outs {
		res.add(&outs[i])
	}
	return res
}

// add counts a worker's requests in res; a worker counts its failed requests
// by status only.
func (res *ingestResult) add(o *ingestResult) {
	res.ids = append(res.ids, o.ids...)
	res.latencies = append(res.latencies, o.latencies...)
	res.requests += o.requests
	res.pushed += o.pushed
	res.accepted += o.accepted
	for k, v := range o.byStatus {
		res.byStatus[k] += v
		res.errors += v
	}
	if res.firstErr == "" {
		res.firstErr = o.firstErr
	}
}

// paced hands out the slots of total requests, due one interval apart from
// begin, holding up to buffer that are due and not yet taken. stop ends the
// pacing and waits until it has.
func paced(ctx context.Context, begin time.Time, total int, interval time.Duration, buffer int) (next func(context.Context) (slot, bool), stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	due := make(chan slot, buffer)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(due)
		tick := time.NewTicker(max(interval, time.Millisecond))
		defer tick.Stop()
		for i := 0; i < total; {
			at := begin.Add(time.Duration(i) * interval)
			if time.Now().Before(at) {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				continue
			}
			select {
			case <-ctx.Done():
				return
			case due <- slot{index: i, at: at}:
				i++
			}
		}
	}()
	next = func(ctx context.Context) (slot, bool) {
		select {
		case <-ctx.Done():
			return slot{}, false
		case s, ok := <-due:
			return s, ok
		}
	}
	return next, func() { cancel(); <-done }
}

// maxAmount bounds the amounts of the won events a run posts; the rules'
// thresholds spread over 1 to maxAmount.
const maxAmount = 2000

// drawWon draws one won event: an account of accounts and an amount from 1
// to maxAmount.
func drawWon(rng *mrand.Rand, accounts []uuid.UUID) (accountID uuid.UUID, amount int) {
	return accounts[rng.IntN(len(accounts))], 1 + rng.IntN(maxAmount)
}

// eventsBody appends the JSON of n won events, as one event or as a batch.
func eventsBody(b []byte, rng *mrand.Rand, accounts []uuid.UUID, n int, batch bool) []byte {
	if batch {
		b = append(b, `{"events":[`...)
	}
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		accountID, amount := drawWon(rng, accounts)
		b = append(b, `{"account_id":"`...)
		b = append(b, accountID.String()...)
		b = append(b, `","type":"won","payload":{"amount":`...)
		b = strconv.AppendInt(b, int64(amount), 10)
		b = append(b, `}}`...)
	}
	if batch {
		b = append(b, `]}`...)
	}
	return b
}
