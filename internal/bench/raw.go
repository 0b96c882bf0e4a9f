package bench

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
)

// runRaw is the reference run: the transactions POST /v1/events (or /batch)
// commits, written straight to Postgres with no HTTP in between. It uses
// accounts of its own, created active in one COPY, so the HTTP run's checks
// never see its events. The jobs it inserts are real: the server's workers
// process them, and runRaw waits until they have.
func (r *runner) runRaw(ctx context.Context) *Raw {
	raw := &Raw{Order: r.o.RawOrder}
	accounts, err := rawAccounts(ctx, r.pool, r.o.Accounts, r.runID, "raw")
	if err != nil {
		raw.Error = err.Error()
		return raw
	}
	client, err := newInserter(r.pool)
	if err != nil {
		raw.Error = err.Error()
		return raw
	}
	r.log.Info("raw reference: writing events straight to Postgres", "events", r.o.Events)
	var ids []uuid.UUID
	if raw.RawWrites, ids, err = r.writeRaw(ctx, client, accounts, "raw reference"); err != nil {
		raw.Error = err.Error()
	}

	r.log.Info("raw reference: waiting for the server to process its events")
	began := time.Now()
	left, timedOut, err := r.waitProcessed(ctx, ids, "the raw run's events")
	raw.DrainSeconds = time.Since(began).Seconds()
	raw.Drained = err == nil && !timedOut && left == 0
	return raw
}

// writeRaw writes the references' transactions through inserter on
// accounts, with the run's concurrency, and returns what it wrote and the
// ids of the events; label names the reference in notes.
func (r *runner) writeRaw(ctx context.Context, inserter jobs.Inserter, accounts []uuid.UUID, label string) (RawWrites, []uuid.UUID, error) {
	w := RawWrites{Concurrency: r.o.Concurrency, Batch: r.o.Batch}
	if err := warmPool(ctx, r.pool, r.o.Concurrency); err != nil {
		return w, nil, err
	}
	res, err := rawInsert(ctx, r.pool, inserter, accounts, r.o.Events, r.o.Concurrency, r.o.Batch)
	if errors.Is(err, context.DeadlineExceeded) {
		err = nil
	}
	w.Events, w.Transactions = res.events, res.transactions
	w.Seconds = res.wall.Seconds()
	w.EventsPerSecond = perSecond(res.events, w.Seconds)
	w.TransactionsPerSecond = perSecond(res.transactions, w.Seconds)
	w.Latency = summarize(res.latencies)
	if res.events < r.o.Events && err == nil {
		r.note("the %s wrote %d of %d events before the timeout", label, res.events, r.o.Events)
	}
	return w, res.ids, err
}

// warmPool opens n connections before the clock starts, as the server's
// pool has them open before its requests arrive.
func warmPool(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("open connections: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

// newInserter returns an insert-only River client: no workers, no queues.
func newInserter(pool *pgxpool.Pool) (*river.Client[pgx.Tx], error) {
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{})
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}

// rawAccounts creates k provisioned accounts directly, without their
// provisioning jobs, named and marked with the run and what they are for.
func rawAccounts(ctx context.Context, pool *pgxpool.Pool, k int, runID, purpose string) ([]uuid.UUID, error) {
	ins := make([]account.CreateInput, k)
	metadata := map[string]any{"bench_run": runID, purpose: true}
	for i := range ins {
		ins[i] = account.CreateInput{Name: fmt.Sprintf("bench %s %s %d", runID, purpose, i), Metadata: metadata}
	}
	ids, err := account.CopyActive(ctx, pool, ins)
	if err != nil {
		return nil, fmt.Errorf("create raw accounts: %w", err)
	}
	return ids, nil
}

type rawResult struct {
	ids          []uuid.UUID
	events       int
	transactions int
	latencies    []time.Duration
	wall         time.Duration
}

// rawInsert writes n won events over accounts with concurrency transactions
// in flight, batch events per transaction (0: one). Each transaction is what
// the API commits for an accepted request: event.Insert, the function the
// API's handlers call, stores the rows and their River jobs (one INSERT and
// InsertTx for one event; COPY and InsertManyFastTx for several). The API
// also checks that the accounts exist, which is part of what it costs.
func rawInsert(ctx context.Context, pool *pgxpool.Pool, inserter jobs.Inserter, accounts []uuid.UUID, n, concurrency, batch int) (rawResult, error) {
	per := max(batch, 1)
	total := (n + per - 1) / per

	type workerOut struct {
		ids       []uuid.UUID
		latencies []time.Duration
	}
	outs := make([]workerOut, concurrency)
	seed := uint64(time.Now().UnixNano())
	begin := time.Now()
	err := work(ctx, concurrency, counter(total), func(w int) func(context.Context, int) error {
		out := &outs[w]
		rng := mrand.New(mrand.NewPCG(seed, uint64(w)))
		return func(ctx context.Context, i int) error {
			count := min(per, n-i*per)
			now := event.Now()
			events := make([]*event.Event, count)
			for j := range events {
				accountID, amount := drawWon(rng, accounts)
				e, err := event.New(event.Input{
					AccountID: accountID,
					Type:      "won",
					Payload:   map[string]any{"amount": amount},
				}, now)
				if err != nil {
					return err
				}
				events[j] = e
			}
			t0 := time.Now()
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return event.Insert(ctx, tx, inserter, events)
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil // cut short: the run is ending
				}
				return err
			}
			out.latencies = append(out.latencies, time.Since(t0))
			for _, e := range events {
				out.ids = append(out.ids, e.ID)
			}
			return nil
		}
	})
	res := rawResult{wall: time.Since(begin)}
	for _, o := range outs {
		res.ids = append(res.ids, o.ids...)
		res.events += len(o.ids)
		res.transactions += len(o.latencies)
		res.latencies = append(res.latencies, o.latencies...)
	}
	if err != nil {
		return res, err
	}
	return res, context.Cause(ctx)
}
