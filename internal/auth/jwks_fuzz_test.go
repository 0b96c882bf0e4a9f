package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
)

// FuzzParseJWKS feeds arbitrary documents to parseJWKS. It must never panic;
// it returns keys exactly when it returns no error, and gives a short reason
// for each key it skips up to maxSkipReasons, then one for the rest; and every key it returns
// is of the type its algorithm needs, within the sizes this package promises,
// and can be handed a bad signature without panicking.
func FuzzParseJWKS(f *testing.F) {
	for _, seed := range jwksSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, skipped, err := parseJWKS(data)
		if (err == nil) != (len(keys) > 0) {
			t.Fatalf("parseJWKS returned %d keys and error %v", len(keys), err)
		}
		var doc struct{ Keys []json.RawMessage }
		if json.Unmarshal(data, &doc) == nil {
			want := len(doc.Keys) - len(keys)
			if want > maxSkipReasons {
				want = maxSkipReasons + 1 // and "N more keys skipped"
			}
			if len(skipped) != want {
				t.Fatalf("parseJWKS kept %d of %d keys and gave %d reasons", len(keys), len(doc.Keys), len(skipped))
			}
		}
		for _, reason := range skipped {
			if len(reason) > 1<<10 {
				t.Fatalf("parseJWKS gave a reason of %d bytes, which is logged: %.200s…", len(reason), reason)
			}
		}
		for _, k := range keys {
			requireUsable(t, k)
		}
	})
}

// requireUsable fails unless k verifies its algorithm with a key this package
// accepts, checking a wrong signature against it.
func requireUsable(t *testing.T, k jwk) {
	t.Helper()
	digest := sha256.Sum256([]byte("payload"))
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		if k.alg != algRS256 {
			t.Fatalf("RSA key %q for %s", k.kid, k.alg)
		}
		if key.N.BitLen() < minRSABits || key.N.BitLen() > maxRSABits || key.N.Bit(0) == 0 || key.E < 3 || key.E%2 == 0 {
			t.Fatalf("RSA key %q: %d-bit modulus, exponent %d", k.kid, key.N.BitLen(), key.E)
		}
		sig := bytes.Repeat([]byte{1}, key.Size())
		if rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) == nil {
			t.Fatalf("RSA key %q verified a made-up signature", k.kid)
		}
	case *ecdsa.PublicKey:
		if k.alg != algES256 || key.Curve != elliptic.P256() {
			t.Fatalf("EC key %q on %v for %s", k.kid, key.Curve.Params().Name, k.alg)
		}
		if ecdsa.VerifyASN1(key, digest[:], []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01}) {
			t.Fatalf("EC key %q verified a made-up signature", k.kid)
		}
	case ed25519.PublicKey:
		if k.alg != algEdDSA || len(key) != ed25519.PublicKeySize {
			t.Fatalf("Ed25519 key %q of %d bytes for %s", k.kid, len(key), k.alg)
		}
		if ed25519.Verify(key, digest[:], make([]byte, ed25519.SignatureSize)) {
			t.Fatalf("Ed25519 key %q verified a made-up signature", k.kid)
		}
	default:
		t.Fatalf("key %q is a %T", k.kid, k.key)
	}
}

// jwksSeeds returns sets of real keys and the ways such sets go wrong.
func jwksSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	pt, err := ecKey.PublicKey.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	n, e := b64(rsaKey.N.Bytes()), b64(big.NewInt(int64(rsaKey.E)).Bytes())
	x, y := b64(pt[1:33]), b64(pt[33:])
	ed := b64(edKey.Public().(ed25519.PublicKey))
	rsaJWK := map[string]any{"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": n, "e": e}
	ecJWK := map[string]any{"kty": "EC", "kid": "ec", "crv": "P-256", "x": x, "y": y}
	edJWK := map[string]any{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": ed}
	set := func(keys ...map[string]any) []byte {
		b, err := json.Marshal(map[string]any{"keys": keys})
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	with := func(k map[string]any, name string, value any) map[string]any {
		out := map[string]any{}
		for key, v := range k {
			out[key] = v
		}
		out[name] = value
		return out
	}
	valid := set(rsaJWK, ecJWK, edJWK)
	return [][]byte{
		valid,
		set(rsaJWK), set(ecJWK), set(edJWK),
		valid[:len(valid)/2], // truncated
		[]byte(`{"keys": null}`), []byte(`{"keys": []}`), []byte(`{"keys": {}}`), []byte(`[]`), []byte(`null`), []byte(``),
		[]byte(`{"keys": [null, 1, "x", [], {}]}`),
		set(with(rsaJWK, "kty", "rsa"), with(ecJWK, "kty", "OKP"), with(edJWK, "kty", "EC"), with(edJWK, "kty", "oct")),
		set(with(rsaJWK, "n", n+"!"), with(ecJWK, "x", "****"), with(edJWK, "x", ed+"==")), // bad base64, padding
		set(with(rsaJWK, "n", b64(rsaKey.N.Bytes()[:128]))),                                // 1024-bit modulus
		set(with(rsaJWK, "e", b64([]byte{1, 0, 0, 0, 1}))),                                 // 40-bit exponent
		set(with(rsaJWK, "e", b64([]byte{2}))), set(with(rsaJWK, "e", "")),
		set(with(ecJWK, "y", x)),            // not on the curve
		set(with(ecJWK, "crv", "P-384")),    // unsupported curve
		set(with(edJWK, "x", b64(pt[:31]))), // short Ed25519 key
		set(with(rsaJWK, "use", "enc"), with(ecJWK, "key_ops", []string{"sign"}), with(edJWK, "alg", "ES256")),
		set(with(ecJWK, "key_ops", []string{}), with(edJWK, "alg", "Ed25519")),
		set(with(rsaJWK, "kid", string([]byte{0xff, 0x00}))),
	}
}

// A modulus past maxRSABits makes every signature check slow (a 131072-bit
// one takes seconds, and a 1 MiB set holds far longer ones), and an even one
// can verify nothing: neither is kept.
func TestParseJWKSRefusesHugeAndEvenModuli(t *testing.T) {
	t.Parallel()
	b64 := base64.RawURLEncoding.EncodeToString
	modulus := func(bits int, odd bool) string {
		n := new(big.Int).Lsh(big.NewInt(1), uint(bits-1))
		if odd {
			n.SetBit(n, 0, 1)
		}
		return b64(n.Bytes())
	}
	for _, tt := range []struct {
		n    string
		keep bool
	}{
		{modulus(maxRSABits, true), true},
		{modulus(maxRSABits+1, true), false},
		{modulus(1<<15, true), false},
		{modulus(minRSABits, false), false},
	} {
		doc := `{"keys": [{"kty": "RSA", "n": "` + tt.n + `", "e": "AQAB"}]}`
		keys, _, err := parseJWKS([]byte(doc))
		if tt.keep != (err == nil && len(keys) == 1) {
			t.Errorf("%d-byte modulus: keys %d, error %v; want kept %v", len(tt.n), len(keys), err, tt.keep)
		}
	}
}
