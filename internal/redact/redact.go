// Package redact removes secrets from text that is logged, stored or shown:
// the credentials and query values of URLs, which often carry passwords and
// tokens. It works on text that is not a valid URL as well, because that is
// exactly where a parser gives up and the secret slips through.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// Placeholder replaces every redacted part.
const Placeholder = "redacted"

// urlPattern finds URLs in free text: a scheme, "://", then everything up to
// white space or a quote.
var urlPattern = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]{0,31}://[^\s"'<>]+`)

// URL returns s with its userinfo and the values of its query replaced by
// Placeholder. Keys of the query, the scheme, host and path stay, so the
// result still says where a request went.
func URL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	// The authority ends at the first "/", "?" or "#"; its userinfo at the
	// last "@" within it.
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		rest = Placeholder + rest[at:]
	}
	return scheme + "://" + query(rest)
}

// query replaces the values in the query part of rest (what follows "://").
func query(rest string) string {
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		return rest
	}
	head, tail := rest[:q+1], rest[q+1:]
	fragment := ""
	if h := strings.IndexByte(tail, '#'); h >= 0 {
		tail, fragment = tail[:h], tail[h:]
	}
	if tail == "" {
		return rest
	}
	pairs := strings.Split(tail, "&")
	for i, p := range pairs {
		key, _, _ := strings.Cut(p, "=")
		if key == "" && p == "" {
			continue
		}
		pairs[i] = key + "=" + Placeholder
	}
	return head + strings.Join(pairs, "&") + fragment
}

// Text returns s with every URL in it passed through URL.
func Text(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlPattern.ReplaceAllStringFunc(s, URL)
}

// Error returns err with the URL of any *url.Error in its chain redacted, so
// that its text can be logged and stored. It changes that *url.Error in
// place: callers pass errors they own, such as an HTTP client's.
func Error(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = URL(ue.URL)
	}
	return err
}
