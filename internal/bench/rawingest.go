package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/jobs"
)

// RawIngestQueue is the River queue the raw ingest reference and the pgbench
// script put their jobs on. No ctrader worker serves it, so the jobs are
// written exactly as the API writes them but never worked; the reference
// deletes them, with its events and accounts, when it is done.
const RawIngestQueue = "bench_raw_ingest"

// queueInserter inserts every job on queue rather than the one its args
// name; the rest of the row (kind, args, attempts, priority) is unchanged.
type queueInserter struct {
	client *river.Client[pgx.Tx]
	queue  string
}

func (q queueInserter) opts(o *river.InsertOpts) *river.InsertOpts {
	out := river.InsertOpts{}
	if o != nil {
		out = *o
	}
	out.Queue = q.queue
	return &out
}

func (q queueInserter) params(ps []river.InsertManyParams) []river.InsertManyParams {
	out := make([]river.InsertManyParams, len(ps))
	for i, p := range ps {
		out[i] = river.InsertManyParams{Args: p.Args, InsertOpts: q.opts(p.InsertOpts)}
	}
	return out
}

func (q queueInserter) InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	return q.client.InsertTx(ctx, tx, args, q.opts(opts))
}

func (q queueInserter) InsertManyTx(ctx context.Context, tx pgx.Tx, ps []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	return q.client.InsertManyTx(ctx, tx, q.params(ps))
}

func (q queueInserter) InsertManyFastTx(ctx context.Context, tx pgx.Tx, ps []river.InsertManyParams) (int, error) {
	return q.client.InsertManyFastTx(ctx, tx, q.params(ps))
}

var _ jobs.Inserter = queueInserter{}

// runRawIngest is the ingest reference: the transactions of the raw
// reference (an event row and its River job, through event.Insert), with no
// processing competing for the machine, because their jobs go to a queue
// nothing works. It removes what it wrote before it returns, so the server
// is left as it was.
func (r *runner) runRawIngest(ctx, parent context.Context) *RawIngest {
	ri := &RawIngest{Order: r.o.RawOrder, Queue: RawIngestQueue}
	accounts, err := rawAccounts(ctx, r.pool, r.o.Accounts, r.runID, "raw_ingest")
	if err != nil {
		ri.Error = err.Error()
		return ri
	}
	defer func() {
		cctx, cancel := context.WithTimeout(parent, 2*time.Minute)
		defer cancel()
		if err := removeRawIngest(cctx, r.pool, accounts); err != nil {
			r.note("the raw ingest reference's rows could not be removed: %v; remove them with DELETE FROM river_job WHERE queue = '%s' and by the accounts with metadata->>'bench_run' = '%s'", err, RawIngestQueue, r.runID)
			return
		}
		ri.Removed = true
	}()
	client, err := newInserter(r.pool)
	if err != nil {
		ri.Error = err.Error()
		return ri
	}
	r.log.Info("raw ingest reference: writing events straight to Postgres, with their jobs on a queue nothing works",
		"events", r.o.Events, "queue", RawIngestQueue)
	if ri.RawWrites, _, err = r.writeRaw(ctx, queueInserter{client: client, queue: RawIngestQueue}, accounts, "raw ingest reference"); err != nil {
		ri.Error = err.Error()
	}
	return ri
}

// removeRawIngest deletes the raw ingest reference's jobs, events and
// accounts in one transaction. Only the bench writes to RawIngestQueue.
func removeRawIngest(ctx context.Context, pool *pgxpool.Pool, accounts []uuid.UUID) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM river_job WHERE queue = $1`, RawIngestQueue); err != nil {
			return fmt.Errorf("delete jobs: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM events WHERE account_id = ANY($1)`, accounts); err != nil {
			return fmt.Errorf("delete events: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM accounts WHERE id = ANY($1)`, accounts); err != nil {
			return fmt.Errorf("delete accounts: %w", err)
		}
		return nil
	})
}
