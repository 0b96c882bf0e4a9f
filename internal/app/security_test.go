package app_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/app"
	"github.com/ctrader/ctrader/internal/dbtest"
)

func TestServeWithoutAuthListensOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)

	vars := baseEnv(url)
	vars["HTTP_ADDR"] = ":0"
	p := start(t, []string{"serve"}, vars)
	host, _, err := net.SplitHostPort(p.addr)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host, "an unauthenticated server binds loopback")
	require.Contains(t, p.logs.String(), "no authentication configured")

	vars = baseEnv(url)
	vars["HTTP_ADDR"] = "0.0.0.0:0"
	err = app.Run(context.Background(), []string{"serve"}, env(vars), io.Discard, io.Discard)
	require.ErrorContains(t, err, "refusing to serve without authentication")

	insecure := start(t, []string{"serve", "--insecure"}, vars)
	require.True(t, strings.HasPrefix(insecure.addr, "[::]:") || strings.HasPrefix(insecure.addr, "0.0.0.0:"), insecure.addr)
}

func TestServeWithAuthProtectsEverythingButProbes(t *testing.T) {
	t.Parallel()
	vars := baseEnv(dbtest.URL(t))
	vars["AUTH_HS256_SECRET"] = "0123456789abcdef0123456789abcdef"
	vars["UI_USER"], vars["UI_PASSWORD"] = "ops", "pw"
	p := start(t, []string{"serve"}, vars)
	base := "http://" + p.addr

	for _, path := range []string{"/v1/accounts", "/riverui/", "/docs/", "/metrics"} {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, path)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		require.Equal(t, http.StatusOK, getJSON(t, base+path, nil), path)
	}
	req, err := http.NewRequest(http.MethodGet, base+"/riverui/", nil)
	require.NoError(t, err)
	req.SetBasicAuth("ops", "pw")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "River UI opens with the UI credentials")

	// A token minted by the token command works on the API.
	var out bytes.Buffer
	require.NoError(t, app.Run(context.Background(), []string{"token", "--sub", "ci", "--scope", "write"}, env(vars), &out, io.Discard))
	req, err = http.NewRequest(http.MethodPost, base+"/v1/accounts", strings.NewReader(`{"name":"John Doe"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out.String()))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	require.NotContains(t, p.logs.String(), vars["AUTH_HS256_SECRET"], "the secret is never logged")
	require.NotContains(t, p.logs.String(), strings.TrimSpace(out.String()), "tokens are never logged")
}
