package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ctrader/ctrader/internal/redact"
)

// Limits of the JWK set handling.
const (
	// maxJWKSBytes is the largest JWK set document read.
	maxJWKSBytes = 1 << 20
	// fetchTimeout bounds one load of the JWK set.
	fetchTimeout = 10 * time.Second
	// unknownKidRefreshGap is the least time between two refreshes caused by
	// tokens with an unknown kid.
	unknownKidRefreshGap = 10 * time.Second
	// maxSkipReasons bounds the reasons parseJWKS gives for skipped keys,
	// which are logged at every refresh.
	maxSkipReasons = 10
	// maxQuoted bounds a member of a key repeated in such a reason.
	maxQuoted = 64
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
	// maxRSABits is the largest RSA modulus accepted: checking a signature
	// costs time that grows with the square of the modulus and more, so a
	// set must not be able to make each request slow. crypto/x509 applies
	// the same limit to certificate keys.
	maxRSABits = 8192
)

// The algorithms keys from a JWK set verify.
const (
	algRS256 = "RS256"
	algES256 = "ES256"
	algEdDSA = "EdDSA"
)

// jwk is one usable public key of a JWK set.
type jwk struct {
	kid string
	alg string // the one JWS algorithm the key verifies
	key crypto.PublicKey
}

// keySet is a JWK set loaded from a file or a URL and kept fresh.
type keySet struct {
	source   string // where the set comes from, safe to log
	load     func(ctx context.Context) ([]byte, error)
	interval time.Duration
	log      *slog.Logger

	mu           sync.RWMutex
	keys         []jwk
	started      uint64        // loads started; guarded by mu
	applied      uint64        // number of the load whose keys are in use; guarded by mu
	lastOnDemand time.Time     // start of the last refresh for an unknown kid; guarded by mu
	inflight     chan struct{} // closed when the running refresh for an unknown kid ends; guarded by mu
}

// refresh loads and parses the set and, when that works and no later load has
// been applied meanwhile, puts its keys in use. On failure the old keys stay.
func (ks *keySet) refresh(ctx context.Context) error {
	ks.mu.Lock()
	ks.started++
	seq := ks.started
	ks.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	data, err := ks.load(ctx)
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(data)
	for _, reason := range skipped {
		ks.log.Warn("auth: JWK set key ignored", "source", ks.source, "reason", reason)
	}
	if err != nil {
		return err
	}

	ks.mu.Lock()
	defer ks.mu.Unlock()
	if seq > ks.applied {
		ks.keys = keys
		ks.applied = seq
	}
	ks.log.Debug("auth: JWK set loaded", "source", ks.source, "keys", len(keys))
	return nil
}

// run refreshes the set every interval until ctx ends.
func (ks *keySet) run(ctx context.Context) {
	ticker := time.NewTicker(ks.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := ks.refresh(ctx); err != nil && ctx.Err() == nil {
				ks.log.Warn("auth: JWK set refresh failed; keeping the previous keys",
					"source", ks.source, "error", err)
			}
		}
	}
}

// refreshForUnknownKid refreshes the set because a token named a kid it does
// not hold, at most once per unknownKidRefreshGap. A caller arriving while
// such a refresh runs waits for it (or for ctx) instead of starting another.
func (ks *keySet) refreshForUnknownKid(ctx context.Context) {
	ks.mu.Lock()
	if ch := ks.inflight; ch != nil {
		ks.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return
	}
	now := time.Now()
	if !ks.lastOnDemand.IsZero() && now.Sub(ks.lastOnDemand) < unknownKidRefreshGap {
		ks.mu.Unlock()
		return
	}
	ks.lastOnDemand = now
	ch := make(chan struct{})
	ks.inflight = ch
	ks.mu.Unlock()

	// The refresh serves every later request, so the caller going away must
	// not cut it short.
	err := ks.refresh(context.WithoutCancel(ctx))

	ks.mu.Lock()
	ks.inflight = nil
	ks.mu.Unlock()
	close(ch)
	if err != nil {
		ks.log.Warn("auth: JWK set refresh for an unknown kid failed; keeping the previous keys",
			"source", ks.source, "error", err)
	}
}

// lookup returns the keys that may verify a token signed with alg and naming
// kid. A token without kid may use the only key that fits alg.
func (ks *keySet) lookup(alg, kid string) ([]jwt.VerificationKey, error) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	var found []jwt.VerificationKey
	sawKid := false
	for _, k := range ks.keys {
		if kid != "" && k.kid != kid {
			continue
		}
		sawKid = true
		if k.alg == alg {
			found = append(found, k.key)
		}
	}
	switch {
	case kid == "" && len(found) > 1:
		return nil, errKidRequired
	case len(found) > 0:
		return found, nil
	case kid == "":
		return nil, errNoKey
	case sawKid:
		return nil, errKeyMismatch
	}
	return nil, errUnknownKey
}

// loadFile returns a loader reading the file at path.
func loadFile(path string) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(f)
	}
}

