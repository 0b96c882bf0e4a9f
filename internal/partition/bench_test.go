package partition_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/partition"
)

// BenchmarkRemoveAWeek compares the two ways of removing a week of events:
// detaching and dropping its partition, as retention does, and deleting its
// rows, as a table without partitions would have to. Each run fills a week with rows
// events (payloads of about 200 bytes), then times the removal alone and
// reports the WAL it wrote. Run it once per size:
//
//	go test ./internal/partition -run '^$' -bench RemoveAWeek -benchtime 1x
func BenchmarkRemoveAWeek(b *testing.B) {
	for _, rows := range []int{100_000, 1_000_000} {
		for _, how := range []string{"drop", "delete"} {
			b.Run(fmt.Sprintf("%s/rows=%d", how, rows), func(b *testing.B) {
				pool := dbtest.New(b)
				ctx := context.Background()
				account := uuid.New()
				if _, err := pool.Exec(ctx, `INSERT INTO accounts (id, name) VALUES ($1, 'bench')`, account); err != nil {
					b.Fatal(err)
				}
				if _, err := partition.New(pool, dbtest.Logger(b)).Run(ctx, policies(0)); err != nil {
					b.Fatal(err)
				}
				week := partition.Start(time.Now()).Add(2 * partition.Period)
				name := partition.Name("events", week)
				r := partition.Week(week)
				var wal, took, parentLocked float64
				for b.Loop() {
					b.StopTimer()
					// A week of rows, a few seconds apart, each a UUIDv7 of its time.
					if _, err := pool.Exec(ctx, `
						INSERT INTO events (id, account_id, type, payload, occurred_at, status)
						SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' ||
						        substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
						       $1, 'won', jsonb_build_object('amount', i, 'note', repeat('x', 180)), t, 'processed'
						FROM generate_series(1, $2::int) i, LATERAL (SELECT $3::timestamptz + i * ($4::interval / $2::int) AS t) x`,
						account, rows, week, partition.Period.String()); err != nil {
						b.Fatal(err)
					}
					if _, err := pool.Exec(ctx, `VACUUM ANALYZE events`); err != nil {
						b.Fatal(err)
					}
					var before string
					if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&before); err != nil {
						b.Fatal(err)
					}
					start := time.Now()
					b.StartTimer()
					var err error
					if how == "drop" {
						// As retention does it: the parent is locked for
						// the DETACH only.
						_, err = pool.Exec(ctx, `ALTER TABLE events DETACH PARTITION `+pgx.Identifier{name}.Sanitize())
						parentLocked += time.Since(start).Seconds()
						if err == nil {
							_, err = pool.Exec(ctx, `DROP TABLE `+pgx.Identifier{name}.Sanitize())
						}
					} else {
						_, err = pool.Exec(ctx, `DELETE FROM events WHERE id >= $1 AND id < $2`, r.From, r.To)
					}
					if err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					took += time.Since(start).Seconds()
					var bytes float64
					if err := pool.QueryRow(ctx, `SELECT pg_current_wal_lsn() - $1::pg_lsn`, before).Scan(&bytes); err != nil {
						b.Fatal(err)
					}
					wal += bytes
					if how == "drop" {
						if _, err := pool.Exec(ctx, `CREATE TABLE `+pgx.Identifier{name}.Sanitize()+` PARTITION OF events `+r.ForValues()); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				b.ReportMetric(wal/float64(b.N)/1e6, "WAL-MB/op")
				b.ReportMetric(took/float64(b.N)*1000, "ms/op")
				if how == "drop" {
					b.ReportMetric(parentLocked/float64(b.N)*1000, "parent-lock-ms/op")
				}
			})
		}
	}
}
