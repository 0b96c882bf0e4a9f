package auth_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/auth"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// claims returns valid claims for subject "alice" with the scope "read write".
func claims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub":   "alice",
		"iss":   "https://issuer.test",
		"aud":   "ctrader",
		"iat":   now.Unix(),
		"nbf":   now.Unix(),
		"exp":   now.Add(time.Hour).Unix(),
		"scope": "read write",
	}
}

func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func hsVerifier(t *testing.T, opts auth.Options) *auth.Verifier {
	t.Helper()
	opts.HS256Secret = secret
	opts.Logger = discard()
	v, err := auth.NewVerifier(t.Context(), opts)
	require.NoError(t, err)
	return v
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwkOf returns the public JWK of a private key.
func jwkOf(t *testing.T, kid string, key any) map[string]any {
	t.Helper()
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
			"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PrivateKey:
		pt, err := k.PublicKey.Bytes()
		require.NoError(t, err)
		return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])}
	case ed25519.PrivateKey:
		return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k.Public().(ed25519.PublicKey))}
	}
	t.Fatalf("unsupported key %T", key)
	return nil
}

func jwks(t *testing.T, keys ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	require.NoError(t, err)
	return b
}

// jwksServer serves a JWK set that the test may replace, counting requests.
type jwksServer struct {
	URL      string
	body     atomic.Pointer[[]byte]
	requests atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(body)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.requests.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(*s.body.Load())
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/.well-known/jwks.json"
	return s
}

func (s *jwksServer) set(body []byte) { s.body.Store(&body) }

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return k
}

func requireInvalid(t *testing.T, err error, reason error, raw string) {
	t.Helper()
	require.ErrorIs(t, err, auth.ErrInvalidToken)
	if reason != nil {
		require.ErrorIs(t, err, reason)
	}
	require.NotContains(t, err.Error(), raw)
	for _, part := range strings.Split(raw, ".") {
		if len(part) > 8 {
			require.NotContains(t, err.Error(), part)
		}
	}
}

