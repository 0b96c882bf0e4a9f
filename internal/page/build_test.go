package page_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/page"
)

func ids(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.Must(uuid.NewV7())
	}
	return out
}

// Rows are fetched with limit+1: one more than the limit means another page,
// whose cursor is the last item kept.
func TestBuild(t *testing.T) {
	t.Parallel()
	id := func(u uuid.UUID) uuid.UUID { return u }
	rows := ids(4)
	tests := []struct {
		name      string
		rows      []uuid.UUID
		limit     int
		wantItems []uuid.UUID
		wantNext  string
	}{
		{"no rows", nil, 3, nil, ""},
		{"fewer than the limit", rows[:2], 3, rows[:2], ""},
		{"exactly the limit", rows[:3], 3, rows[:3], ""},
		{"one more than the limit", rows[:4], 3, rows[:3], page.EncodeCursor(rows[2])},
		{"limit one", rows[:2], 1, rows[:1], page.EncodeCursor(rows[0])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := page.Build(tt.rows, tt.limit, id)
			require.Equal(t, tt.wantItems, p.Items)
			require.Equal(t, tt.wantNext, p.NextCursor)
		})
	}
}

// The next cursor decodes to the id of the page's last item, and the empty
// cursor is the first page.
func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range ids(20) {
		got, err := page.DecodeCursor(page.EncodeCursor(id))
		require.NoError(t, err)
		require.Equal(t, id, got)
	}
	first, err := page.DecodeCursor("")
	require.NoError(t, err)
	require.Equal(t, uuid.Nil, first)

	_, err = page.DecodeCursor(page.EncodeCursor(uuid.Nil))
	require.ErrorIs(t, err, page.ErrBadCursor, "the zero id is never issued: it means the first page")
	_, err = page.DecodeCursor("not-a-cursor")
	require.ErrorIs(t, err, page.ErrBadCursor)
}
