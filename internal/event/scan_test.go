package event_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/partition"
)

func TestBoundSortsBelowEveryIDOfItsMillisecond(t *testing.T) {
	t.Parallel()
	for range 100 {
		id := uuid.Must(uuid.NewV7())
		sec, nsec := id.Time().UnixTime()
		at := time.Unix(sec, nsec)
		floor := partition.Bound(at)
		require.Equal(t, id[:6], floor[:6])
		require.Negative(t, compare(floor, id))
		require.Positive(t, compare(id, partition.Bound(at.Add(-time.Millisecond))))
		require.Negative(t, compare(id, partition.Bound(at.Add(time.Millisecond))))
	}
	require.Equal(t, partition.Bound(time.Now().Add(-event.MaxFutureSkew)).String()[:8], event.IDFloor(time.Now()).String()[:8])
}

func compare(a, b uuid.UUID) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}
