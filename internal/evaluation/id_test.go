package evaluation_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/evaluation"
)

func TestIDAtCarriesTheEventsTime(t *testing.T) {
	t.Parallel()
	eventID := uuid.Must(uuid.NewV7())
	seen := map[uuid.UUID]bool{}
	for range 100 {
		id, err := evaluation.IDAt(eventID)
		require.NoError(t, err)
		require.Equal(t, eventID[:6], id[:6], "the 48-bit millisecond timestamp is the event's")
		require.Equal(t, uuid.Version(7), id.Version())
		require.Equal(t, uuid.RFC4122, id.Variant())
		sec, nsec := id.Time().UnixTime()
		esec, ensec := eventID.Time().UnixTime()
		require.Equal(t, time.Unix(esec, ensec).UnixMilli(), time.Unix(sec, nsec).UnixMilli())
		require.False(t, seen[id], "the other bits are random")
		seen[id] = true
	}
}
