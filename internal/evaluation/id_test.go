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
