// Package page implements keyset pagination over time-ordered UUIDs with
// opaque cursors.
package page

import (
	"encoding/base64"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/apperr"
)

// DefaultLimit is the page size when a request names none. The largest is
// the maximum of the API's limit parameter.
const DefaultLimit = 50

// Params selects one page: up to Limit items after the item with id After
// (the zero UUID means from the start), newest first.
type Params struct {
	Limit int
	After uuid.UUID
}

// Page is one page of items and the cursor of the next page ("" at the end).
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// ErrBadCursor is returned for a cursor this service did not issue.
var ErrBadCursor = apperr.InvalidFields("malformed cursor",
	apperr.FieldError{Location: "query.cursor", Message: "not a cursor returned by this API"})

// EncodeCursor returns the opaque cursor that continues after id.
func EncodeCursor(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

// DecodeCursor parses a cursor made by EncodeCursor; "" is the first page.
func DecodeCursor(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return uuid.Nil, ErrBadCursor
	}
	id, _ := uuid.FromBytes(b)
	// The decoder skips line breaks and ignores the unused low bits of the
	// last character, so several strings decode to one id; only the one
	// EncodeCursor writes is a cursor.
	if id == uuid.Nil || EncodeCursor(id) != s {
		return uuid.Nil, ErrBadCursor
	}
	return id, nil
}

// Build trims rows fetched with limit+1 to one page and sets the next cursor.
func Build[T any](rows []T, limit int, idOf func(T) uuid.UUID) Page[T] {
	if len(rows) <= limit {
		return Page[T]{Items: rows}
	}
	rows = rows[:limit]
	return Page[T]{Items: rows, NextCursor: EncodeCursor(idOf(rows[len(rows)-1]))}
}
