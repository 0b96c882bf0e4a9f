package egress_test

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/ctrader/ctrader/internal/egress"
)

// neverPublic are ranges no default policy may dial, listed here rather than
// taken from the package so that the test does not share its mistakes.
var neverPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8",
		"fd00:ec2::254/128", // AWS instance metadata over IPv6
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// FuzzIsPublic checks the address policy on any 4- or 16-byte address: a
// non-public IPv4 address stays non-public in every IPv6 form that embeds it
// (mapped, NAT64, 6to4), zones change nothing, the ranges above are never
// public, and Allowed agrees with IsPublic and with its options.
func FuzzIsPublic(f *testing.F) {
	for _, s := range []string{
		"8.8.8.8", "127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "0.0.0.0",
		"255.255.255.255", "224.0.0.1", "192.0.2.1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1",
		"64:ff9b::7f00:1", "64:ff9b::808:808", "2002:7f00:1::", "2002:808:808::1",
		"2001::1", "2001:db8::1", "2606:4700::1111", "fe80::1", "fd00:ec2::254", "ff02::1", "::", "::1",
	} {
		a := netip.MustParseAddr(s)
		f.Add(a.AsSlice(), "")
	}
	f.Add(netip.MustParseAddr("fe80::1").AsSlice(), "eth0")
	f.Add([]byte{1, 2, 3}, "")

	f.Fuzz(func(t *testing.T, b []byte, zone string) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			if egress.IsPublic(a) || (egress.Options{AllowPrivate: true}).Allowed(a) {
				t.Fatalf("the invalid address from %x is allowed", b)
			}
			return
		}
		public := egress.IsPublic(a)
		u := a.Unmap()

		if a.Is6() && egress.IsPublic(a.WithZone(zone)) != public {
			t.Fatalf("IsPublic(%v) changes with zone %q", a, zone)
		}
		if egress.IsPublic(u) != public {
			t.Fatalf("IsPublic(%v) = %v but IsPublic(%v) = %v", a, public, u, !public)
		}
		if public && (u.IsUnspecified() || u.IsLoopback() || u.IsPrivate() || u.IsLinkLocalUnicast() ||
			u.IsMulticast() || u.IsInterfaceLocalMulticast() || u.IsLinkLocalMulticast()) {
			t.Fatalf("IsPublic(%v) = true for a non-unicast or local address", a)
		}
		for _, p := range neverPublic {
			if public && p.Contains(u) {
				t.Fatalf("IsPublic(%v) = true inside %v", a, p)
			}
		}
		if u.Is4() {
			v4 := u.As4()
			mapped := netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
			nat64 := netip.AddrFrom16([16]byte{0: 0x00, 1: 0x64, 2: 0xff, 3: 0x9b, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
			sixToFour := netip.AddrFrom16([16]byte{0: 0x20, 1: 0x02, 2: v4[0], 3: v4[1], 4: v4[2], 5: v4[3], 15: 1})
			for _, e := range []netip.Addr{mapped, nat64, sixToFour} {
				if egress.IsPublic(e) != public {
					t.Fatalf("IsPublic(%v) = %v but IsPublic(%v) = %v", u, public, e, !public)
				}
			}
		}

		if (egress.Options{}).Allowed(a) != public {
			t.Fatalf("Allowed(%v) under the default policy differs from IsPublic", a)
		}
		if !(egress.Options{AllowPrivate: true}).Allowed(a) {
			t.Fatalf("Allowed(%v) = false with AllowPrivate", a)
		}
		host := netip.PrefixFrom(u, u.BitLen())
		if !(egress.Options{AllowCIDRs: []netip.Prefix{host}}).Allowed(a) {
			t.Fatalf("Allowed(%v) = false with %v allowed", a, host)
		}
	})
}

