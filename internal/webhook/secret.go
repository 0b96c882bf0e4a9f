package webhook

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/seal"
)

// SecretPrefix starts every signing secret, as Standard Webhooks libraries
// expect.
const SecretPrefix = "whsec_"

// secretBytes is the length of a signing key (the spec allows 24 to 64).
const secretBytes = 32

// newSecret returns a random signing key and the secret string a client
// configures its verifier with.
func newSecret() (raw []byte, secret string, err error) {
	raw = make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", fmt.Errorf("generate secret: %w", err)
	}
	return raw, SecretPrefix + base64.StdEncoding.EncodeToString(raw), nil
}

func (s *Service) addSecret(ctx context.Context, tx pgx.Tx, endpointID uuid.UUID) (string, error) {
	raw, secret, err := newSecret()
	if err != nil {
		return "", err
	}
	stored, sealed, err := s.sealer.seal(raw)
	if err != nil {
		return "", err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", err
	}
	_, err = tx.Exec(ctx, `INSERT INTO webhook_secrets (id, endpoint_id, secret, sealed) VALUES ($1, $2, $3, $4)`,
		id, endpointID, stored, sealed)
	return secret, err
}

// RotateSecret issues a new secret and returns it. The previous ones keep
// signing alongside it until the grace period ends, so consumers can switch
// without missing a delivery.
func (s *Service) RotateSecret(ctx context.Context, id uuid.UUID) (secret string, oldExpire time.Time, err error) {
	oldExpire = s.now().Add(s.grace).UTC().Truncate(time.Microsecond)
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		ep, err := getEndpoint(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if ep.DeletedAt != nil {
			return ErrDeleted
		}
		if _, err := tx.Exec(ctx, `
			UPDATE webhook_secrets SET expires_at = $2
			WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > $2)`, id, oldExpire); err != nil {
			return err
		}
		secret, err = s.addSecret(ctx, tx, id)
		return err
	})
	if err != nil {
		return "", time.Time{}, db.Wrap("rotate webhook secret", err, ErrNotFound)
	}
	return secret, oldExpire, nil
}

// secretsSQL and secretsOrder surround the condition that names the
// endpoints: their secrets that still sign, newest first.
const (
	secretsSQL   = `SELECT endpoint_id, secret, sealed FROM webhook_secrets WHERE (expires_at IS NULL OR expires_at > now())`
	secretsOrder = ` ORDER BY endpoint_id, created_at DESC`
)

// storedSecret is a signing secret as stored, sealed or not.
type storedSecret struct {
	secret []byte
	sealed bool
}

// collectSecrets reads secretsSQL's rows into each endpoint's secrets.
func collectSecrets(rows pgx.Rows) (map[uuid.UUID][]storedSecret, error) {
	out := make(map[uuid.UUID][]storedSecret)
	var (
		endpointID uuid.UUID
		s          storedSecret
	)
	_, err := pgx.ForEachRow(rows, []any{&endpointID, &s.secret, &s.sealed}, func() error {
		out[endpointID] = append(out[endpointID], storedSecret{secret: s.secret, sealed: s.sealed})
		return nil
	})
	return out, err
}

// openSecrets unseals stored secrets into signing keys.
func (s *Service) openSecrets(all []storedSecret) ([][]byte, error) {
	keys := make([][]byte, 0, len(all))
	for _, st := range all {
		raw, err := s.sealer.open(st.secret, st.sealed)
		if err != nil {
			return nil, err
		}
		keys = append(keys, raw)
	}
	return keys, nil
}

// Sign returns the webhook-signature header for a message: one
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per key, space-separated, so
// that a consumer holding either the old or the new secret during a rotation
// can verify.
func Sign(msgID string, ts time.Time, body []byte, keys [][]byte) string {
	signed := make([]byte, 0, len(msgID)+len(body)+24)
	signed = append(signed, msgID...)
	signed = append(signed, '.')
	signed = strconv.AppendInt(signed, ts.Unix(), 10)
	signed = append(signed, '.')
	signed = append(signed, body...)
	sigs := make([]string, 0, len(keys))
	for _, key := range keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(signed)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// Sealer encrypts signing keys at rest with AES-256-GCM, so that a database
// dump alone does not reveal them. A nil Sealer stores keys as they are.
type Sealer struct {
	aead cipher.AEAD
}

// ErrNoSealKey is returned when a sealed key is read without the key that
// sealed it.
var ErrNoSealKey = errors.New("webhook secrets are encrypted but WEBHOOK_SECRET_KEY is not set")

// ParseSealKey decodes WEBHOOK_SECRET_KEY: 32 bytes in standard or URL-safe
// base64. An empty string means no encryption.
func ParseSealKey(s string) (*Sealer, error) {
	key, err := seal.ParseKey(s)
	if err != nil || key == nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

func (s *Sealer) seal(raw []byte) (stored []byte, sealed bool, err error) {
	if s == nil {
		return raw, false, nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, false, err
	}
	return s.aead.Seal(nonce, nonce, raw, nil), true, nil
}

func (s *Sealer) open(stored []byte, sealed bool) ([]byte, error) {
	if !sealed {
		return stored, nil
	}
	if s == nil {
		return nil, ErrNoSealKey
	}
	n := s.aead.NonceSize()
	if len(stored) < n {
		return nil, errors.New("sealed webhook secret is truncated")
	}
	raw, err := s.aead.Open(nil, stored[:n], stored[n:], nil)
	if err != nil {
		return nil, errors.New("cannot decrypt webhook secret: wrong WEBHOOK_SECRET_KEY?")
	}
	return raw, nil
}
