package redact_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://example.com/hooks", "https://example.com/hooks"},
		{"https://admin:pw@example.com/x", "https://redacted@example.com/x"},
		{"https://token@example.com", "https://redacted@example.com"},
		// url.Parse refuses this one; the password must go anyway.
		{"https://admin:pw@example.com/%zz?x=1", "https://redacted@example.com/%zz?x=redacted"},
		{"https://example.com/hook?token=s3cret&v=2", "https://example.com/hook?token=redacted&v=redacted"},
		{"https://example.com/hook?s3cret", "https://example.com/hook?s3cret=redacted"},
		{"https://example.com/a?t=1#frag", "https://example.com/a?t=redacted#frag"},
		{"https://example.com/p@th?x", "https://example.com/p@th?x=redacted"},
		{"https://a:b@c@example.com/", "https://redacted@example.com/"},
		{"postgres://ctrader:pw@db:5432/ctrader?sslmode=disable&password=x", "postgres://redacted@db:5432/ctrader?sslmode=redacted&password=redacted"},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, redact.URL(tt.in), tt.in)
	}
}

func TestText(t *testing.T) {
	t.Parallel()
	in := `Post "https://hooks.example.com/in?token=abc123": dial tcp: lookup hooks.example.com: no such host`
	require.Equal(t, `Post "https://hooks.example.com/in?token=redacted": dial tcp: lookup hooks.example.com: no such host`, redact.Text(in))
	require.Equal(t, "plain", redact.Text("plain"))
}

func TestErrorRedactsTheClientsURL(t *testing.T) {
	t.Parallel()
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/keys?api_key=abc123", nil)
	require.NoError(t, err)
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err)
	err = redact.Error(err)
	require.NotContains(t, err.Error(), "abc123")
	var ue *url.Error
	require.True(t, errors.As(err, &ue))
	require.Contains(t, err.Error(), "api_key=redacted")
}

var validScheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]{0,31}$`)

// FuzzURL: a URL built from any parts comes back with exactly its userinfo
// and query value replaced, whatever else it holds; redacting again changes
// nothing; and Text finds it in prose.
func FuzzURL(f *testing.F) {
	f.Add("https", "admin", "pw-secret", "example.com", "/x", "token", "tok-secret")
	f.Add("https", "admin", "pw-secret", "example.com", "/%zz", "a", "tok-secret")
	f.Add("http", "", "pw-secret", "[::1]:80", "", "k", "tok-secret")
	f.Add("postgres", "u", "pw-secret", "db", "/d", "password", "tok-secret")
	f.Fuzz(func(t *testing.T, scheme, user, pass, host, path, key, value string) {
		if strings.Contains(scheme, "://") || strings.ContainsAny(host, "/?#@") || strings.ContainsAny(user+pass, "/?#") ||
			(path != "" && path[0] != '/') || strings.ContainsAny(path, "?#") || strings.ContainsAny(key+value, "&#") ||
			strings.Contains(key, "=") || key == "" {
			return
		}
		in := scheme + "://" + user + ":" + pass + "@" + host + path + "?" + key + "=" + value
		want := scheme + "://" + redact.Placeholder + "@" + host + path + "?" + key + "=" + redact.Placeholder
		out := redact.URL(in)
		if out != want {
			t.Fatalf("URL(%q) = %q, want %q", in, out, want)
		}
		if again := redact.URL(out); again != out {
			t.Fatalf("redacting %q again gave %q", out, again)
		}
		if !validScheme.MatchString(scheme) || strings.ContainsAny(in, " \t\r\n\f\"'<>") {
			return // not a URL Text can find in prose
		}
		if text := redact.Text("error: " + in + " failed"); text != "error: "+want+" failed" {
			t.Fatalf("Text(%q) = %q", in, text)
		}
	})
}
