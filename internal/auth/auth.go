// Package auth authenticates callers of ctrader's HTTP API by bearer token and
// authorizes them by scope. A Verifier checks JSON Web Tokens signed either
// with a shared secret (HS256) or with keys from a JWK set (RS256, ES256,
// EdDSA) and turns a valid token into a Principal; Mint signs HS256 tokens for
// development and tests.
//
// The scopes form a ladder: admin grants write, and write grants read.
package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Errors returned by this package. Wrapped errors keep these in their chain,
// so callers test with errors.Is. No error text ever contains a token or a
// secret.
var (
	// ErrNoToken means the request carries no bearer token.
	ErrNoToken = errors.New("auth: no bearer token")
	// ErrInvalidToken means a token was presented but is not acceptable:
	// malformed, badly signed, expired, for another audience and so on. The
	// wrapped reason says which.
	ErrInvalidToken = errors.New("auth: invalid token")
	// ErrInsufficientScope means the token is valid but lacks a needed scope.
	ErrInsufficientScope = errors.New("auth: insufficient scope")
	// ErrUnknownScope means a scope name is not one of read, write or admin.
	ErrUnknownScope = errors.New("auth: unknown scope")
	// ErrWeakSecret means an HS256 secret is shorter than MinSecretBytes.
	ErrWeakSecret = errors.New("auth: HS256 secret is too short")
)

// MinSecretBytes is the shortest HS256 secret accepted: as long as the
// SHA-256 output, as RFC 7518 section 3.2 requires.
const MinSecretBytes = 32

// Scope is a permission a token carries.
type Scope string

// The scopes, from least to most powerful.
const (
	ScopeRead  Scope = "read"  // read resources
	ScopeWrite Scope = "write" // create and change resources; implies read
	ScopeAdmin Scope = "admin" // everything; implies write and read
)

// rank places a scope on the ladder; unknown scopes rank 0.
func (s Scope) rank() int {
	switch s {
	case ScopeRead:
		return 1
	case ScopeWrite:
		return 2
	case ScopeAdmin:
		return 3
	}
	return 0
}

// Valid reports whether s is one of the known scopes.
func (s Scope) Valid() bool { return s.rank() > 0 }

// Grants reports whether having scope have satisfies a need for scope need:
// admin grants write and read, write grants read, and every known scope
// grants itself. Unknown scopes grant nothing and are granted by nothing.
func (have Scope) Grants(need Scope) bool {
	return have.Valid() && need.Valid() && have.rank() >= need.rank()
}

// ParseScopes parses scope names separated by spaces or commas, such as
// "read write" or "read,write". Duplicates are dropped; order is kept. An
// empty string gives no scopes. An unknown name is an error wrapping
// ErrUnknownScope.
func ParseScopes(s string) ([]Scope, error) {
	var scopes []Scope
	for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		scope := Scope(name)
		if !scope.Valid() {
			return nil, fmt.Errorf("%w %q (want read, write or admin)", ErrUnknownScope, name)
		}
		if !slices.Contains(scopes, scope) {
			scopes = append(scopes, scope)
		}
	}
	return scopes, nil
}

// Principal is the caller a valid token identifies.
type Principal struct {
	Subject   string    // the token's sub claim
	Scopes    []Scope   // the known scopes of the token, weakest first, without duplicates
	ExpiresAt time.Time // the token's exp claim
}

// Has reports whether any of the principal's scopes grants need.
func (p *Principal) Has(need Scope) bool {
	if p == nil {
		return false
	}
	return slices.ContainsFunc(p.Scopes, func(have Scope) bool { return have.Grants(need) })
}

// Require returns nil when the principal has need, and otherwise an error
// wrapping ErrInsufficientScope.
func (p *Principal) Require(need Scope) error {
	if p.Has(need) {
		return nil
	}
	return fmt.Errorf("%w: %q required", ErrInsufficientScope, need)
}

type principalKey struct{}

// NewContext returns a copy of ctx that carries p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal NewContext stored in ctx, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// FromHeader extracts the token from an Authorization header value of the
// form "Bearer <token>"; the scheme is matched without regard to case. It
// returns ErrNoToken when the header is empty, uses another scheme or has an
// empty token, and an error wrapping ErrInvalidToken when the token part
// holds spaces.
func FromHeader(h string) (string, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrNoToken
	}
	token := strings.TrimSpace(rest)
	if token == "" {
		return "", ErrNoToken
	}
	if strings.ContainsAny(token, " \t") {
		return "", fmt.Errorf("%w: %w", ErrInvalidToken, errMalformedHeader)
	}
	return token, nil
}

// Reasons wrapped in ErrInvalidToken besides those of the jwt package.
var (
	errMalformedHeader = errors.New("authorization header has more than one token")
	errTooLong         = errors.New("token is too long")
	errNoSubject       = errors.New("token has no subject")
	errAlgorithm       = errors.New("signing algorithm is not accepted")
	errUnknownKey      = errors.New("no key in the key set has the token's kid")
	errKeyMismatch     = errors.New("the key with the token's kid does not fit its algorithm")
	errNoKey           = errors.New("no key in the key set fits the token's algorithm")
	errKidRequired     = errors.New("token has no kid and several keys fit its algorithm")
	errBadKid          = errors.New("token's kid is not a string")
)
