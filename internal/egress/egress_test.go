package egress_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/egress"
)

func okServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, rawURL string, header http.Header) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if resp != nil {
		t.Cleanup(func() { _ = resp.Body.Close() })
	}
	return resp, err
}

func requireOK(t *testing.T, resp *http.Response, err error) {
	t.Helper()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "ok", string(body))
}

func requireBlocked(t *testing.T, resp *http.Response, err error) {
	t.Helper()
	require.Error(t, err)
	require.Nil(t, resp)
	require.ErrorIs(t, err, egress.ErrBlockedAddress)
}

func TestClientBlocksLoopbackByDefault(t *testing.T) {
	t.Parallel()
	srv := okServer(t)
	resp, err := get(t, egress.NewClient(egress.Options{}), srv.URL, nil)
	requireBlocked(t, resp, err)
	require.Contains(t, err.Error(), "127.0.0.1")
}

func TestClientAllowPrivate(t *testing.T) {
	t.Parallel()
	srv := okServer(t)
	resp, err := get(t, egress.NewClient(egress.Options{AllowPrivate: true}), srv.URL, nil)
	requireOK(t, resp, err)
}

// A webhook batch sends up to 16 deliveries at once, often to one endpoint:
// the connections of one batch stay open for the next, rather than all but a
// few being closed and dialled again.
func TestClientKeepsConnectionsForConcurrentRequests(t *testing.T) {
	t.Parallel()
	const n = 16
	var opened atomic.Int32
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	client := egress.NewClient(egress.Options{AllowPrivate: true})

	round := func() {
		errs := make(chan error, n)
		for range n {
			go func() {
				resp, err := client.Get(srv.URL)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				errs <- err
			}()
		}
		for range n {
			<-arrived // every request is in flight at once
		}
		for range n {
			release <- struct{}{}
		}
		for range n {
			require.NoError(t, <-errs)
		}
	}
	round()
	require.EqualValues(t, n, opened.Load())
	round()
	require.EqualValues(t, n, opened.Load(), "the second round reuses the first's connections")
}

func TestClientAllowCIDRs(t *testing.T) {
	t.Parallel()
	srv := okServer(t)

	t.Run("matching range allowed", func(t *testing.T) {
		t.Parallel()
		c := egress.NewClient(egress.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		resp, err := get(t, c, srv.URL, nil)
		requireOK(t, resp, err)
	})
	t.Run("other range refused", func(t *testing.T) {
		t.Parallel()
		c := egress.NewClient(egress.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		resp, err := get(t, c, srv.URL, nil)
		requireBlocked(t, resp, err)
	})
}

func TestClientAllowCIDRsCopied(t *testing.T) {
	t.Parallel()
	srv := okServer(t)
	cidrs := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	c := egress.NewClient(egress.Options{AllowCIDRs: cidrs})
	cidrs[0] = netip.MustParsePrefix("127.0.0.0/8") // must not widen the client's policy
	resp, err := get(t, c, srv.URL, nil)
	requireBlocked(t, resp, err)
}

func TestClientChecksResolvedAddress(t *testing.T) {
	t.Parallel()
	srv := okServer(t)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	byName := "http://" + net.JoinHostPort("localhost", port) + "/"

	t.Run("refused by default", func(t *testing.T) {
		t.Parallel()
		resp, err := get(t, egress.NewClient(egress.Options{}), byName, nil)
		requireBlocked(t, resp, err)
	})
	t.Run("reachable when private allowed", func(t *testing.T) {
		t.Parallel()
		// Shows the name really resolves to the test server, so the refusal
		// above comes from the address policy and not from resolution.
		resp, err := get(t, egress.NewClient(egress.Options{AllowPrivate: true}), byName, nil)
		requireOK(t, resp, err)
	})
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, _ *http.Request) {
		targetHits.Add(1)
		_, _ = io.WriteString(w, "target")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	resp, err := get(t, egress.NewClient(egress.Options{AllowPrivate: true}), srv.URL+"/start", nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	require.Equal(t, "/target", resp.Header.Get("Location"))
	require.Zero(t, targetHits.Load())
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "late")
	}))
	t.Cleanup(srv.Close)

	c := egress.NewClient(egress.Options{AllowPrivate: true, Timeout: 200 * time.Millisecond})
	start := time.Now()
	resp, err := get(t, c, srv.URL, nil)
	elapsed := time.Since(start)

	require.Error(t, err)
	require.Nil(t, resp)
	var uerr *url.Error
	require.ErrorAs(t, err, &uerr)
	require.True(t, uerr.Timeout(), "want a timeout error, got %v", err)
	require.Less(t, elapsed, 3*time.Second)
}

