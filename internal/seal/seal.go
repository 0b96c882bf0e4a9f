// Package seal reads WEBHOOK_SECRET_KEY, the key that encrypts webhook
// signing secrets at rest. It depends on the standard library only, so
// configuration can check the key without loading the webhook package and
// its database and queue dependencies.
package seal

import (
	"encoding/base64"
	"errors"
	"strings"
)

// KeySize is the length of a key in bytes: an AES-256 key.
const KeySize = 32

// ParseKey decodes a key: KeySize bytes in standard or URL-safe base64. An
// empty string is no key, and returns nil.
func ParseKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil || len(key) != KeySize {
		return nil, errors.New("must be 32 bytes in base64 (openssl rand -base64 32)")
	}
	return key, nil
}
