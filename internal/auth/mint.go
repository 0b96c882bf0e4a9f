package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// mintClaims is what Mint signs.
type mintClaims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope,omitempty"`
}

// Mint signs an HS256 token for subject with the given scopes, valid from now
// for ttl. Issuer and audience are included when not empty. It is meant for
// development and tests; production tokens come from an identity provider.
// The secret must be at least MinSecretBytes long.
func Mint(secret []byte, subject string, scopes []Scope, ttl time.Duration, issuer, audience string, now time.Time) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", fmt.Errorf("%w: need at least %d bytes", ErrWeakSecret, MinSecretBytes)
	}
	if subject == "" {
		return "", errors.New("auth: subject is required")
	}
	if ttl <= 0 {
		return "", errors.New("auth: ttl must be positive")
	}
	names := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !s.Valid() {
			return "", fmt.Errorf("%w %q (want read, write or admin)", ErrUnknownScope, s)
		}
		names = append(names, string(s))
	}
	claims := mintClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   subject,
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		Scope: strings.Join(names, " "),
	}
	if audience != "" {
		claims.Audience = jwt.ClaimStrings{audience}
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return token, nil
}
