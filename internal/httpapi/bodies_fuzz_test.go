package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/httpapi"
)

// bodyEndpoints are the operations FuzzRequestBodies posts to; the fuzzer's
// first argument picks one.
var bodyEndpoints = []string{"/v1/events", "/v1/events/batch", "/v1/accounts", "/v1/rules", "/v1/webhook-endpoints", "/v1/rules/test"}

// seedAccountID stands for the account the fuzz target creates: the seeds
// must be the same in every fuzzing process, and each process has its own
// database.
const seedAccountID = "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b"

// maxEchoedChars is the longest string value a problem may repeat from the
// input: at most 200 bytes of it, and an ellipsis.
const maxEchoedChars = 200 + 1

// FuzzRequestBodies posts arbitrary bytes as JSON to the operations that create
// things, on one database for the whole run. Whatever the body, the answer is
// never a 5xx while the database is up; it is valid JSON; a 4xx is an RFC 9457
// problem with type, title, status and code, whose errors repeat no string
// longer than maxEchoedChars and no value over 1 KiB; and the response is
// bounded: a problem under 64 KiB, a success under 64 KiB plus eight times
// the request. What a success created can be read back.
func FuzzRequestBodies(f *testing.F) {
	b := setupWith(f, dbtest.New(f), httpapi.Security{Open: true}, nil)
	accountID := []byte(createAccountTB(f, b))
	for _, s := range bodySeeds(seedAccountID) {
		for i, path := range bodyEndpoints {
			if len(s.paths) > 0 && !slices.Contains(s.paths, path) {
				continue
			}
			f.Add(uint8(i), []byte(s.body))
		}
	}

	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		path := bodyEndpoints[int(endpoint)%len(bodyEndpoints)]
		body = bytes.ReplaceAll(body, []byte(seedAccountID), accountID)
		r, err := b.send(http.MethodPost, path, http.Header{"Content-Type": {"application/json"}}, string(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		requireSaneResponse(t, b, http.MethodPost, path, body, r)
	})
}

// bodySeed is a body posted to paths (every endpoint when empty).
type bodySeed struct {
	body  string
	paths []string
}

