package httpapi

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
)

// FuzzProblemRedaction holds what a problem repeats of any input value to its
// bounds: valid UTF-8 of at most maxEchoed bytes and a mark, no URL
// credentials or query values, and a whole problem that stays small however
// many and however long the field errors are.
func FuzzProblemRedaction(f *testing.F) {
	for _, s := range []string{
		"plain", "https://admin:pw-secret@example.com/%zz", "https://example.com/?token=tok-secret",
		strings.Repeat("9", 30*1024), "\xff\xfe", "é" + strings.Repeat("x", 250), "postgres://u:pw-secret@db/x?password=pw-secret",
	} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, value string, n int) {
		out, ok := echoable(value).(string)
		if !ok {
			t.Fatalf("echoable(%q) is not a string", value)
		}
		if len(out) > maxEchoed+len("…") {
			t.Fatalf("echoed %d bytes", len(out))
		}
		if utf8.ValidString(value) && !utf8.ValidString(out) {
			t.Fatalf("echoable(%q) = %q is not valid UTF-8", value, out)
		}
		// A password in a URL's userinfo and a value in its query.
		for marker, secret := range map[string]string{"https://admin:pw-secret@": "pw-secret", "https://example.com/?token=tok-secret": "tok-secret"} {
			if strings.Contains(value, marker) && strings.Count(value, secret) == 1 && strings.Contains(out, secret) {
				t.Fatalf("echoable(%q) = %q keeps %s", value, out, secret)
			}
		}
		n = min(max(n, 0), 5000)
		details := make([]*huma.ErrorDetail, n)
		for i := range details {
			details[i] = &huma.ErrorDetail{Location: value, Message: value, Value: value}
		}
		b, err := json.Marshal(newProblem(context.Background(), 422, value, details))
		if err != nil {
			t.Fatal(err)
		}
		if limit := 1500 + (maxDetails+1)*(3*maxMessage+200); len(b) > limit {
			t.Fatalf("a problem of %d errors is %d bytes, over %d", n, len(b), limit)
		}
	})
}