func TestClientDefaultTimeout(t *testing.T) {
	t.Parallel()
	require.Equal(t, egress.DefaultTimeout, egress.NewClient(egress.Options{}).Timeout)
	require.Equal(t, 15*time.Second, egress.DefaultTimeout)
	require.Equal(t, time.Second, egress.NewClient(egress.Options{Timeout: time.Second}).Timeout)
}

func TestClientUserAgent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		opts   egress.Options
		header http.Header
		want   string
	}{
		{"default", egress.Options{}, nil, "ctrader-webhooks"},
		{"configured", egress.Options{UserAgent: "ctrader-test/1"}, nil, "ctrader-test/1"},
		{"request wins", egress.Options{UserAgent: "ctrader-test/1"}, http.Header{"User-Agent": {"caller/2"}}, "caller/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got atomic.Value
			s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got.Store(r.Header.Get("User-Agent"))
				_, _ = io.WriteString(w, "ok")
			}))
			t.Cleanup(s.Close)

			opts := tt.opts
			opts.AllowPrivate = true
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL, nil)
			require.NoError(t, err)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := egress.NewClient(opts).Do(req)
			requireOK(t, resp, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, tt.want, got.Load())
			// The caller's request must not be modified.
			require.Equal(t, tt.header.Get("User-Agent"), req.Header.Get("User-Agent"))
		})
	}
}

func TestNewTransportIgnoresProxyEnvironment(t *testing.T) {
	t.Parallel()
	tr := egress.NewTransport(egress.Options{})
	require.Nil(t, tr.Proxy)
	require.True(t, tr.ForceAttemptHTTP2)
	require.Positive(t, tr.TLSHandshakeTimeout)
	require.Positive(t, tr.ResponseHeaderTimeout)
	require.Positive(t, tr.MaxIdleConnsPerHost)
}

func TestAllowed(t *testing.T) {
	t.Parallel()
	allowed := []string{
		"1.1.1.1",
		"8.8.8.8",
		"93.184.215.14",
		"2606:4700::1111",
		"2a00:1450:4001:80b::200e",
		"::ffff:8.8.8.8",   // mapped public
		"64:ff9b::808:808", // NAT64 of 8.8.8.8
		"2002:808:808::1",  // 6to4 of 8.8.8.8
		"100.63.255.255",   // just below CGNAT
		"100.128.0.0",      // just above CGNAT
		"172.15.255.255",   // just below 172.16/12
		"172.32.0.0",       // just above 172.16/12
		"198.17.255.255",   // just below 198.18/15
		"198.20.0.0",       // just above 198.18/15
		"223.255.255.255",  // last before multicast
	}
	blocked := []string{
		// unspecified
		"0.0.0.0", "::",
		// 0.0.0.0/8
		"0.1.2.3", "0.255.255.255",
		// loopback
		"127.0.0.1", "127.255.255.254", "::1",
		// private
		"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1", "192.168.255.255",
		"fc00::1", "fd12:3456:789a::1",
		// link-local, including cloud metadata
		"169.254.0.1", "169.254.169.254", "fe80::1", "fe80::1%eth0", "febf::1",
		// multicast
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff05::1:3", "ff0e::1",
		// CGNAT
		"100.64.0.1", "100.127.255.255",
		// IETF / documentation / benchmarking / reserved
		"192.0.0.8", "192.0.2.1", "198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9",
		"240.0.0.1", "250.1.2.3", "255.255.255.255",
		"2001:db8::1", "2001:db8:ffff::1", "3fff::1", "100::1", "2001::1", "2001:2::1", "2001:10::1",
		"fec0::1",
		// IPv4-mapped and IPv4-compatible forms
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"::127.0.0.1", "::8.8.8.8",
		// NAT64 and 6to4 embedding a non-public IPv4 address
		"64:ff9b::a00:1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::808:808",
		"2002:a00:1::1", "2002:7f00:1::",
	}

	var def egress.Options
	for _, s := range allowed {
		ip := netip.MustParseAddr(s)
		require.True(t, def.Allowed(ip), "%s should be allowed", s)
		require.True(t, egress.IsPublic(ip), "%s should be public", s)
	}
	all := egress.Options{AllowPrivate: true}
	for _, s := range blocked {
		ip := netip.MustParseAddr(s)
		require.False(t, def.Allowed(ip), "%s should be blocked", s)
		require.False(t, egress.IsPublic(ip), "%s should not be public", s)
		require.True(t, all.Allowed(ip), "%s should be allowed with AllowPrivate", s)
	}
	require.False(t, def.Allowed(netip.Addr{}), "zero Addr")
	require.False(t, all.Allowed(netip.Addr{}), "zero Addr even with AllowPrivate")
}

