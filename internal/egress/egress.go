// Package egress provides the outbound HTTP client ctrader uses to deliver
// webhooks to URLs configured by clients.
//
// Because those URLs are chosen by clients, the client is hardened against
// server-side request forgery (SSRF): every connection is checked against an
// address policy at connect time, on the address actually being dialled after
// DNS resolution, so a host name that resolves to a private, loopback or
// link-local address (including cloud metadata endpoints) is refused, and DNS
// rebinding cannot slip a different address in between a check and the dial.
// Environment proxy settings are ignored, redirects are never followed, and
// every request is bounded by timeouts.
package egress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults applied by NewClient when the corresponding Options field is zero.
const (
	DefaultTimeout   = 15 * time.Second
	DefaultUserAgent = "ctrader-webhooks"

	// MaxURLLength is the longest webhook URL ValidateURL accepts.
	MaxURLLength = 2048

	dialTimeout           = 5 * time.Second
	tlsHandshakeTimeout   = 5 * time.Second
	responseHeaderTimeout = 10 * time.Second
	idleConnTimeout       = 90 * time.Second
	// A webhook batch sends up to 16 deliveries at once and several batches
	// run side by side, often to one endpoint: connections kept for fewer
	// requests than that are closed after each and dialled again (with
	// 4, three deliveries in four opened a connection of their own).
	maxIdleConns          = 256
	maxIdleConnsPerHost   = 64
	maxResponseHeaderSize = 64 << 10
)

// Options configures NewClient and the address policy used by Allowed.
type Options struct {
	// Timeout bounds the whole request, including reading the response
	// body. DefaultTimeout is used when it is zero or negative.
	Timeout time.Duration
	// AllowPrivate permits every non-public address. Intended for local
	// development and tests only.
	AllowPrivate bool
	// AllowCIDRs permits these ranges even though they are not public.
	AllowCIDRs []netip.Prefix
	// UserAgent is sent on every request that does not set one itself.
	// DefaultUserAgent is used when it is empty.
	UserAgent string
}

// ErrBlockedAddress is returned (wrapped) when the destination resolves to an
// address that is not allowed.
var ErrBlockedAddress = errors.New("egress: destination address is not allowed")

// ErrInvalidURL is wrapped by every error ValidateURL returns.
var ErrInvalidURL = errors.New("invalid webhook URL")

// NewClient returns an HTTP client that only connects to addresses permitted
// by opts, ignores proxy environment variables, does not follow redirects
// (a 3xx response is returned to the caller as is) and sets a User-Agent on
// every request.
func NewClient(opts Options) *http.Client {
	opts = opts.withDefaults()
	return &http.Client{
		Transport: &userAgentTransport{base: NewTransport(opts), userAgent: opts.UserAgent},
		Timeout:   opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// NewTransport returns the bare transport used by NewClient: a fresh
// *http.Transport whose dialer enforces opts' address policy and which never
// uses a proxy. It does not set a User-Agent and applies no overall timeout;
// most callers want NewClient.
func NewTransport(opts Options) *http.Transport {
	opts = opts.withDefaults()
	dialer := &net.Dialer{
		Timeout:        dialTimeout,
		KeepAlive:      30 * time.Second,
		ControlContext: opts.control,
	}
	return &http.Transport{
		Proxy:                  nil, // never honour HTTP_PROXY and friends
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ResponseHeaderTimeout:  responseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        idleConnTimeout,
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		MaxResponseHeaderBytes: maxResponseHeaderSize,
		ForceAttemptHTTP2:      true,
	}
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = DefaultUserAgent
	}
	// Copy so later changes to the caller's slice cannot widen the policy.
	o.AllowCIDRs = append([]netip.Prefix(nil), o.AllowCIDRs...)
	return o
}

// control runs after the destination has been resolved and the socket
// created, immediately before connect(2), so it sees the exact address that
// will be dialled.
func (o Options) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dial address %q (%s): %v", ErrBlockedAddress, address, network, err)
	}
	if !o.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrBlockedAddress, ap.Addr().Unmap())
	}
	return nil
}

// Allowed reports whether ip may be dialled under opts.
func (o Options) Allowed(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("").Unmap()
	if o.AllowPrivate {
		return true
	}
	for _, p := range o.AllowCIDRs {
		if p.Contains(ip) {
			return true
		}
	}
	return IsPublic(ip)
}