func TestVerifyHS256(t *testing.T) {
	t.Parallel()
	v := hsVerifier(t, auth.Options{Issuer: "https://issuer.test", Audience: "ctrader"})
	c := claims()
	p, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", c))
	require.NoError(t, err)
	require.Equal(t, "alice", p.Subject)
	require.Equal(t, []auth.Scope{auth.ScopeRead, auth.ScopeWrite}, p.Scopes)
	require.Equal(t, time.Unix(c["exp"].(int64), 0), p.ExpiresAt)
	require.True(t, p.Has(auth.ScopeRead))
	require.True(t, p.Has(auth.ScopeWrite))
	require.False(t, p.Has(auth.ScopeAdmin))
	require.NoError(t, p.Require(auth.ScopeWrite))
	require.ErrorIs(t, p.Require(auth.ScopeAdmin), auth.ErrInsufficientScope)
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name   string
		edit   func(c jwt.MapClaims)
		key    []byte
		reason error
	}{
		{name: "expired", edit: func(c jwt.MapClaims) {
			c["iat"] = now.Add(-2 * time.Hour).Unix()
			c["nbf"] = now.Add(-2 * time.Hour).Unix()
			c["exp"] = now.Add(-time.Hour).Unix()
		}, reason: jwt.ErrTokenExpired},
		{name: "expired beyond leeway", edit: func(c jwt.MapClaims) {
			c["exp"] = now.Add(-time.Minute).Unix()
		}, reason: jwt.ErrTokenExpired},
		{name: "not yet valid", edit: func(c jwt.MapClaims) {
			c["nbf"] = now.Add(2 * time.Minute).Unix()
		}, reason: jwt.ErrTokenNotValidYet},
		{name: "issued in the future", edit: func(c jwt.MapClaims) {
			c["iat"] = now.Add(2 * time.Minute).Unix()
		}, reason: jwt.ErrTokenUsedBeforeIssued},
		{name: "wrong audience", edit: func(c jwt.MapClaims) { c["aud"] = "someone-else" }, reason: jwt.ErrTokenInvalidAudience},
		{name: "no audience", edit: func(c jwt.MapClaims) { delete(c, "aud") }, reason: jwt.ErrTokenRequiredClaimMissing},
		{name: "wrong issuer", edit: func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }, reason: jwt.ErrTokenInvalidIssuer},
		{name: "missing exp", edit: func(c jwt.MapClaims) { delete(c, "exp") }, reason: jwt.ErrTokenRequiredClaimMissing},
		{name: "missing sub", edit: func(c jwt.MapClaims) { delete(c, "sub") }},
		{name: "wrong secret", key: []byte("another-secret-that-is-long-enough-32"), reason: jwt.ErrTokenSignatureInvalid},
		{name: "scope of the wrong type", edit: func(c jwt.MapClaims) { c["scp"] = 42 }, reason: jwt.ErrTokenMalformed},
	}
	v := hsVerifier(t, auth.Options{Issuer: "https://issuer.test", Audience: "ctrader"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := claims()
			if tt.edit != nil {
				tt.edit(c)
			}
			key := secret
			if tt.key != nil {
				key = tt.key
			}
			raw := sign(t, jwt.SigningMethodHS256, key, "", c)
			p, err := v.Verify(t.Context(), raw)
			require.Nil(t, p)
			requireInvalid(t, err, tt.reason, raw)
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	v := hsVerifier(t, auth.Options{})
	_, err := v.Verify(t.Context(), "")
	require.ErrorIs(t, err, auth.ErrNoToken)
	for _, raw := range []string{"garbage-token-value", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.not-json-at-all.sig", strings.Repeat("a", auth.MaxTokenBytes+1)} {
		_, err := v.Verify(t.Context(), raw)
		requireInvalid(t, err, nil, raw)
	}
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	v := hsVerifier(t, auth.Options{})
	c := claims()
	c["nbf"] = time.Now().Add(10 * time.Second).Unix()
	c["iat"] = time.Now().Add(10 * time.Second).Unix()
	_, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", c))
	require.NoError(t, err, "within the default leeway of 30s")

	c["exp"] = time.Now().Add(-10 * time.Second).Unix()
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", c))
	require.NoError(t, err, "expired within the leeway")

	strict := hsVerifier(t, auth.Options{Leeway: time.Second})
	c = claims()
	c["nbf"] = time.Now().Add(10 * time.Second).Unix()
	_, err = strict.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", c))
	require.ErrorIs(t, err, jwt.ErrTokenNotValidYet)
}

func TestVerifyScopeClaims(t *testing.T) {
	t.Parallel()
	v := hsVerifier(t, auth.Options{})
	tests := []struct {
		name string
		set  map[string]any
		want []auth.Scope
	}{
		{name: "scope string", set: map[string]any{"scope": "write read"}, want: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}},
		{name: "scp array", set: map[string]any{"scp": []string{"admin", "read"}}, want: []auth.Scope{auth.ScopeRead, auth.ScopeAdmin}},
		{name: "scp string", set: map[string]any{"scp": "write"}, want: []auth.Scope{auth.ScopeWrite}},
		{name: "both, merged", set: map[string]any{"scope": "read", "scp": []string{"write", "read"}}, want: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}},
		{name: "unknown ignored", set: map[string]any{"scope": "openid read profile", "scp": []string{"superuser"}}, want: []auth.Scope{auth.ScopeRead}},
		{name: "none", set: map[string]any{}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := claims()
			delete(c, "scope")
			for k, val := range tt.set {
				c[k] = val
			}
			p, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodHS256, secret, "", c))
			require.NoError(t, err)
			require.Equal(t, tt.want, p.Scopes)
		})
	}
}