func TestAllowedCIDRs(t *testing.T) {
	t.Parallel()
	o := egress.Options{AllowCIDRs: []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"),
		netip.MustParsePrefix("fd00::/8"),
	}}
	tests := map[string]bool{
		"10.1.2.3":           true,
		"::ffff:10.1.2.3":    true,
		"10.2.0.1":           false,
		"fd00::5":            true,
		"fc00::5":            false,
		"127.0.0.1":          false,
		"169.254.169.254":    false,
		"8.8.8.8":            true, // public stays allowed
		"192.168.0.1":        false,
		"::ffff:192.168.0.1": false,
	}
	for s, want := range tests {
		require.Equal(t, want, o.Allowed(netip.MustParseAddr(s)), s)
	}
}

func TestParseCIDRs(t *testing.T) {
	t.Parallel()
	good := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"10.0.0.0/8", []string{"10.0.0.0/8"}},
		{"10.0.0.0/8, 192.168.1.5/32, fd00::/8", []string{"10.0.0.0/8", "192.168.1.5/32", "fd00::/8"}},
		{"192.168.1.5", []string{"192.168.1.5/32"}},
		{"::1", []string{"::1/128"}},
		{" 127.0.0.0/8 ,, ", []string{"127.0.0.0/8"}},
		{"10.1.2.3/8", []string{"10.0.0.0/8"}},
		{"::ffff:10.0.0.0/104", []string{"10.0.0.0/8"}},
		{"::ffff:10.0.0.1", []string{"10.0.0.1/32"}},
	}
	for _, tt := range good {
		got, err := egress.ParseCIDRs(tt.in)
		require.NoError(t, err, tt.in)
		var gotS []string
		for _, p := range got {
			gotS = append(gotS, p.String())
		}
		require.Equal(t, tt.want, gotS, tt.in)
	}

	bad := []struct {
		in, entry string
	}{
		{"10.0.0.0/33", "10.0.0.0/33"},
		{"10.0.0.0/8, nope", "nope"},
		{"10.0.0/8", "10.0.0/8"},
		{"300.1.1.1", "300.1.1.1"},
		{"example.com", "example.com"},
		{"fe80::1%eth0", "fe80::1%eth0"},
		{"10.0.0.0/8,192.168.0.0/", "192.168.0.0/"},
		{"fd00::/129", "fd00::/129"},
	}
	for _, tt := range bad {
		got, err := egress.ParseCIDRs(tt.in)
		require.Error(t, err, tt.in)
		require.Nil(t, got, tt.in)
		require.Contains(t, err.Error(), `"`+tt.entry+`"`, tt.in)
	}
}

