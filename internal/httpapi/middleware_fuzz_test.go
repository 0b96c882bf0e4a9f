package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/ctrader/ctrader/internal/reqid"
)

var generatedRequestID = regexp.MustCompile(`^[0-9a-f]{24}$`)

// FuzzRequestID sends any X-Request-Id through observe. The id echoed, and
// the one handlers see, is the client's when validRequestID accepts it and a
// fresh one otherwise, and is always printable ASCII of at most 128 bytes.
// When the handler panics, the 500 problem is still valid JSON naming that id.
func FuzzRequestID(f *testing.F) {
	for _, id := range []string{
		"", "req-abc-123", "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b", "bad id\twith tabs", "a b", "\x00", "é",
		"\x7f", "~!#$%&'()*+,-./:;<=>?@[]^_`{|}",
		string(make([]byte, 128)), "x\r\nSet-Cookie: a=b",
	} {
		f.Add(id, false)
		f.Add(id, true)
	}
	f.Fuzz(func(t *testing.T, id string, panics bool) {
		var seen string
		h := observe(slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = reqid.From(r.Context())
			if panics {
				panic("handler failed")
			}
			_, _ = w.Write([]byte("ok"))
		}))
		req := httptest.NewRequest(http.MethodGet, "/v1/accounts", nil)
		req.Header[RequestIDHeader] = []string{id}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		echoed := rec.Header().Get(RequestIDHeader)
		switch {
		case len(echoed) == 0 || len(echoed) > 128:
			t.Fatalf("X-Request-Id %q echoed as %q", id, echoed)
		case echoed != seen:
			t.Fatalf("echoed %q but handlers saw %q", echoed, seen)
		case validRequestID(id) && echoed != id:
			t.Fatalf("valid X-Request-Id %q replaced by %q", id, echoed)
		case !validRequestID(id) && !generatedRequestID.MatchString(echoed):
			t.Fatalf("invalid X-Request-Id %q echoed as %q", id, echoed)
		}
		for i := 0; i < len(echoed); i++ {
			if echoed[i] < 0x21 || echoed[i] > 0x7e {
				t.Fatalf("echoed id %q has byte %#x", echoed, echoed[i])
			}
		}
		if !panics {
			return
		}
		if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("panic answered %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		var p Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("panic problem for id %q is not JSON: %v: %s", echoed, err, rec.Body)
		}
		if p.RequestID != echoed || p.Code != "internal" || p.Status != http.StatusInternalServerError {
			t.Fatalf("panic problem for id %q is %+v", echoed, p)
		}
	})
}

// A client's id may hold quotes and backslashes; the problem written after a
// panic once pasted it into JSON as it was.
func TestPanicProblemEncodesRequestID(t *testing.T) {
	t.Parallel()
	h := observe(slog.New(slog.DiscardHandler), http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("handler failed")
	}))
	id := `a","code":"x\`
	req := httptest.NewRequest(http.MethodGet, "/v1/accounts", nil)
	req.Header.Set(RequestIDHeader, id)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem is not JSON: %v: %s", err, rec.Body)
	}
	if p.RequestID != id || p.Code != "internal" || p.Type != ProblemTypePrefix+"internal" || p.Detail != "internal error" {
		t.Fatalf("problem is %+v", p)
	}
}