// FuzzParseCIDRs checks that ParseCIDRs never panics and keeps what its
// documentation promises: one masked prefix per non-empty entry, IPv4-mapped
// prefixes as IPv4, no zones, and its output parses back to itself.
func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{
		"", ",", " , ", "10.0.0.0/8, 192.168.1.5/32, fd00::/8", "10.1.2.3/8", "192.168.1.5",
		"::ffff:10.0.0.0/104", "::ffff:10.0.0.1", "::ffff:0:0/95", "fe80::1%eth0", "fe80::/10%eth0",
		"10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "/8", "1.2.3.4/08", "::/0", "0.0.0.0/0", "x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := egress.ParseCIDRs(s)
		if err != nil {
			if got != nil {
				t.Fatalf("ParseCIDRs(%q) failed but returned %v", s, got)
			}
			return
		}
		entries := 0
		for _, e := range strings.Split(s, ",") {
			if strings.TrimSpace(e) != "" {
				entries++
			}
		}
		if len(got) != entries {
			t.Fatalf("ParseCIDRs(%q) = %d prefixes for %d entries", s, len(got), entries)
		}
		texts := make([]string, len(got))
		for i, p := range got {
			switch {
			case !p.IsValid():
				t.Fatalf("ParseCIDRs(%q)[%d] is invalid", s, i)
			case p != p.Masked():
				t.Fatalf("ParseCIDRs(%q)[%d] = %v is not masked", s, i, p)
			case p.Addr().Zone() != "":
				t.Fatalf("ParseCIDRs(%q)[%d] = %v has a zone", s, i, p)
			case p.Addr().Is4In6() && p.Bits() >= 96:
				t.Fatalf("ParseCIDRs(%q)[%d] = %v is IPv4-mapped", s, i, p)
			}
			texts[i] = p.String()
		}
		again, err := egress.ParseCIDRs(strings.Join(texts, ","))
		if err != nil {
			t.Fatalf("ParseCIDRs of its own output %q: %v", texts, err)
		}
		for i := range got {
			if again[i] != got[i] {
				t.Fatalf("ParseCIDRs(%q) = %v, but its output parses as %v", s, got, again)
			}
		}
	})
}

// maxValidateURLMessage bounds ValidateURL's messages, which are fixed text
// and numbers.
const maxValidateURLMessage = 128

// FuzzValidateURL holds ValidateURL to its documentation: an accepted URL is
// an absolute http or https URL with a host and a valid port, no credentials
// and no fragment, at most MaxURLLength bytes, and a request can be made for
// it; a refusal wraps ErrInvalidURL and does not repeat the URL or its
// credentials.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hooks/ctrader?x=1&y=2", "http://[::1]:8080/x", "HTTPS://Example.COM/path",
		"http://169.254.169.254/latest/meta-data", "https://user:s3cret-token@example.com/hook",
		"https://:s3cret-token@example.com/hook", "https://example.com/hook#frag", "http://[fe80::1%25eth0]/",
		"https://example.com:0/x", "https://example.com:65536/x", "https://example.com:+80/x",
		"https://example.com:0080/x", "http://a:b@/", "http:///", "http:opaque", "//example.com",
		"javascript:alert(1)", "https://exa mple.com/", "https://example.com/\x00", "https://example.com/%zz",
		"https://example.com/?token=abcdefghijklmnopqrstuvwxyz", "http://[::1", "http://example.com:80:80/",
		"https://example.com/" + strings.Repeat("a", 2048),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := egress.ValidateURL(raw)
		if err != nil {
			if !errors.Is(err, egress.ErrInvalidURL) {
				t.Fatalf("ValidateURL(%q) = %v, which does not wrap ErrInvalidURL", raw, err)
			}
			// A message of bounded length cannot repeat what the URL holds.
			msg := err.Error()
			if len(msg) > maxValidateURLMessage {
				t.Fatalf("ValidateURL(%q) gives a %d-byte message: %s", raw, len(msg), msg)
			}
			if len(raw) >= 16 && strings.Contains(msg, raw) {
				t.Fatalf("ValidateURL(%q) repeats the URL: %s", raw, msg)
			}
			if u, perr := url.Parse(raw); perr == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && len(p) >= 4 && strings.Contains(msg, p) {
					t.Fatalf("ValidateURL(%q) repeats the password: %s", raw, msg)
				}
			}
			return
		}
		if len(raw) > egress.MaxURLLength || strings.TrimSpace(raw) != raw || strings.Contains(raw, "#") {
			t.Fatalf("ValidateURL accepted %q: too long, padded or with a fragment", raw)
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("ValidateURL accepted %q, which net/url cannot parse: %v", raw, perr)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			t.Fatalf("ValidateURL accepted %q with scheme %q", raw, u.Scheme)
		}
		if u.Opaque != "" || u.Hostname() == "" || u.User != nil || u.Fragment != "" {
			t.Fatalf("ValidateURL accepted %q: opaque, host-less, with credentials or a fragment", raw)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				t.Fatalf("ValidateURL accepted %q with port %q", raw, p)
			}
		}
		if _, err := http.NewRequest(http.MethodPost, raw, nil); err != nil {
			t.Fatalf("ValidateURL accepted %q, for which no request can be made: %v", raw, err)
		}
	})
}
