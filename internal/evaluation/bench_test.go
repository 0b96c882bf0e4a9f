package evaluation_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/evaluation"
)

// BenchmarkInsertNew measures recording the evaluations of one event against
// five rules in one statement.
func BenchmarkInsertNew(b *testing.B) {
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
		eventID := uuid.Must(uuid.NewV7())
		if _, err := pool.Exec(ctx, `INSERT INTO events (id, account_id, type, payload, occurred_at) VALUES ($1, $2, 'won', '{}', now())`, eventID, accountID); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		evals := make([]*evaluation.Evaluation, len(ruleIDs))
		for i, r := range ruleIDs {
			id := eventID
			evals[i] = &evaluation.Evaluation{ID: uuid.Must(uuid.NewV7()), RuleID: r, RuleVersion: 1, AccountID: accountID,
				EventID: &id, Trigger: evaluation.TriggerEvent, StartedAt: now, EvaluatedAt: now}
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
}
