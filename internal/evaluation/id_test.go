package evaluation_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/partition"
)

func TestEvaluationIDsAreDerivedUUIDv7s(t *testing.T) {
	t.Parallel()
	event, err := uuid.NewV7()
	require.NoError(t, err)
	ruleID := uuid.New()
	id := evaluation.EventID(event, ruleID, 1)
	require.Equal(t, id, evaluation.EventID(event, ruleID, 1), "the same evaluation, the same id")
	require.Equal(t, uuid.Version(7), id.Version())
	require.Equal(t, uuid.RFC4122, id.Variant())
	require.Equal(t, partition.TimeOf(event), partition.TimeOf(id))
	require.LessOrEqual(t, evaluation.LowestID(event).String(), id.String())
	require.NotEqual(t, id, evaluation.EventID(event, ruleID, 2))
	require.NotEqual(t, id, evaluation.EventID(event, uuid.New(), 1))

	account := uuid.New()
	run := evaluation.RunID("schedule:2026-01-05T10:00:00Z", ruleID, 1, account)
	require.Equal(t, time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC), partition.TimeOf(run))
	require.NotEqual(t, run, evaluation.RunID("schedule:2026-01-05T10:00:00Z", ruleID, 1, uuid.New()))
	require.NotEqual(t, run, evaluation.RunID("schedule:2026-01-05T10:05:00Z", ruleID, 1, account))
}

func TestRunTime(t *testing.T) {
	t.Parallel()
	manual, err := uuid.NewV7()
	require.NoError(t, err)
	at, ok := evaluation.RunTime("manual:" + manual.String())
	require.True(t, ok)
	require.Equal(t, partition.TimeOf(manual), at.UTC())
	_, ok = evaluation.RunTime("manual:" + uuid.NewString())
	require.False(t, ok, "a random UUID carries no time")
	_, ok = evaluation.RunTime("nothing")
	require.False(t, ok)
}

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
