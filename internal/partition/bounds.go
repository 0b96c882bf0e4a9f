// Package partition keeps the time partitions of the tables whose rows are
// named by UUIDv7 ids, events and evaluations: it creates them ahead of time
// and drops whole partitions once their rows are past retention, so that
// removing a week of history is one DROP TABLE and never a DELETE.
//
// A UUIDv7 begins with the 48-bit Unix time in milliseconds it was made at,
// so ordering ids orders rows by time, and a range of ids is a range of
// time. Each table is partitioned by RANGE (id), one partition a week
// (Monday 00:00 UTC to the next Monday), with bounds that are the smallest
// UUIDv7 of their instant. A DEFAULT partition takes any row no weekly
// partition covers, so an insert never fails for want of one; the
// maintenance run keeps it empty.
package partition

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Period is the span of time one partition covers.
const Period = 7 * 24 * time.Hour

// Tables are the partitioned tables, in the order they are maintained.
var Tables = []string{"events", "evaluations"}

// Bound returns the smallest UUIDv7 made in t's millisecond: the partition
// bound at t. Times before 1970 give the zero UUID.
func Bound(t time.Time) uuid.UUID {
	var id uuid.UUID
	ms := max(t.UnixMilli(), 0)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	copy(id[:6], b[2:])
	return id
}

// TimeOf returns the millisecond a UUIDv7 was made in.
func TimeOf(id uuid.UUID) time.Time {
	var b [8]byte
	copy(b[2:], id[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:]))).UTC()
}

// Start returns the start of the period t falls in: the Monday 00:00 UTC at
// or before t.
func Start(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	offset := (int(day.Weekday()) + 6) % 7 // days since Monday
	return day.AddDate(0, 0, -offset)
}

// Name is the name of table's partition for the period starting at start,
// such as events_p20260105: derived from its bounds, so that every process
// agrees on it.
func Name(table string, start time.Time) string {
	return table + "_p" + start.UTC().Format("20060102")
}

// DefaultName is the name of table's DEFAULT partition.
func DefaultName(table string) string { return table + "_default" }

// A Range is the ids a partition holds: From inclusive, To exclusive. A nil
// bound is unbounded (MINVALUE or MAXVALUE).
type Range struct {
	From, To *uuid.UUID
}

// Overlaps reports whether r and o share any id.
func (r Range) Overlaps(o Range) bool {
	return below(r.From, o.To) && below(o.From, r.To)
}

// below reports whether a lower bound lies below an upper one.
func below(from, to *uuid.UUID) bool {
	if from == nil || to == nil {
		return true
	}
	return compare(*from, *to) < 0
}

// compare orders ids as Postgres does: byte by byte.
func compare(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// Partition is one partition of a table as the catalog describes it.
type Partition struct {
	Name    string
	Default bool
	Range   Range // zero for the DEFAULT partition
}

var boundPattern = regexp.MustCompile(`^FOR VALUES FROM \((.+)\) TO \((.+)\)$`)

// parseBound reads pg_get_expr(relpartbound) of a range partition on one
// uuid column.
func parseBound(expr string) (Partition, error) {
	if expr == "DEFAULT" {
		return Partition{Default: true}, nil
	}
	m := boundPattern.FindStringSubmatch(expr)
	if m == nil {
		return Partition{}, fmt.Errorf("unexpected partition bound %q", expr)
	}
	from, err := parseValue(m[1])
	if err != nil {
		return Partition{}, err
	}
	to, err := parseValue(m[2])
	if err != nil {
		return Partition{}, err
	}
	return Partition{Range: Range{From: from, To: to}}, nil
}

func parseValue(v string) (*uuid.UUID, error) {
	switch v {
	case "MINVALUE", "MAXVALUE":
		return nil, nil
	}
	id, err := uuid.Parse(strings.Trim(v, "'"))
	if err != nil {
		return nil, fmt.Errorf("unexpected partition bound value %q", v)
	}
	return &id, nil
}

// literal is a bound as DDL spells it.
func literal(b *uuid.UUID, unbounded string) string {
	if b == nil {
		return unbounded
	}
	return "'" + b.String() + "'"
}

// ForValues is the FOR VALUES clause of r.
func (r Range) ForValues() string {
	return "FOR VALUES FROM (" + literal(r.From, "MINVALUE") + ") TO (" + literal(r.To, "MAXVALUE") + ")"
}

// Week returns the range of the period starting at start.
func Week(start time.Time) Range {
	from, to := Bound(start), Bound(start.Add(Period))
	return Range{From: &from, To: &to}
}

// Span returns the least and greatest of ids, for a statement that picks
// rows by a list of ids to bound them by as well: Postgres prunes partitions
// by a range of parameters, never by an array of them. It returns zero ids
// for none.
func Span(ids []uuid.UUID) (lo, hi uuid.UUID) {
	for i, id := range ids {
		if i == 0 || compare(id, lo) < 0 {
			lo = id
		}
		if i == 0 || compare(id, hi) > 0 {
			hi = id
		}
	}
	return lo, hi
}
