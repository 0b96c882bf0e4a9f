package evaluation_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/evaluation"
)

// BenchmarkInsertNew measures recording evaluations against five rules in
// one statement: one event's, and those of a batch of the size the events
// worker takes under a stream of single POSTs.
func BenchmarkInsertNew(b *testing.B) {
	for _, events := range []int{1, 40} {
		b.Run(fmt.Sprintf("events=%d", events), func(b *testing.B) { benchmarkInsertNew(b, events) })
	}
}

func benchmarkInsertNew(b *testing.B, events int) {
	pool := dbtest.New(b)
	ctx := context.Background()
	accountID := uuid.Must(uuid.NewV7())
	ruleIDs := make([]uuid.UUID, 5)
	_, err := pool.Exec(ctx, `INSERT INTO accounts (id, name) VALUES ($1, 'bench')`, accountID)
	if err != nil {
		b.Fatal(err)
	}
	for i := range ruleIDs {
		ruleIDs[i] = uuid.Must(uuid.NewV7())
		if _, err := pool.Exec(ctx, `INSERT INTO rules (id, name, condition) VALUES ($1, $2, 'true')`, ruleIDs[i], ruleIDs[i].String()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		eventIDs := make([]uuid.UUID, events)
		for i := range eventIDs {
			eventIDs[i] = uuid.Must(uuid.NewV7())
		}
		if _, err := pool.Exec(ctx, `INSERT INTO events (id, account_id, type, payload, occurred_at)
			SELECT id, $2, 'won', '{}', now() FROM unnest($1::uuid[]) id`, eventIDs, accountID); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		evals := make([]*evaluation.Evaluation, 0, events*len(ruleIDs))
		for i := range eventIDs {
			for _, r := range ruleIDs {
				evals = append(evals, &evaluation.Evaluation{ID: uuid.Must(uuid.NewV7()), RuleID: r, RuleVersion: 1, AccountID: accountID,
					EventID: &eventIDs[i], Trigger: evaluation.TriggerEvent, StartedAt: now, EvaluatedAt: now})
			}
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			stored, err := evaluation.InsertNew(ctx, tx, evals)
			if err == nil && len(stored) != len(evals) {
				b.Fatalf("stored %d of %d", len(stored), len(evals))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*events*len(ruleIDs)), "µs/evaluation")
}
