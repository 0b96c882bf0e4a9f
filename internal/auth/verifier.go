package auth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of Options.
const (
	DefaultLeeway          = 30 * time.Second
	DefaultRefreshInterval = 5 * time.Minute
	DefaultHTTPTimeout     = 10 * time.Second
)

// MaxTokenBytes is the longest token Verify looks at.
const MaxTokenBytes = 16 << 10

// Options configures a Verifier. At least one of HS256Secret, JWKSURL and
// JWKSFile must be set; JWKSURL and JWKSFile exclude each other.
type Options struct {
	// HS256Secret verifies HS256 tokens; empty disables HS256. It must be at
	// least MinSecretBytes long.
	HS256Secret []byte
	// JWKSURL is the https (or, for tests, http) URL of a JWK set whose keys
	// verify RS256, ES256 and EdDSA tokens; empty disables it.
	JWKSURL string
	// JWKSFile is the path of a JWK set file, used like JWKSURL.
	JWKSFile string
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be among the token's aud claim.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// DefaultLeeway.
	Leeway time.Duration
	// RefreshInterval is how often the JWK set is loaded again; zero means
	// DefaultRefreshInterval.
	RefreshInterval time.Duration
	// HTTPClient gets JWKSURL; nil means a client with DefaultHTTPTimeout.
	HTTPClient *http.Client
	// Logger is required.
	Logger *slog.Logger
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	secret  []byte
	keys    *keySet // nil without a JWK set
	methods []string
	parser  []jwt.ParserOption
}

// NewVerifier validates opts and, when a JWK set is configured, loads it once;
// a set that cannot be loaded or holds no usable key is an error. The set is
// then loaded again every RefreshInterval until ctx ends, so ctx should live
// as long as the Verifier. Nothing secret is logged.
func NewVerifier(ctx context.Context, opts Options) (*Verifier, error) {
	if opts.Logger == nil {
		return nil, errors.New("auth: logger is required")
	}
	if len(opts.HS256Secret) == 0 && opts.JWKSURL == "" && opts.JWKSFile == "" {
		return nil, errors.New("auth: nothing to verify tokens with: set an HS256 secret, a JWKS URL or a JWKS file")
	}
	if opts.JWKSURL != "" && opts.JWKSFile != "" {
		return nil, errors.New("auth: set a JWKS URL or a JWKS file, not both")
	}
	if len(opts.HS256Secret) > 0 && len(opts.HS256Secret) < MinSecretBytes {
		return nil, fmt.Errorf("%w: need at least %d bytes", ErrWeakSecret, MinSecretBytes)
	}
	if opts.Leeway < 0 {
		return nil, errors.New("auth: leeway must not be negative")
	}
	if opts.RefreshInterval < 0 {
		return nil, errors.New("auth: refresh interval must not be negative")
	}
	leeway := cmp.Or(opts.Leeway, DefaultLeeway)
	v := &Verifier{}
	if len(opts.HS256Secret) > 0 {
		v.secret = bytes.Clone(opts.HS256Secret)
		v.methods = append(v.methods, jwt.SigningMethodHS256.Alg())
	}

	var source string
	switch {
	case opts.JWKSURL != "":
		u, err := url.Parse(opts.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("auth: JWKS URL must be an absolute http or https URL")
		}
		source = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
		client := opts.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: DefaultHTTPTimeout}
		}
		v.keys = &keySet{source: source, load: loadURL(client, opts.JWKSURL)}
	case opts.JWKSFile != "":
		source = opts.JWKSFile
		v.keys = &keySet{source: source, load: loadFile(opts.JWKSFile)}
	}
	if v.keys != nil {
		v.keys.interval = cmp.Or(opts.RefreshInterval, DefaultRefreshInterval)
		v.keys.log = opts.Logger
		if err := v.keys.refresh(ctx); err != nil {
			return nil, fmt.Errorf("auth: load JWK set from %s: %w", source, err)
		}
		v.methods = append(v.methods, algRS256, algES256, algEdDSA)
		go v.keys.run(ctx)
	}

	v.parser = []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	}
	if opts.Issuer != "" {
		v.parser = append(v.parser, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		v.parser = append(v.parser, jwt.WithAudience(opts.Audience))
	}

	attrs := []any{"hs256", v.secret != nil, "algorithms", strings.Join(v.methods, ",")}
	if v.keys != nil {
		v.keys.mu.RLock()
		attrs = append(attrs, "jwks", source, "jwks_keys", len(v.keys.keys))
		v.keys.mu.RUnlock()
	}
	opts.Logger.Info("auth: token verification ready", attrs...)
	return v, nil
}

