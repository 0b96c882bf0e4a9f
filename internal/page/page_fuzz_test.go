package page_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/page"
)

// FuzzDecodeCursor holds DecodeCursor to its contract on any string: it never
// panics, a cursor it accepts is exactly the one EncodeCursor gives for the id
// (so each page has one cursor, and a cursor cannot smuggle other bytes), and
// everything else is ErrBadCursor, an invalid-input error (a 422).
func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{
		"",
		page.EncodeCursor(uuid.MustParse("0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b")),
		page.EncodeCursor(uuid.Max),
		page.EncodeCursor(uuid.Nil),
		"AAAAAAAAAAAAAAAAAAAAAQ",
		"AAAAAAAAAAAAAAAAAAAAAQ==", // padded
		"AAAAAAAAAAAAAAAAAAAAAA+/", // standard alphabet
		"AAAAAAAAAAAAAAAAAAAAAAA",  // 17 bytes
		"AAAAAAAAAAAAAAAAAAAAA",    // truncated
		"0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b",
		"not a cursor",
		"\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := page.DecodeCursor(s)
		if err != nil {
			if !errors.Is(err, page.ErrBadCursor) || apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("DecodeCursor(%q) = %v, want ErrBadCursor", s, err)
			}
			if id != uuid.Nil {
				t.Fatalf("DecodeCursor(%q) failed but returned id %v", s, id)
			}
			return
		}
		if s == "" {
			if id != uuid.Nil {
				t.Fatalf(`DecodeCursor("") = %v, want the zero UUID`, id)
			}
			return
		}
		if id == uuid.Nil {
			t.Fatalf("DecodeCursor(%q) accepted the zero UUID", s)
		}
		if got := page.EncodeCursor(id); got != s {
			t.Fatalf("DecodeCursor(%q) = %v, which encodes as %q: accepted cursors must round-trip", s, id, got)
		}
	})
}

// FuzzEncodeCursor checks the other direction: every id but the zero one
// survives EncodeCursor then DecodeCursor.
func FuzzEncodeCursor(f *testing.F) {
	f.Add(uuid.MustParse("0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b").String())
	f.Add(uuid.Max.String())
	f.Add(uuid.Nil.String())
	f.Fuzz(func(t *testing.T, s string) {
		id, err := uuid.Parse(s)
		if err != nil || id == uuid.Nil {
			return
		}
		c := page.EncodeCursor(id)
		if len(c) > 128 {
			t.Fatalf("cursor %q is longer than the 128 bytes the API accepts", c)
		}
		got, err := page.DecodeCursor(c)
		if err != nil || got != id {
			t.Fatalf("DecodeCursor(EncodeCursor(%v)) = %v, %v", id, got, err)
		}
	})
}
