package webhook

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSign(t *testing.T) {
	t.Parallel()
	// The example in the Standard Webhooks specification.
	specKey, err := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	otherKey := make([]byte, 32)
	for i := range otherKey {
		otherKey[i] = byte(i)
	}
	const (
		msgID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		body  = `{"test": 2432232314}`
		spec  = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
		other = "v1,O4Gjv1HqPqsMrjmczoggs/sWA8gZD0VyHG+fLh4+ktI="
	)
	ts := time.Unix(1614265330, 999_000_000) // only whole seconds are signed
	tests := []struct {
		name string
		keys [][]byte
		want string
	}{
		{"one key", [][]byte{specKey}, spec},
		{"keys in the order given, space-separated", [][]byte{otherKey, specKey}, other + " " + spec},
		{"no key", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, Sign(msgID, ts, []byte(body), tt.keys))
		})
	}
	require.NotEqual(t, spec, Sign(msgID, ts.Add(time.Second), []byte(body), [][]byte{specKey}), "the timestamp is signed")
	require.NotEqual(t, spec, Sign(msgID+"x", ts, []byte(body), [][]byte{specKey}), "the id is signed")
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	raw, secret, err := newSecret()
	require.NoError(t, err)
	require.Len(t, raw, secretBytes)
	require.Regexp(t, regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=$`), secret)
	decoded, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	require.NoError(t, err)
	require.Equal(t, raw, decoded)
}