// bodySeeds are valid bodies and truncated ones, empty and odd documents,
// deep nesting, numbers no float64 holds, long strings, NUL and invalid UTF-8.
func bodySeeds(accountID string) []bodySeed {
	event := func(payload string) string {
		return fmt.Sprintf(`{"account_id": %q, "type": "won", "payload": %s}`, accountID, payload)
	}
	note := func(payload string) string {
		return fmt.Sprintf(`{"account_id": %q, "type": "note", "payload": %s}`, accountID, payload)
	}
	nested := func(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }
	valid := map[string]string{
		"/v1/events":            event(`{"amount": 1500}`),
		"/v1/events/batch":      `{"events": [` + event(`{"amount": 1}`) + `, ` + event(`{"amount": 2.5}`) + `]}`,
		"/v1/accounts":          `{"name": "Jane Roe", "metadata": {"tier": "gold"}}`,
		"/v1/rules":             `{"name": "big win", "condition": "event.payload.amount > 1000", "event_types": ["won"]}`,
		"/v1/webhook-endpoints": `{"url": "https://example.com/hooks/ctrader?x=1", "description": "seed"}`,
		"/v1/rules/test": `{"condition": "event.payload.amount > 1000", "actions": [{"type": "emit_event", "event_type": "x",
			"payload_expr": "{'a': event.payload.amount}"}], "account_id": "` + accountID + `", "event": {"type": "won", "payload": {"amount": 1500}}}`,
	}
	var seeds []bodySeed
	for path, v := range valid {
		seeds = append(seeds,
			bodySeed{body: v, paths: []string{path}},
			bodySeed{body: v[:len(v)/2], paths: []string{path}}) // truncated
	}
	for _, body := range []string{
		``, `null`, `[]`, `{}`, `"x"`, `{`, `{"events": []}`, `{"events": {}}`, `{"events": [null]}`,
		nested(10000),
		`{"name": "deep", "metadata": {"a": ` + nested(10000) + `}}`,
		`{"name": "deep", "metadata": {"a": ` + nested(8000) + `}}`,
		`{"name": "deep", "metadata": {"a": ` + nested(1000) + `}}`,
		note(`{"a": ` + nested(10000) + `}`),
		note(`{"a": ` + nested(9990) + `}`),
		note(`{"a": ` + nested(1000) + `}`),
		`{"events": [` + note(`{"a": `+nested(9990)+`}`) + `]}`,
		event(`{"amount": 9007199254740993}`),
		event(`{"amount": 1e400}`),
		event(`{"amount": -1e400}`),
		event(`{"amount": 1e-400}`),
		event(`{"note": "a\u0000b", "\u0000": 1}`),
		event(`{"note": "` + "\xff\xfe" + `"}`),
		`{"name": "a` + "\x00" + `b"}`,
		`{"name": "\u0000"}`,
		`{"name": "` + "\xff\xfe\xfd" + `"}`,
		`{"name": "\ud800"}`,
		`{"name": "a", "name": "b"}`,
		`{"name": "` + strings.Repeat("n", 30*1024) + `"}`,
		`{"name": "big", "metadata": {"k": "` + strings.Repeat("m", 40*1024) + `"}}`,
		`{"account_id": "not-a-uuid", "type": "won"}`,
		`{"account_id": "00000000-0000-0000-0000-000000000000", "type": "won"}`,
		`{"account_id": "` + accountID + `", "type": "bad type!"}`,
		`{"account_id": "` + accountID + `", "type": "won", "occurred_at": "9999-12-31T23:59:59Z"}`,
		`{"account_id": "` + accountID + `", "type": "won", "occurred_at": "0000-01-01T00:00:00Z"}`,
		`{"account_id": "` + accountID + `", "type": "won", "payload": {"amount": "1500"}}`,
		`{"account_id": "` + accountID + `", "type": "won", "payload": []}`,
		`{"name": "bad rule", "condition": "event.payload.amount >"}`,
		`{"name": "rule", "condition": "true", "actions": [{"type": "webhook", "endpoint_id": "x"}]}`,
		`{"url": "https://user:s3cret-token@example.com/hook"}`,
		`{"url": "ftp://example.com/` + strings.Repeat("p", 2000) + `"}`,
		`{"url": "` + strings.Repeat("s", 1500) + `://example.com/"}`,
		`{"url": "http://[::1"}`,
		`{"condition": "true", "account": {"metadata": {"a": ` + nested(1000) + `}}}`,
		`{"condition": "true", "account": {"won_total": 1e400}, "event": {"type": "won", "payload": {"amount": 1e400}}}`,
		`{"condition": "true", "event_id": "` + accountID + `", "event": {"type": "x"}, "account": {}}`,
		`{"condition": "true", "account_id": "00000000-0000-0000-0000-000000000000"}`,
		`{"condition": "true", "account": {}, "event": {"type": "x", "depth": 1e9}}`,
		strings.Repeat(" ", 70*1024) + `{}`,
	} {
		seeds = append(seeds, bodySeed{body: body})
	}
	return append(seeds,
		// A null list passed the schema's minItems and failed inserting no
		// jobs (500).
		bodySeed{body: `{"events": null}`},
		// The domain's field value was echoed whole.
		bodySeed{body: event(`{"amount": "` + strings.Repeat("9", 30*1024) + `"}`)},
		// Every item was validated past maxItems and every error listed: a
		// 30 KB batch got a 250 KB problem.
		bodySeed{
			body:  `{"events": [` + strings.TrimSuffix(strings.Repeat(`{"account_id": "x", "type": "?"},`, 1001), ",") + `]}`,
			paths: []string{"/v1/events/batch"},
		},
	)
}

