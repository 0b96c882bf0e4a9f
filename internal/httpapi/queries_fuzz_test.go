package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/page"
)

// listPaths are the list operations FuzzQueries reads; the fuzzer's first
// argument picks one, or one of the paths with an id when it is past them.
var listPaths = []string{"/v1/accounts", "/v1/events", "/v1/rules", "/v1/evaluations", "/v1/webhook-endpoints"}

var idPaths = []string{
	"/v1/accounts/", "/v1/events/", "/v1/rules/", "/v1/webhook-endpoints/", "/v1/webhook-deliveries/",
	"/v1/webhook-endpoints/%s/deliveries",
}

// FuzzQueries reads lists with arbitrary query strings (limit, cursor and the
// filters) and resources with arbitrary ids, on one database for the whole
// run. The answers must be sane as in FuzzRequestBodies; a list is an items
// array, and its next_cursor is a cursor that reads the next page.
func FuzzQueries(f *testing.F) {
	b := setupWith(f, dbtest.New(f), httpapi.Security{Open: true}, nil)
	accountID := createAccountTB(f, b)
	for range 2 {
		createAccountTB(f, b)
	}
	for _, q := range []string{
		"", "limit=1", "limit=0", "limit=-1", "limit=501", "limit=500", "limit=1e3", "limit=9223372036854775808",
		"limit=1&limit=2", "cursor=", "cursor=AAAAAAAAAAAAAAAAAAAAAQ", "cursor=" + page.EncodeCursor([16]byte{0: 0xff}),
		"cursor=AAAAAAAAAAAAAAAAAAAAAA", "cursor=%00", "cursor=" + strings.Repeat("A", 129), "cursor=a%0Ab",
		"account_id=" + accountID, "account_id=x", "type=won&status=pending", "status=nope", "matched=true",
		"matched=1", "run_id=" + strings.Repeat("r", 101), "enabled=false&scheduled=true&include_deleted=true",
		"include_deleted=maybe", "event_id=00000000-0000-0000-0000-000000000000", "%", "a=%zz", "limit=1;cursor=x",
	} {
		for i := range listPaths {
			f.Add(uint8(i), q)
		}
	}
	for _, id := range []string{
		accountID, "00000000-0000-0000-0000-000000000000", "not-a-uuid", "", "%00", ".", "..", "a/b", "%2F",
		strings.ToUpper(accountID), "{" + accountID + "}", "urn:uuid:" + accountID, strings.ReplaceAll(accountID, "-", ""),
		strings.Repeat("9", 1000),
	} {
		for i := range idPaths {
			f.Add(uint8(len(listPaths)+i), id)
		}
	}

	f.Fuzz(func(t *testing.T, endpoint uint8, arg string) {
		i := int(endpoint) % (len(listPaths) + len(idPaths))
		if i < len(listPaths) {
			readList(t, b, listPaths[i]+"?"+escapeRequestLine(arg))
			return
		}
		target := idPaths[i-len(listPaths)]
		if strings.Contains(target, "%s") {
			target = strings.Replace(target, "%s", url.PathEscape(arg), 1)
		} else {
			target += url.PathEscape(arg)
		}
		if _, err := url.ParseRequestURI(target); err != nil {
			return
		}
		r, err := b.send(http.MethodGet, target, nil, "")
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		requireSaneResponse(t, b, http.MethodGet, target, nil, r)
	})
}

// readList reads target and, while it has one, the page after it.
func readList(t *testing.T, b *testBundle, target string) {
	t.Helper()
	if _, err := url.ParseRequestURI(target); err != nil {
		return
	}
	for range 4 {
		r, err := b.send(http.MethodGet, target, nil, "")
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		requireSaneResponse(t, b, http.MethodGet, target, nil, r)
		if r.status != http.StatusOK {
			return
		}
		var list struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &list); err != nil || list.Items == nil {
			t.Fatalf("GET %s: not a list (%v): %.300s", target, err, r.body)
		}
		if list.NextCursor == "" {
			return
		}
		if _, err := page.DecodeCursor(list.NextCursor); err != nil {
			t.Fatalf("GET %s: next_cursor %q does not decode: %v", target, list.NextCursor, err)
		}
		u, _ := url.Parse(target)
		q := u.Query()
		q.Set("cursor", list.NextCursor)
		u.RawQuery = q.Encode()
		target = u.String()
	}
}

// escapeRequestLine percent-encodes the bytes an HTTP/1.1 request line cannot
// carry, which the server would refuse before any handler saw them, and #,
// which would end the query.
func escapeRequestLine(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '#' {
			fmt.Fprintf(&sb, "%%%02X", c)
		} else {
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
