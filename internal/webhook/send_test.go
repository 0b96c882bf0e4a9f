package webhook

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestSnippet(t *testing.T) {
	t.Parallel()
	euros := strings.Repeat("€", MaxResponseSnippet) // three bytes each
	tests := []struct {
		name string
		body string
		want string
	}{
		{"empty", "", ""},
		{"short", "ok", "ok"},
		{"exactly the cap", strings.Repeat("x", MaxResponseSnippet), strings.Repeat("x", MaxResponseSnippet)},
		{"over the cap", strings.Repeat("x", MaxResponseSnippet+1), strings.Repeat("x", MaxResponseSnippet)},
		// 1024 = 3*341 + 1: the cut leaves one byte of a character, whose
		// replacement character would pass the cap; it is dropped.
		{"a character cut by the cap", euros, euros[:3*341]},
		{"NUL bytes are dropped", "a\x00b", "ab"},
		{"invalid UTF-8 is replaced", "a\xff\xfeb", "a\uFFFDb"},
		// Each lone invalid byte becomes three: the snippet is cut back to
		// the cap on a character boundary.
		{"replacements do not grow it past the cap", strings.Repeat("a\xff", MaxResponseSnippet/2),
			strings.Repeat("a\uFFFD", MaxResponseSnippet/len("a\uFFFD"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := snippet([]byte(tt.body))
			require.Equal(t, tt.want, got)
			require.LessOrEqual(t, len(got), MaxResponseSnippet)
			require.True(t, utf8.ValidString(got))
		})
	}
}