func TestVerifyRS256FromURL(t *testing.T) {
	t.Parallel()
	key := rsaKey(t)
	srv := newJWKSServer(t, jwks(t, jwkOf(t, "rsa-1", key)))
	v, err := auth.NewVerifier(t.Context(), auth.Options{JWKSURL: srv.URL, Audience: "ctrader", Logger: discard()})
	require.NoError(t, err)

	p, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, key, "rsa-1", claims()))
	require.NoError(t, err)
	require.Equal(t, "alice", p.Subject)
	require.True(t, p.Has(auth.ScopeWrite))

	p, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, key, "", claims()))
	require.NoError(t, err, "no kid, and the set has one RSA key")
	require.Equal(t, "alice", p.Subject)

	other := rsaKey(t)
	raw := sign(t, jwt.SigningMethodRS256, other, "rsa-1", claims())
	_, err = v.Verify(t.Context(), raw)
	requireInvalid(t, err, jwt.ErrTokenSignatureInvalid, raw)

	raw = sign(t, jwt.SigningMethodHS256, secret, "", claims())
	_, err = v.Verify(t.Context(), raw)
	requireInvalid(t, err, nil, raw)
	require.EqualValues(t, 1, srv.requests.Load())
}

func TestVerifyFromFile(t *testing.T) {
	t.Parallel()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(path, jwks(t, jwkOf(t, "ec-1", ecKey), jwkOf(t, "ed-1", edKey)), 0o600))
	v, err := auth.NewVerifier(t.Context(), auth.Options{JWKSFile: path, Logger: discard()})
	require.NoError(t, err)

	for _, raw := range []string{
		sign(t, jwt.SigningMethodES256, ecKey, "ec-1", claims()),
		sign(t, jwt.SigningMethodEdDSA, edKey, "ed-1", claims()),
		sign(t, jwt.SigningMethodES256, ecKey, "", claims()),
		sign(t, jwt.SigningMethodEdDSA, edKey, "", claims()),
	} {
		p, err := v.Verify(t.Context(), raw)
		require.NoError(t, err)
		require.Equal(t, "alice", p.Subject)
		require.Equal(t, []auth.Scope{auth.ScopeRead, auth.ScopeWrite}, p.Scopes)
	}

	raw := sign(t, jwt.SigningMethodES256, ecKey, "ed-1", claims())
	_, err = v.Verify(t.Context(), raw)
	requireInvalid(t, err, nil, raw)

	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	raw = sign(t, jwt.SigningMethodEdDSA, otherPriv, "ed-1", claims())
	_, err = v.Verify(t.Context(), raw)
	requireInvalid(t, err, jwt.ErrTokenSignatureInvalid, raw)
}

func TestVerifyUnknownKidRefreshesOnce(t *testing.T) {
	t.Parallel()
	oldKey, newKey, garbageKey := rsaKey(t), rsaKey(t), rsaKey(t)
	srv := newJWKSServer(t, jwks(t, jwkOf(t, "old", oldKey)))
	v, err := auth.NewVerifier(t.Context(), auth.Options{JWKSURL: srv.URL, Logger: discard()})
	require.NoError(t, err)
	require.EqualValues(t, 1, srv.requests.Load())

	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, oldKey, "old", claims()))
	require.NoError(t, err)
	require.EqualValues(t, 1, srv.requests.Load(), "a known kid needs no fetch")

	srv.set(jwks(t, jwkOf(t, "old", oldKey), jwkOf(t, "new", newKey)))
	p, err := v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, newKey, "new", claims()))
	require.NoError(t, err)
	require.Equal(t, "alice", p.Subject)
	require.EqualValues(t, 2, srv.requests.Load(), "an unknown kid causes one fetch")

	raw := sign(t, jwt.SigningMethodRS256, garbageKey, "garbage", claims())
	_, err = v.Verify(t.Context(), raw)
	requireInvalid(t, err, nil, raw)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), raw)
			require.ErrorIs(t, err, auth.ErrInvalidToken)
		})
	}
	wg.Wait()
	require.EqualValues(t, 2, srv.requests.Load(), "unknown kids right after a refresh cause no fetch")
}

func TestVerifyUnknownKidConcurrent(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey(t), rsaKey(t)
	srv := newJWKSServer(t, jwks(t, jwkOf(t, "old", oldKey)))
	v, err := auth.NewVerifier(t.Context(), auth.Options{JWKSURL: srv.URL, Logger: discard()})
	require.NoError(t, err)

	srv.set(jwks(t, jwkOf(t, "new", newKey)))
	raw := sign(t, jwt.SigningMethodRS256, newKey, "new", claims())
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), raw)
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.EqualValues(t, 2, srv.requests.Load())
}