// requireSaneResponse fails unless r is a JSON answer to method target with
// body, bounded in size, that is a complete problem when it is a 4xx.
func requireSaneResponse(t *testing.T, b *testBundle, method, target string, body []byte, r response) {
	t.Helper()
	describe := func() string {
		in := string(body)
		if len(in) > 300 {
			in = in[:300] + "…"
		}
		out := string(r.body)
		if len(out) > 1000 {
			out = out[:1000] + "…"
		}
		return fmt.Sprintf("%s %s %q (%d bytes) answered %d (%d bytes): %s", method, target, in, len(body), r.status, len(r.body), out)
	}
	if r.status >= 500 {
		if r.status != http.StatusServiceUnavailable || b.pool.Ping(context.Background()) == nil {
			t.Fatalf("server error: %s", describe())
		}
	}
	if !json.Valid(r.body) {
		t.Fatalf("body is not JSON: %s", describe())
	}
	if r.status < 400 {
		ok := r.status == http.StatusCreated || r.status == http.StatusAccepted
		limit := 64<<10 + 8*len(body)
		switch {
		case method == http.MethodGet:
			ok = r.status == http.StatusOK
		case target == "/v1/rules/test":
			// A test answers with what each action would make, which its
			// payload expressions may make far larger than the request.
			ok = r.status == http.StatusOK
			limit = 1 << 20
		}
		if !ok {
			t.Fatalf("unexpected success status: %s", describe())
		}
		if len(r.body) > limit {
			t.Fatalf("success of %d bytes is over %d: %s", len(r.body), limit, describe())
		}
		// What was stored can be read back.
		if loc := r.header.Get("Location"); loc != "" {
			got, err := b.send(http.MethodGet, loc, nil, "")
			if err != nil || got.status != http.StatusOK || !json.Valid(got.body) {
				t.Fatalf("GET %s after %s: %v %d %.300s", loc, describe(), err, got.status, got.body)
			}
		}
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("problem served as %q: %s", ct, describe())
	}
	if len(r.body) >= 64<<10 {
		t.Fatalf("problem of %d bytes: %s", len(r.body), describe())
	}
	var p struct {
		Type   *string `json:"type"`
		Title  *string `json:"title"`
		Status *int    `json:"status"`
		Code   *string `json:"code"`
		Errors []struct {
			Value json.RawMessage `json:"value"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem does not decode (%v): %s", err, describe())
	}
	switch {
	case p.Type == nil || p.Title == nil || *p.Title == "" || p.Status == nil || p.Code == nil || *p.Code == "":
		t.Fatalf("problem lacks type, title, status or code: %s", describe())
	case *p.Status != r.status || *p.Type != httpapi.ProblemTypePrefix+*p.Code:
		t.Fatalf("problem status or type disagrees: %s", describe())
	}
	for i, e := range p.Errors {
		// Strings are counted in characters: each invalid byte echoed
		// becomes a three-byte U+FFFD, each control character six bytes.
		var s string
		if err := json.Unmarshal(e.Value, &s); err == nil {
			if n := utf8.RuneCountInString(s); n > maxEchoedChars {
				t.Fatalf("errors[%d] repeats a %d-character string: %s", i, n, describe())
			}
		} else if len(e.Value) > 1<<10 {
			t.Fatalf("errors[%d] has a value of %d bytes: %s", i, len(e.Value), describe())
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("problem has trailing data: %s", describe())
	}
}

// createAccountTB creates an account for events to refer to.
func createAccountTB(tb testing.TB, b *testBundle) string {
	tb.Helper()
	r, err := b.send(http.MethodPost, "/v1/accounts", http.Header{"Content-Type": {"application/json"}}, `{"name": "fuzz"}`)
	if err != nil || r.status != http.StatusCreated {
		tb.Fatalf("create account: %v %d %s", err, r.status, r.body)
	}
	var a httpapi.Account
	if err := json.Unmarshal(r.body, &a); err != nil {
		tb.Fatal(err)
	}
	return a.ID
}
