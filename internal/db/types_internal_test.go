package db

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

// A uuid, alone or behind a pointer, is encoded by the sixteen-byte plans,
// not through its driver.Valuer's string.
func TestUUIDsTakeTheBinaryPlan(t *testing.T) {
	t.Parallel()
	m := pgtype.NewMap()
	registerTypes(m)
	id := uuid.New()

	_, direct := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, id).(*uuidEncodePlan)
	require.True(t, direct, "uuid.UUID")
	plan := m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, &id)
	_, pointer := plan.(*uuidPointerEncodePlan)
	require.True(t, pointer, "*uuid.UUID")

	buf, err := plan.Encode(&id, nil)
	require.NoError(t, err)
	require.Equal(t, id[:], buf)
	buf, err = plan.Encode((*uuid.UUID)(nil), nil)
	require.NoError(t, err)
	require.Nil(t, buf, "NULL")
}