func TestVerifyRefreshInBackground(t *testing.T) {
	t.Parallel()
	oldKey, newKey := rsaKey(t), rsaKey(t)
	srv := newJWKSServer(t, jwks(t, jwkOf(t, "old", oldKey)))
	_, err := auth.NewVerifier(t.Context(), auth.Options{JWKSURL: srv.URL, RefreshInterval: 20 * time.Millisecond, Logger: discard()})
	require.NoError(t, err)
	srv.set(jwks(t, jwkOf(t, "new", newKey)))
	require.Eventually(t, func() bool { return srv.requests.Load() >= 3 }, 5*time.Second, 10*time.Millisecond)
}

func TestVerifyAlgNone(t *testing.T) {
	t.Parallel()
	key := rsaKey(t)
	srv := newJWKSServer(t, jwks(t, jwkOf(t, "rsa-1", key)))
	v, err := auth.NewVerifier(t.Context(), auth.Options{HS256Secret: secret, JWKSURL: srv.URL, Logger: discard()})
	require.NoError(t, err)
	for _, kid := range []string{"", "rsa-1"} {
		raw := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid, claims())
		p, err := v.Verify(t.Context(), raw)
		require.Nil(t, p)
		requireInvalid(t, err, nil, raw)
		require.ErrorContains(t, err, "signing algorithm is not accepted")
	}
}

