package event_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/worker"
)

// BenchmarkInsert measures the ingest transaction: event rows and their River
// jobs committed together, one event or a batch per transaction.
func BenchmarkInsert(b *testing.B) {
	pool := dbtest.New(b)
	ctx := context.Background()
	client, err := worker.NewClient(pool, dbtest.Logger(b), worker.Options{})
	if err != nil {
		b.Fatal(err)
	}
	accountID := uuid.Must(uuid.NewV7())
	if _, err := pool.Exec(ctx, `INSERT INTO accounts (id, name, status, activated_at) VALUES ($1, 'bench', 'active', now())`, accountID); err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				events := make([]*event.Event, size)
				for i := range events {
					e, err := event.New(event.Input{AccountID: accountID, Type: "won", Payload: map[string]any{"amount": 1500.0}}, event.Now())
					if err != nil {
						b.Fatal(err)
					}
					events[i] = e
				}
				if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return event.Insert(ctx, tx, client, events) }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
