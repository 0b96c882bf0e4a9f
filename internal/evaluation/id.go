package evaluation

import (
	"crypto/sha256"
	"encoding/binary"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/partition"
)

// EventID is the id of the evaluation of a rule version against an event:
// a UUIDv7 with the event id's millisecond, the rest a hash of the three.
// The same evaluation always gets the same id, so the primary key keeps one
// evaluation per rule version and event (a retried job's insert conflicts
// and is skipped), and an event's evaluations sit in its time partition.
func EventID(eventID, ruleID uuid.UUID, ruleVersion int) uuid.UUID {
	return derive(eventID, "event", eventID[:], ruleID[:], version(ruleVersion))
}

// RunID is the id of the evaluation of a rule version against an account in
// a scheduled window or manual run, as EventID: it has the run's time (see
// RunTime), the rest a hash of the four.
func RunID(runID string, ruleID uuid.UUID, ruleVersion int, accountID uuid.UUID) uuid.UUID {
	var ts uuid.UUID
	if t, ok := RunTime(runID); ok {
		ts = partition.Bound(t)
	}
	return derive(ts, "run", []byte(runID), ruleID[:], version(ruleVersion), accountID[:])
}

// RunTime is the time a run id names: the start of a scheduled window
// ("schedule:2026-01-05T10:00:00Z") or the UUIDv7 of a manual run
// ("manual:0194…"). A run id must name its time in one of these forms: the
// evaluations of one that does not get ids of the Unix epoch, which fall in
// the oldest partition (the DEFAULT one once that is dropped) and are
// removed with it.
func RunTime(runID string) (time.Time, bool) {
	_, rest, ok := strings.Cut(runID, ":")
	if !ok {
		return time.Time{}, false
	}
	if t, err := time.Parse(time.RFC3339, rest); err == nil {
		return t, true
	}
	if id, err := uuid.Parse(rest); err == nil && id.Version() == 7 {
		sec, nsec := id.Time().UnixTime()
		return time.Unix(sec, nsec), true
	}
	return time.Time{}, false
}

// LowestID is the smallest id an evaluation of the event can have: those
// derived by EventID share its millisecond, and those recorded before ids
// were derived were made after it.
func LowestID(eventID uuid.UUID) uuid.UUID {
	return partition.Bound(partition.TimeOf(eventID))
}

func version(v int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// derive is a UUIDv7 with ts's millisecond whose other 74 bits are a hash of
// the parts.
func derive(ts uuid.UUID, kind string, parts ...[]byte) uuid.UUID {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, p := range parts {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(p))))
		h.Write(p)
	}
	return at(ts, [10]byte(h.Sum(nil)[:10]))
}

// at is a UUIDv7 with ts's millisecond whose other 74 bits are rest's.
func at(ts uuid.UUID, rest [10]byte) uuid.UUID {
	var id uuid.UUID
	copy(id[:6], ts[:6])
	copy(id[6:], rest[:])
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // RFC 9562 variant
	return id
}
