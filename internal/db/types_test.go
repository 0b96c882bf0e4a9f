package db_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
)

// UUIDs travel as their sixteen bytes, alone, behind pointers and in arrays,
// and NULL stays NULL.
func TestUUIDEncoding(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.EmptyURL(t))
	ctx := context.Background()

	a, b := uuid.New(), uuid.New()
	var (
		one       string
		many      []string
		nullable  []*string
		nilIsNull bool
	)
	err := pool.QueryRow(ctx, `SELECT $1::uuid::text, $2::uuid[]::text[], $3::uuid[]::text[], $4::uuid IS NULL`,
		a, []uuid.UUID{a, b}, []*uuid.UUID{&b, nil}, (*uuid.UUID)(nil)).Scan(&one, &many, &nullable, &nilIsNull)
	require.NoError(t, err)
	require.Equal(t, a.String(), one)
	require.Equal(t, []string{a.String(), b.String()}, many)
	require.Len(t, nullable, 2)
	require.Equal(t, b.String(), *nullable[0])
	require.Nil(t, nullable[1])
	require.True(t, nilIsNull)

	var back uuid.UUID
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::uuid`, b).Scan(&back))
	require.Equal(t, b, back)
}

// BenchmarkUUIDArrayEncoding measures sending a thousand uuids as one array
// parameter, as the evaluation write does.
func BenchmarkUUIDArrayEncoding(b *testing.B) {
	pool := dbtest.Pool(b, dbtest.EmptyURL(b))
	ctx := context.Background()
	ids := make([]uuid.UUID, 1000)
	for i := range ids {
		ids[i] = uuid.New()
	}
	for b.Loop() {
		var n int
		if err := pool.QueryRow(ctx, `SELECT cardinality($1::uuid[])`, ids).Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNullableUUIDArrayEncoding measures sending a thousand uuids, one
// in ten NULL, as one array parameter, as the writes of evaluations' and
// events' nullable references do.
func BenchmarkNullableUUIDArrayEncoding(b *testing.B) {
	pool := dbtest.Pool(b, dbtest.EmptyURL(b))
	ctx := context.Background()
	ids := make([]*uuid.UUID, 1000)
	for i := range ids {
		if i%10 != 0 {
			id := uuid.New()
			ids[i] = &id
		}
	}
	for b.Loop() {
		var n int
		if err := pool.QueryRow(ctx, `SELECT cardinality($1::uuid[])`, ids).Scan(&n); err != nil {
			b.Fatal(err)
		}
	}
}

// JSON numbers are read back with every digit, as json.Number.
func TestJSONNumbersAreExact(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.EmptyURL(t))
	ctx := context.Background()

	var b, j map[string]any
	err := pool.QueryRow(ctx, `SELECT '{"n": 9007199254740993, "d": 12345678901234567.89}'::jsonb, '{"n": 18446744073709551615}'::json`).Scan(&b, &j)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"n": json.Number("9007199254740993"), "d": json.Number("12345678901234567.89")}, b)
	require.Equal(t, map[string]any{"n": json.Number("18446744073709551615")}, j)

	var text string
	require.NoError(t, pool.QueryRow(ctx, `SELECT $1::jsonb::text`, b).Scan(&text))
	require.Equal(t, `{"d": 12345678901234567.89, "n": 9007199254740993}`, text)
}