// claims are the claims Verify reads.
type claims struct {
	jwt.RegisteredClaims
	Scope scopeClaim `json:"scope"`
	Scp   scopeClaim `json:"scp"`
}

// scopeClaim is a scope claim given as a space-separated string or as an
// array of strings.
type scopeClaim []string

func (s *scopeClaim) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*s = strings.Fields(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return errors.New("scope claim is neither a string nor an array of strings")
	}
	*s = many
	return nil
}

// Verify checks raw (a token without the "Bearer " prefix) and returns the
// principal it identifies. A token must be signed with an accepted algorithm
// and key, carry exp and sub, be within its nbf, iat and exp (with the leeway)
// and match the issuer and audience when those are configured. Scopes come
// from the scope and scp claims; unknown scope names are ignored. Errors
// wrap ErrNoToken or ErrInvalidToken.
//
// ctx bounds the wait for a JWK set refresh that a token with an unknown kid
// may cause.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Principal, error) {
	if raw == "" {
		return nil, ErrNoToken
	}
	if len(raw) > MaxTokenBytes {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errTooLong)
	}
	var c claims
	token, err := jwt.NewParser(v.parser...).ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		return v.key(ctx, t)
	})
	if err != nil {
		if token != nil && token.Method != nil && !slices.Contains(v.methods, token.Method.Alg()) {
			return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errAlgorithm)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, reason(err))
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, errNoSubject)
	}
	p := &Principal{Subject: c.Subject, ExpiresAt: c.ExpiresAt.Time}
	for _, name := range slices.Concat(c.Scope, c.Scp) {
		if s := Scope(name); s.Valid() && !slices.Contains(p.Scopes, s) {
			p.Scopes = append(p.Scopes, s)
		}
	}
	slices.SortFunc(p.Scopes, func(a, b Scope) int { return a.rank() - b.rank() })
	return p, nil
}

// key picks the keys that may verify t: the shared secret for HS256, keys of
// the JWK set for the other algorithms, never one for the other.
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		if v.secret == nil {
			return nil, errAlgorithm
		}
		return v.secret, nil
	}
	if v.keys == nil || (alg != algRS256 && alg != algES256 && alg != algEdDSA) {
		return nil, errAlgorithm
	}
	kid := ""
	if k, ok := t.Header["kid"]; ok {
		if kid, ok = k.(string); !ok {
			return nil, errBadKid
		}
	}
	keys, err := v.keys.lookup(alg, kid)
	if errors.Is(err, errUnknownKey) {
		v.keys.refreshForUnknownKid(ctx)
		keys, err = v.keys.lookup(alg, kid)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 1 {
		return keys[0], nil
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// reason reduces a parse error to a fixed sentinel, so that no part of the
// token reaches an error message.
func reason(err error) error {
	for _, r := range []error{
		errAlgorithm, errUnknownKey, errKeyMismatch, errNoKey, errKidRequired, errBadKid,
		jwt.ErrTokenMalformed,
		jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrTokenExpired,
		jwt.ErrTokenNotValidYet,
		jwt.ErrTokenUsedBeforeIssued,
		jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenInvalidClaims,
		jwt.ErrTokenUnverifiable,
	} {
		if errors.Is(err, r) {
			return r
		}
	}
	return jwt.ErrTokenMalformed
}