// countingReader yields size bytes and records how many were requested.
type countingReader struct {
	remaining int
	read      int
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.remaining == 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.remaining)
	for i := range n {
		p[i] = 'x'
	}
	r.remaining -= n
	r.read += n
	return n, nil
}

func TestReadCapped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		body      string
		n         int
		want      string
		truncated bool
	}{
		{"smaller", "hello", 10, "hello", false},
		{"equal", "hello", 5, "hello", false},
		{"larger", "hello world", 5, "hello", true},
		{"empty", "", 5, "", false},
		{"zero cap with body", "x", 0, "", true},
		{"zero cap empty", "", 0, "", false},
		{"negative cap", "x", -1, "", true},
	}
	for _, tt := range tests {
		data, truncated, err := egress.ReadCapped(strings.NewReader(tt.body), tt.n)
		require.NoError(t, err, tt.name)
		require.Equal(t, tt.want, string(data), tt.name)
		require.Equal(t, tt.truncated, truncated, tt.name)
	}

	// Stops shortly after the cap instead of consuming a large body.
	r := &countingReader{remaining: 10 << 20}
	data, truncated, err := egress.ReadCapped(r, 1024)
	require.NoError(t, err)
	require.True(t, truncated)
	require.Len(t, data, 1024)
	require.Equal(t, 1025, r.read)

	// Read errors are reported along with what was read.
	boom := errors.New("boom")
	data, truncated, err = egress.ReadCapped(io.MultiReader(bytes.NewReader([]byte("abc")), iotestErr{boom}), 10)
	require.ErrorIs(t, err, boom)
	require.Equal(t, "abc", string(data))
	require.False(t, truncated)
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

func TestValidateURL(t *testing.T) {
	t.Parallel()
	long := "https://example.com/" + strings.Repeat("a", 2049-len("https://example.com/"))
	require.Len(t, long, 2049)
	maxLen := long[:2048]

	ok := []string{
		"http://example.com",
		"https://example.com/hooks/ctrader?x=1&y=2",
		"https://example.com:8443/path",
		"HTTPS://Example.COM/path",
		"http://[::1]:8080/x", // address policy is enforced at connect time
		"http://127.0.0.1/x",
		"http://169.254.169.254/latest/meta-data",
		maxLen,
	}
	for _, u := range ok {
		require.NoError(t, egress.ValidateURL(u), u)
	}

	bad := []struct {
		in, msg string
	}{
		{"", "empty"},
		{"ftp://example.com/file", "http or https"},
		{"file:///etc/passwd", "http or https"},
		{"javascript:alert(1)", "http or https"},
		{"/relative/path", "absolute"},
		{"example.com/hook", "absolute"},
		{"//example.com/hook", "absolute"},
		{"http://", "host"},
		{"https:///path", "host"},
		{"http:example.com", "host"},
		{"http://:8080/x", "host"},
		{"https://user:pass@example.com", "credentials"},
		{"https://user@example.com", "credentials"},
		{"https://example.com/hook#frag", "fragment"},
		{"https://example.com/hook#", "fragment"},
		{long, "2048"},
		{" https://example.com", "whitespace"},
		{"https://example.com:0/x", "port"},
		{"https://example.com:70000/x", "port"},
		{"https://example.com:abc/x", "parsed"},
		{"https://exa mple.com/", "parsed"},
		{"https://example.com/\x00", "parsed"},
	}
	for _, tt := range bad {
		err := egress.ValidateURL(tt.in)
		require.Error(t, err, tt.in)
		require.ErrorIs(t, err, egress.ErrInvalidURL, tt.in)
		require.Contains(t, err.Error(), tt.msg, tt.in)
	}

	// Credentials must never be echoed back in the message.
	err := egress.ValidateURL("https://user:s3cret@example.com")
	require.NotContains(t, err.Error(), "s3cret")

	// Nor anything taken for a scheme, which may be most of the URL.
	err = egress.ValidateURL("sk-live-0123456789abcdef:x")
	require.NotContains(t, err.Error(), "sk-live")
}
