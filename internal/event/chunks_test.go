package event_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
)

func events(t *testing.T, accounts []uuid.UUID, perAccount int) []*event.Event {
	t.Helper()
	var out []*event.Event
	for range perAccount {
		for _, a := range accounts {
			out = append(out, &event.Event{ID: uuid.Must(uuid.NewV7()), AccountID: a})
		}
	}
	return out
}

func TestChunks(t *testing.T) {
	t.Parallel()
	accounts := make([]uuid.UUID, 100)
	for i := range accounts {
		accounts[i] = uuid.Must(uuid.NewV7())
	}
	many := events(t, accounts, 10)
	one := events(t, accounts[:1], 250)

	for _, tc := range []struct {
		name   string
		events []*event.Event
		chunks int // at least
	}{
		{"one event", many[:1], 1},
		{"a full chunk", many[:jobs.EventsPerJob], 1},
		{"a thousand events over a hundred accounts", many, 10},
		{"one account with more than a chunk", one, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			chunks := event.Chunks(tc.events)
			require.GreaterOrEqual(t, len(chunks), tc.chunks)
			position := make(map[uuid.UUID]int, len(tc.events))
			for i, e := range tc.events {
				position[e.ID] = i
			}
			last := map[uuid.UUID]int{} // account → position of its last event so far
			accountOf := make(map[uuid.UUID]uuid.UUID, len(tc.events))
			for _, e := range tc.events {
				accountOf[e.ID] = e.AccountID
			}
			seen := map[uuid.UUID]bool{}
			chunkOf := map[uuid.UUID]int{} // account → chunk, for accounts that fit in one
			for c, ids := range chunks {
				require.NotEmpty(t, ids)
				require.LessOrEqual(t, len(ids), jobs.EventsPerJob)
				for _, id := range ids {
					require.False(t, seen[id], "event in two chunks")
					seen[id] = true
					a := accountOf[id]
					if p, ok := last[a]; ok {
						require.Less(t, p, position[id], "an account's events keep their order")
					}
					last[a] = position[id]
					if prev, ok := chunkOf[a]; ok && tc.name != "one account with more than a chunk" {
						require.Equal(t, prev, c, "an account's events stay in one chunk")
					}
					chunkOf[a] = c
				}
			}
			require.Len(t, seen, len(tc.events), "every event in a chunk")
		})
	}

	// Batches of the same size put an account at the same position.
	other := events(t, accounts, 10)
	at := func(chunks [][]uuid.UUID, evs []*event.Event) map[uuid.UUID]int {
		acct := map[uuid.UUID]uuid.UUID{}
		for _, e := range evs {
			acct[e.ID] = e.AccountID
		}
		out := map[uuid.UUID]int{}
		for c, ids := range chunks {
			for _, id := range ids {
				out[acct[id]] = c
			}
		}
		return out
	}
	first, second := event.Chunks(many), event.Chunks(other)
	if len(first) == len(second) {
		require.Equal(t, at(first, many), at(second, other))
	}
}
