package event

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/idempotency"
)

// groupTimeout bounds a shared transaction: it outlives the request that
// leads it, whose client may have gone.
const groupTimeout = 30 * time.Second

// committer gathers the single events posted at the same time into shared
// transactions: one transaction stores the events of several requests and
// the jobs that process them (one job for up to jobs.EventsPerJob events),
// and every request is answered after its commit. Durability is unchanged —
// no request is answered before the transaction holding its event commits —
// while a stream of single POSTs costs a commit, and a River job, per group
// rather than per event.
//
// Nothing waits for a group to fill. A request that arrives while no group
// is being committed leads one at once; the requests that arrive meanwhile
// wait, and when the group commits the oldest of them leads the next, taking
// the others along. Under light load every request is a group of its own.
//
// A group whose transaction fails for a reason other than the database
// being unavailable (an unknown account's foreign key, say) is not the
// others' problem: each of its requests then runs alone, as it would have
// without grouping, and gets its own answer.
type committer struct {
	s       *Service
	max     int // events in one group
	leaders int // groups committing at once

	mu      sync.Mutex
	waiting []*single
	running int // groups committing
}

// single is one posted event waiting for its group.
type single struct {
	ev       *Event
	in       Input
	location string
	idem     *idempotency.Request
	done     chan groupResult // the outcome, from the group that took it
	lead     chan struct{}    // closed when it is to lead the next group
}

type groupResult struct {
	events   []*Event
	replayed bool
	err      error
}

// ingest stores one validated event in some group and returns that group's
// outcome for it.
func (c *committer) ingest(ctx context.Context, it *single) ([]*Event, bool, error) {
	c.mu.Lock()
	if c.running < c.leaders {
		c.running++
		c.mu.Unlock()
		return c.lead(ctx, it)
	}
	c.waiting = append(c.waiting, it)
	c.mu.Unlock()

	cancelled := ctx.Done()
	for {
		select {
		case r := <-it.done:
			return r.events, r.replayed, r.err
		case <-it.lead:
			return c.lead(ctx, it)
		case <-cancelled:
			c.mu.Lock()
			i := slices.Index(c.waiting, it)
			if i >= 0 {
				c.waiting = slices.Delete(c.waiting, i, i+1)
			}
			c.mu.Unlock()
			if i >= 0 {
				return nil, false, ctx.Err()
			}
			cancelled = nil // taken into a group, or chosen to lead one
		}
	}
}

// lead commits a group of it and the oldest waiting requests that fit, then
// hands the lead to the oldest request still waiting, if any.
func (c *committer) lead(ctx context.Context, it *single) ([]*Event, bool, error) {
	c.mu.Lock()
	n := min(len(c.waiting), c.max-1)
	group := append([]*single{it}, c.waiting[:n]...)
	c.waiting = slices.Delete(c.waiting, 0, n)
	c.mu.Unlock()

	// The group's transaction is the others' too: it does not end with this
	// request's client.
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	results := c.s.commitGroup(gctx, group)
	cancel()

	c.mu.Lock()
	if len(c.waiting) > 0 {
		next := c.waiting[0]
		c.waiting = slices.Delete(c.waiting, 0, 1)
		close(next.lead)
	} else {
		c.running--
	}
	c.mu.Unlock()

	for i, other := range group[1:] {
		other.done <- results[i+1]
	}
	return results[0].events, results[0].replayed, results[0].err
}

// commitGroup stores the group's events in one transaction and returns each
// request's outcome. Requests whose Idempotency-Key was already claimed, and
// every request of a group whose transaction fails for a reason of its own,
// are run alone.
func (s *Service) commitGroup(ctx context.Context, group []*single) []groupResult {
	if len(group) == 1 {
		// A group of one is the request alone: its own path names its
		// errors at once, with no transaction to redo.
		return []groupResult{s.alone(ctx, group[0])}
	}
	results := make([]groupResult, len(group))
	alone := make([]bool, len(group))
	// The transaction is on the path of every request in the group.
	err := db.InTxPipelined(ctx, s.pool, func(tx pgx.Tx) error {
		var claims []*idempotency.Request
		var claimants []int
		for i, it := range group {
			if it.idem != nil {
				claims = append(claims, it.idem)
				claimants = append(claimants, i)
			}
		}
		claimed, err := idempotency.ClaimMany(ctx, tx, claims)
		if err != nil {
			return err
		}
		events := make([]*Event, 0, len(group))
		var done []*idempotency.Request
		var responses []any
		for k, i := range claimants {
			if !claimed[k] {
				alone[i] = true // a retry, a mismatch or a key in flight
			}
		}
		for i, it := range group {
			if alone[i] {
				continue
			}
			events = append(events, it.ev)
			results[i] = groupResult{events: []*Event{it.ev}}
			if it.idem != nil {
				done = append(done, it.idem)
				responses = append(responses, results[i].events)
			}
		}
		if len(events) == 0 {
			return nil
		}
		// Neither the INSERT nor River's NOTIFY is read: they go with
		// River's job insert and the COMMIT.
		if err := s.insert(db.DeferExec(ctx), tx, events); err != nil {
			return err
		}
		return idempotency.CompleteMany(ctx, tx, done, responses)
	})
	switch {
	case err == nil:
	case apperr.CodeOf(err) == apperr.Unavailable: // InTx translated it
		// Nothing can be stored now; each client retries with its key.
		for i := range results {
			results[i] = groupResult{err: wrap("ingest events", err)}
		}
		return results
	default:
		// One request's input broke the transaction (an account that does
		// not exist, say): each runs alone and gets its own answer.
		for i := range alone {
			alone[i] = true
		}
	}
	for i, it := range group {
		if alone[i] {
			results[i] = s.alone(ctx, it)
		}
	}
	return results
}

// alone runs one request in a transaction of its own, as Ingest does for a
// batch: the path that names an unknown account and replays a key.
func (s *Service) alone(ctx context.Context, it *single) groupResult {
	events, replayed, err := s.ingestTx(ctx, []Input{it.in}, []*Event{it.ev}, func(int) string { return it.location }, it.idem)
	return groupResult{events: events, replayed: replayed, err: err}
}