// IsPublic reports whether ip is a publicly routable unicast address, which
// is what the default policy permits. IPv4-mapped IPv6 addresses are judged
// by their IPv4 address, and NAT64 (64:ff9b::/96) and 6to4 (2002::/16)
// addresses by the IPv4 address they embed.
func IsPublic(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("").Unmap()
	if ip.IsUnspecified() || ip.IsLoopback() || ip.IsPrivate() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() ||
		!ip.IsGlobalUnicast() {
		return false
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64Prefix.Contains(ip):
			return IsPublic(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFourPrefix.Contains(ip):
			return IsPublic(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, p := range blockedPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

var (
	nat64Prefix     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourPrefix = netip.MustParsePrefix("2002::/16")
)

// blockedPrefixes lists ranges that are not publicly routable, on top of what
// netip's Is* methods already catch (loopback, RFC 1918 / fc00::/7,
// link-local, multicast, unspecified, broadcast).
var blockedPrefixes = func() []netip.Prefix {
	cidrs := []string{
		// IPv4
		"0.0.0.0/8",          // "this network"
		"10.0.0.0/8",         // private
		"100.64.0.0/10",      // carrier-grade NAT
		"127.0.0.0/8",        // loopback
		"169.254.0.0/16",     // link-local, cloud metadata (169.254.169.254)
		"172.16.0.0/12",      // private
		"192.0.0.0/24",       // IETF protocol assignments
		"192.0.2.0/24",       // TEST-NET-1
		"192.88.99.0/24",     // deprecated 6to4 relay anycast
		"192.168.0.0/16",     // private
		"198.18.0.0/15",      // benchmarking
		"198.51.100.0/24",    // TEST-NET-2
		"203.0.113.0/24",     // TEST-NET-3
		"224.0.0.0/4",        // multicast
		"240.0.0.0/4",        // reserved
		"255.255.255.255/32", // limited broadcast
		// IPv6
		"::/96",          // unspecified, loopback, deprecated IPv4-compatible
		"::ffff:0:0/96",  // IPv4-mapped (normally unmapped before this check)
		"64:ff9b:1::/48", // local-use NAT64
		"100::/64",       // discard-only
		"2001::/32",      // Teredo
		"2001:2::/48",    // benchmarking
		"2001:10::/28",   // ORCHID
		"2001:20::/28",   // ORCHIDv2
		"2001:db8::/32",  // documentation
		"3fff::/20",      // documentation
		"5f00::/16",      // SRv6 SIDs
		"fc00::/7",       // unique local
		"fe80::/10",      // link-local
		"fec0::/10",      // deprecated site-local
		"ff00::/8",       // multicast
	}
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}()

// ParseCIDRs parses a comma-separated list such as
// "10.0.0.0/8, 192.168.1.5/32, fd00::/8". A bare IP address means that single
// host. Empty entries are ignored, so "" yields no prefixes. Prefixes are
// returned masked, and IPv4-mapped IPv6 prefixes are converted to IPv4.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, raw := range strings.Split(s, ",") {
		entry := strings.TrimSpace(raw)
		if entry == "" {
			continue
		}
		p, err := parseCIDR(entry)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR entry %d %q: %w", i+1, entry, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parseCIDR(entry string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(entry, "/") {
		var err error
		if p, err = netip.ParsePrefix(entry); err != nil {
			return netip.Prefix{}, errors.New("not a valid address/prefix-length")
		}
	} else {
		a, err := netip.ParseAddr(entry)
		if err != nil {
			return netip.Prefix{}, errors.New("not a valid IP address or CIDR")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zoned addresses are not supported")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// ReadCapped reads at most n bytes of r and reports whether there was more.
// It reads one byte beyond n to detect truncation and then stops; it does not
// drain or close r. On a read error it returns the bytes read so far.
func ReadCapped(r io.Reader, n int) (data []byte, truncated bool, err error) {
	if n < 0 {
		n = 0
	}
	data, err = io.ReadAll(io.LimitReader(r, int64(n)+1))
	if len(data) > n {
		data, truncated = data[:n], true
	}
	return data, truncated, err
}

// ValidateURL checks a webhook URL as written by a client: it must be an
// absolute http or https URL with a host, no user:password credentials, no
// fragment, and at most MaxURLLength bytes. The returned error wraps
// ErrInvalidURL and its message is suitable for showing to the client; it
// never repeats the URL, which could contain secrets.
//
// ValidateURL does not judge the destination address: that is enforced at
// connect time by the client from NewClient, on the resolved address.
func ValidateURL(raw string) error {
	invalid := func(msg string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidURL, fmt.Sprintf(msg, args...))
	}
	switch {
	case raw == "":
		return invalid("must not be empty")
	case len(raw) > MaxURLLength:
		return invalid("must be at most %d characters, got %d", MaxURLLength, len(raw))
	case strings.TrimSpace(raw) != raw:
		return invalid("must not have leading or trailing whitespace")
	case strings.Contains(raw, "#"):
		return invalid("must not contain a fragment (#...)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return invalid("cannot be parsed")
	}
	if u.Scheme == "" {
		return invalid("must be absolute, starting with http:// or https://")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		// Not repeated: the scheme is whatever precedes the first colon,
		// up to the whole URL's length.
		return invalid("scheme must be http or https")
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return invalid("must include a host")
	}
	if u.User != nil {
		return invalid("must not contain user credentials")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid("port must be between 1 and 65535")
		}
	}
	return nil
}

// userAgentTransport sets the User-Agent header on requests that lack one.
type userAgentTransport struct {
	base      http.RoundTripper
	userAgent string
}

func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.userAgent)
	}
	return t.base.RoundTrip(req)
}