func TestVerifyAlgorithmConfusion(t *testing.T) {
	t.Parallel()
	key := rsaKey(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	srv := newJWKSServer(t, jwks(t, jwkOf(t, "rsa-1", key)))

	jwksOnly, err := auth.NewVerifier(t.Context(), auth.Options{JWKSURL: srv.URL, Logger: discard()})
	require.NoError(t, err)
	both, err := auth.NewVerifier(t.Context(), auth.Options{HS256Secret: secret, JWKSURL: srv.URL, Logger: discard()})
	require.NoError(t, err)

	for _, hmacKey := range [][]byte{pemBytes, der, key.N.Bytes()} {
		for _, kid := range []string{"", "rsa-1"} {
			raw := sign(t, jwt.SigningMethodHS256, hmacKey, kid, claims())
			p, err := jwksOnly.Verify(t.Context(), raw)
			require.Nil(t, p)
			requireInvalid(t, err, nil, raw)
			require.ErrorContains(t, err, "signing algorithm is not accepted")

			p, err = both.Verify(t.Context(), raw)
			require.Nil(t, p)
			requireInvalid(t, err, jwt.ErrTokenSignatureInvalid, raw)
		}
	}

	// An RS256 token must not be checked against the shared secret either.
	hsOnly := hsVerifier(t, auth.Options{})
	raw := sign(t, jwt.SigningMethodRS256, key, "rsa-1", claims())
	_, err = hsOnly.Verify(t.Context(), raw)
	requireInvalid(t, err, nil, raw)
	require.ErrorContains(t, err, "signing algorithm is not accepted")
}

func TestVerifyDoesNotLogSecrets(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	key := rsaKey(t)
	srv := newJWKSServer(t, jwks(t, jwkOf(t, "rsa-1", key)))
	v, err := auth.NewVerifier(t.Context(), auth.Options{HS256Secret: secret, JWKSURL: srv.URL + "?token=hidden", Logger: log})
	require.NoError(t, err)
	good := sign(t, jwt.SigningMethodHS256, secret, "", claims())
	_, err = v.Verify(t.Context(), good)
	require.NoError(t, err)
	bad := sign(t, jwt.SigningMethodRS256, rsaKey(t), "unknown", claims())
	_, err = v.Verify(t.Context(), bad)
	require.Error(t, err)

	out := buf.String()
	require.Contains(t, out, "token verification ready")
	require.NotContains(t, out, string(secret))
	require.NotContains(t, out, "hidden")
	require.NotContains(t, out, good)
	require.NotContains(t, out, bad)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestNewVerifierOptions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, body []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, body, 0o600))
		return path
	}
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384JWK := map[string]any{"kty": "EC", "kid": "p384", "crv": "P-384",
		"x": b64(p384.X.FillBytes(make([]byte, 48))), "y": b64(p384.Y.FillBytes(make([]byte, 48)))}
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)

	tests := []struct {
		name string
		opts auth.Options
		want string
		is   error
	}{
		{name: "no logger", opts: auth.Options{HS256Secret: secret}, want: "logger is required"},
		{name: "nothing configured", opts: auth.Options{Logger: discard()}, want: "nothing to verify tokens with"},
		{name: "weak secret", opts: auth.Options{HS256Secret: []byte("short"), Logger: discard()}, is: auth.ErrWeakSecret},
		{name: "url and file", opts: auth.Options{JWKSURL: srv.URL, JWKSFile: "x", Logger: discard()}, want: "not both"},
		{name: "negative leeway", opts: auth.Options{HS256Secret: secret, Leeway: -time.Second, Logger: discard()}, want: "leeway"},
		{name: "bad url", opts: auth.Options{JWKSURL: "ftp://example.test/jwks", Logger: discard()}, want: "http or https"},
		{name: "url not found", opts: auth.Options{JWKSURL: srv.URL, Logger: discard()}, want: "status 404"},
		{name: "missing file", opts: auth.Options{JWKSFile: filepath.Join(dir, "absent.json"), Logger: discard()}, is: os.ErrNotExist},
		{name: "not json", opts: auth.Options{JWKSFile: write("bad.json", []byte("{")), Logger: discard()}, want: "not valid JSON"},
		{name: "empty set", opts: auth.Options{JWKSFile: write("empty.json", jwks(t)), Logger: discard()}, want: "no usable key"},
		{name: "only unusable keys", opts: auth.Options{JWKSFile: write("unusable.json", jwks(t,
			map[string]any{"kty": "oct", "kid": "sym", "k": b64(secret)},
			jwkOf(t, "weak", weakRSA),
			p384JWK,
			map[string]any{"kty": "RSA", "kid": "enc", "use": "enc", "n": b64(rsaKey(t).N.Bytes()), "e": "AQAB"},
			map[string]any{"kty": "EC", "kid": "off-curve", "crv": "P-256", "x": b64(make([]byte, 32)), "y": b64(make([]byte, 32))},
			map[string]any{"kty": "RSA", "kid": "ps", "alg": "PS256", "n": b64(rsaKey(t).N.Bytes()), "e": "AQAB"},
		)), Logger: discard()}, want: "no usable key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := auth.NewVerifier(t.Context(), tt.opts)
			require.Error(t, err)
			require.Nil(t, v)
			if tt.want != "" {
				require.Contains(t, err.Error(), tt.want)
			}
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestVerifyKidlessNeedsSingleKey(t *testing.T) {
	t.Parallel()
	k1, k2 := rsaKey(t), rsaKey(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(path, jwks(t, jwkOf(t, "a", k1), jwkOf(t, "b", k2)), 0o600))
	v, err := auth.NewVerifier(t.Context(), auth.Options{JWKSFile: path, Logger: discard()})
	require.NoError(t, err)
	_, err = v.Verify(t.Context(), sign(t, jwt.SigningMethodRS256, k2, "b", claims()))
	require.NoError(t, err)
	raw := sign(t, jwt.SigningMethodRS256, k2, "", claims())
	_, err = v.Verify(t.Context(), raw)
	requireInvalid(t, err, nil, raw)
}

func TestFromHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header string
		want   string
		err    error
	}{
		{header: "", err: auth.ErrNoToken},
		{header: "Basic dXNlcjpwYXNz", err: auth.ErrNoToken},
		{header: "Bearer", err: auth.ErrNoToken},
		{header: "Bearer ", err: auth.ErrNoToken},
		{header: "Bearer    ", err: auth.ErrNoToken},
		{header: "Bearerx abc", err: auth.ErrNoToken},
		{header: "Bearer abc.def.ghi", want: "abc.def.ghi"},
		{header: "bearer x", want: "x"},
		{header: "BEARER  x ", want: "x"},
		{header: "Bearer a b", err: auth.ErrInvalidToken},
	}
	for _, tt := range tests {
		got, err := auth.FromHeader(tt.header)
		if tt.err != nil {
			require.ErrorIs(t, err, tt.err, "header %q", tt.header)
			require.Empty(t, got)
			continue
		}
		require.NoError(t, err, "header %q", tt.header)
		require.Equal(t, tt.want, got)
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []auth.Scope
		err  bool
	}{
		{in: "", want: nil},
		{in: "read", want: []auth.Scope{auth.ScopeRead}},
		{in: "read write", want: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}},
		{in: "read,write", want: []auth.Scope{auth.ScopeRead, auth.ScopeWrite}},
		{in: " admin , read,,admin ", want: []auth.Scope{auth.ScopeAdmin, auth.ScopeRead}},
		{in: "read delete", err: true},
		{in: "READ", err: true},
	}
	for _, tt := range tests {
		got, err := auth.ParseScopes(tt.in)
		if tt.err {
			require.ErrorIs(t, err, auth.ErrUnknownScope, "input %q", tt.in)
			continue
		}
		require.NoError(t, err, "input %q", tt.in)
		require.Equal(t, tt.want, got, "input %q", tt.in)
	}
}

