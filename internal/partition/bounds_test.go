package partition_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/partition"
)

func TestBoundsAreUUIDv7Milliseconds(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 7, 30, 15, 123_000_000, time.UTC)
	b := partition.Bound(at)
	require.Equal(t, at, partition.TimeOf(b))
	id, err := uuid.NewV7()
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), partition.TimeOf(id), time.Second, "a UUIDv7 carries its time")
	require.Equal(t, "01a235a9-43d3-0000-0000-000000000000", b.String())
}

func TestPeriodsStartOnMonday(t *testing.T) {
	t.Parallel()
	monday := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{monday, monday.Add(time.Nanosecond), monday.Add(partition.Period - time.Nanosecond),
		time.Date(2026, 12, 3, 23, 0, 0, 0, time.FixedZone("UTC-5", -5*3600))} {
		require.Equal(t, monday, partition.Start(at), "%s", at)
	}
	require.Equal(t, "events_p20261130", partition.Name("events", monday))
	week := partition.Week(monday)
	require.Equal(t, "FOR VALUES FROM ('"+partition.Bound(monday).String()+"') TO ('"+
		partition.Bound(monday.Add(partition.Period)).String()+"')", week.ForValues())
	next := partition.Week(monday.Add(partition.Period))
	require.False(t, week.Overlaps(next), "weeks meet without overlapping")
	require.True(t, week.Overlaps(partition.Range{To: week.To}), "MINVALUE to the week's end holds the week")
}

func TestSpanBoundsAList(t *testing.T) {
	t.Parallel()
	a := partition.Bound(time.UnixMilli(1000))
	b := partition.Bound(time.UnixMilli(2000))
	c := partition.Bound(time.UnixMilli(3000))
	lo, hi := partition.Span([]uuid.UUID{b, c, a})
	require.Equal(t, a, lo)
	require.Equal(t, c, hi)
}
