package page_test

import (
	"errors"
	"testing"

	"github.com/ctrader/ctrader/internal/page"
)

// The base64 decoder alone accepts several spellings of one id; a cursor is
// only the spelling EncodeCursor writes.
func TestDecodeCursorRejectsOtherSpellingsOfAnID(t *testing.T) {
	t.Parallel()
	const cursor = "AAAAAAAAAAAAAAAAAAAAAQ"
	if _, err := page.DecodeCursor(cursor); err != nil {
		t.Fatalf("DecodeCursor(%q) = %v", cursor, err)
	}
	for _, s := range []string{
		"AAAAAAAAAAAAAAAAAAAAAR",   // unused low bits set
		"AAAAAAAAAAAAAAAAAAAA\nAQ", // line break
		"AAAAAAAAAAAAAAAAAAAAAQ\r", // carriage return
	} {
		if _, err := page.DecodeCursor(s); !errors.Is(err, page.ErrBadCursor) {
			t.Errorf("DecodeCursor(%q) = %v, want ErrBadCursor", s, err)
		}
	}
}