func TestMintRoundTrip(t *testing.T) {
	t.Parallel()
	v := hsVerifier(t, auth.Options{Issuer: "ctrader-dev", Audience: "ctrader"})
	now := time.Now()
	raw, err := auth.Mint(secret, "bob", []auth.Scope{auth.ScopeAdmin}, time.Hour, "ctrader-dev", "ctrader", now)
	require.NoError(t, err)
	p, err := v.Verify(t.Context(), raw)
	require.NoError(t, err)
	require.Equal(t, "bob", p.Subject)
	require.Equal(t, []auth.Scope{auth.ScopeAdmin}, p.Scopes)
	require.Equal(t, now.Add(time.Hour).Truncate(time.Second).Unix(), p.ExpiresAt.Unix())
	require.True(t, p.Has(auth.ScopeRead))

	expired, err := auth.Mint(secret, "bob", nil, time.Minute, "ctrader-dev", "ctrader", now.Add(-time.Hour))
	require.NoError(t, err)
	_, err = v.Verify(t.Context(), expired)
	require.ErrorIs(t, err, jwt.ErrTokenExpired)

	otherAudience, err := auth.Mint(secret, "bob", nil, time.Hour, "ctrader-dev", "elsewhere", now)
	require.NoError(t, err)
	_, err = v.Verify(t.Context(), otherAudience)
	require.ErrorIs(t, err, jwt.ErrTokenInvalidAudience)

	_, err = auth.Mint([]byte("short"), "bob", nil, time.Hour, "", "", now)
	require.ErrorIs(t, err, auth.ErrWeakSecret)
	_, err = auth.Mint(secret, "", nil, time.Hour, "", "", now)
	require.Error(t, err)
	_, err = auth.Mint(secret, "bob", nil, 0, "", "", now)
	require.Error(t, err)
	_, err = auth.Mint(secret, "bob", []auth.Scope{"root"}, time.Hour, "", "", now)
	require.ErrorIs(t, err, auth.ErrUnknownScope)
}

func TestGrants(t *testing.T) {
	t.Parallel()
	all := []auth.Scope{auth.ScopeRead, auth.ScopeWrite, auth.ScopeAdmin, "root", ""}
	want := map[auth.Scope][]auth.Scope{
		auth.ScopeRead:  {auth.ScopeRead},
		auth.ScopeWrite: {auth.ScopeRead, auth.ScopeWrite},
		auth.ScopeAdmin: {auth.ScopeRead, auth.ScopeWrite, auth.ScopeAdmin},
	}
	for _, have := range all {
		for _, need := range all {
			granted := false
			for _, g := range want[have] {
				granted = granted || g == need
			}
			require.Equal(t, granted, have.Grants(need), "%q grants %q", have, need)
		}
	}
	var nobody *auth.Principal
	require.False(t, nobody.Has(auth.ScopeRead))
}

func TestContext(t *testing.T) {
	t.Parallel()
	_, ok := auth.FromContext(t.Context())
	require.False(t, ok)
	p := &auth.Principal{Subject: "carol"}
	got, ok := auth.FromContext(auth.NewContext(t.Context(), p))
	require.True(t, ok)
	require.Same(t, p, got)
}