// loadURL returns a loader getting url with client.
func loadURL(client *http.Client, url string) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		resp, err := client.Do(req)
		if err != nil {
			return nil, redact.Error(err) // logged; the URL may carry a key
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return nil, fmt.Errorf("JWK set answered with status %d", resp.StatusCode)
		}
		return readLimited(resp.Body)
	}
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("JWK set is larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
}

// rawJWK holds the members of a JWK this package reads.
type rawJWK struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// parseJWKS parses a JWK set document. Keys that cannot verify signatures
// with a supported algorithm are skipped, the first maxSkipReasons each with
// a reason and the rest counted in one more; a set with no usable key is an
// error.
func parseJWKS(data []byte) (keys []jwk, skipped []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("JWK set is not valid JSON: %w", err)
	}
	nskipped := 0
	skip := func(reason string) {
		if nskipped++; nskipped <= maxSkipReasons {
			skipped = append(skipped, reason)
		}
	}
	for i, msg := range doc.Keys {
		var raw rawJWK
		if err := json.Unmarshal(msg, &raw); err != nil {
			skip(fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		k, err := parseJWK(raw)
		if err != nil {
			skip(fmt.Sprintf("key %d (kid %s): %v", i, quoted(raw.Kid), err))
			continue
		}
		keys = append(keys, k)
	}
	if nskipped > maxSkipReasons {
		skipped = append(skipped, fmt.Sprintf("%d more keys skipped", nskipped-maxSkipReasons))
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("JWK set has no usable key among its %d (want RSA, EC P-256 or Ed25519 signing keys)", len(doc.Keys))
	}
	return keys, skipped, nil
}

func parseJWK(raw rawJWK) (jwk, error) {
	if raw.Use != "" && raw.Use != "sig" {
		return jwk{}, fmt.Errorf("use is %s, not sig", quoted(raw.Use))
	}
	if raw.KeyOps != nil && !slices.Contains(raw.KeyOps, "verify") {
		return jwk{}, errors.New("key_ops lacks verify")
	}
	k := jwk{kid: raw.Kid}
	var err error
	switch raw.Kty {
	case "RSA":
		k.alg = algRS256
		k.key, err = parseRSA(raw)
	case "EC":
		k.alg = algES256
		k.key, err = parseEC(raw)
	case "OKP":
		k.alg = algEdDSA
		k.key, err = parseOKP(raw)
	case "oct":
		return jwk{}, errors.New("symmetric keys are not accepted from a JWK set")
	default:
		return jwk{}, fmt.Errorf("unsupported kty %s", quoted(raw.Kty))
	}
	if err != nil {
		return jwk{}, err
	}
	if raw.Alg != "" && raw.Alg != k.alg && !(k.alg == algEdDSA && raw.Alg == "Ed25519") {
		return jwk{}, fmt.Errorf("alg %s is not supported for kty %s (want %s)", quoted(raw.Alg), raw.Kty, k.alg)
	}
	return k, nil
}

func parseRSA(raw rawJWK) (*rsa.PublicKey, error) {
	n, err := decodeB64(raw.N)
	if err != nil || len(n) == 0 {
		return nil, errors.New("bad RSA modulus n")
	}
	e, err := decodeB64(raw.E)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("bad RSA exponent e")
	}
	exp := new(big.Int).SetBytes(e)
	if exp.Int64() < 3 || exp.Bit(0) == 0 || exp.Int64() > 1<<31-1 {
		return nil, errors.New("bad RSA exponent e")
	}
	key := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}
	if key.N.BitLen() < minRSABits {
		return nil, fmt.Errorf("RSA modulus of %d bits is shorter than %d", key.N.BitLen(), minRSABits)
	}
	if key.N.BitLen() > maxRSABits {
		return nil, fmt.Errorf("RSA modulus of %d bits is longer than %d", key.N.BitLen(), maxRSABits)
	}
	if key.N.Bit(0) == 0 {
		return nil, errors.New("bad RSA modulus n: even")
	}
	return key, nil
}

func parseEC(raw rawJWK) (*ecdsa.PublicKey, error) {
	if raw.Crv != "P-256" {
		return nil, fmt.Errorf("unsupported EC curve %s (want P-256)", quoted(raw.Crv))
	}
	x, errX := decodeB64(raw.X)
	y, errY := decodeB64(raw.Y)
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
		return nil, errors.New("bad P-256 coordinates x, y")
	}
	point := append(append([]byte{4}, x...), y...)
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("bad P-256 point: %w", err)
	}
	return key, nil
}

func parseOKP(raw rawJWK) (ed25519.PublicKey, error) {
	if raw.Crv != "Ed25519" {
		return nil, fmt.Errorf("unsupported OKP curve %s (want Ed25519)", quoted(raw.Crv))
	}
	x, err := decodeB64(raw.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, errors.New("bad Ed25519 public key x")
	}
	return ed25519.PublicKey(x), nil
}

// quoted returns a member of a key for a log line: quoted, and cut to
// maxQuoted bytes.
func quoted(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(strings.ToValidUTF8(s[:maxQuoted], "")) + "…"
	}
	return strconv.Quote(s)
}

// decodeB64 decodes base64url, with or without padding.
func decodeB64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
