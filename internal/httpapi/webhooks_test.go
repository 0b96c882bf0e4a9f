package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/webhook"
)

type endpointList struct {
	Items      []httpapi.WebhookEndpoint `json:"items"`
	NextCursor *string                   `json:"next_cursor"`
}

type deliveryList struct {
	Items      []httpapi.WebhookDelivery `json:"items"`
	NextCursor *string                   `json:"next_cursor"`
}

type rotatedSecret struct {
	Secret            string    `json:"secret"`
	PreviousExpiresAt time.Time `json:"previous_expires_at"`
}

func endpointJSON(url string) string {
	return fmt.Sprintf(`{"url": %q}`, url)
}

// createEndpoint posts body and returns the endpoint it created, with its
// secret.
func (b *testBundle) createEndpoint(t *testing.T, body string) httpapi.WebhookEndpointWithSecret {
	t.Helper()
	r := b.postJSON(t, "/v1/webhook-endpoints", body)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	return decode[httpapi.WebhookEndpointWithSecret](t, r)
}

// getEndpoint returns an endpoint and the raw body it came in.
func (b *testBundle) getEndpoint(t *testing.T, id string) (httpapi.WebhookEndpoint, response) {
	t.Helper()
	r := b.do(t, http.MethodGet, "/v1/webhook-endpoints/"+id, "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	return decode[httpapi.WebhookEndpoint](t, r), r
}

func (b *testBundle) listEndpoints(t *testing.T) (endpointList, response) {
	t.Helper()
	r := b.do(t, http.MethodGet, "/v1/webhook-endpoints", "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	return decode[endpointList](t, r), r
}

func (b *testBundle) patchEndpoint(t *testing.T, id, body string) response {
	t.Helper()
	return b.do(t, http.MethodPatch, "/v1/webhook-endpoints/"+id, "application/json", body)
}

func (b *testBundle) deleteEndpoint(t *testing.T, id string) response {
	t.Helper()
	return b.do(t, http.MethodDelete, "/v1/webhook-endpoints/"+id, "", "")
}

func (b *testBundle) rotateSecret(t *testing.T, id string) response {
	t.Helper()
	return b.do(t, http.MethodPost, "/v1/webhook-endpoints/"+id+"/rotate-secret", "", "")
}

// requireSecret checks that s is a Standard Webhooks secret: whsec_ and the
// base64 of a 24 to 64 byte key. It returns the key.
func requireSecret(t *testing.T, s string) []byte {
	t.Helper()
	encoded, ok := strings.CutPrefix(s, "whsec_")
	require.True(t, ok, "secret %q does not start with whsec_", s)
	key, err := base64.StdEncoding.DecodeString(encoded)
	require.NoError(t, err, "secret %q", s)
	require.GreaterOrEqual(t, len(key), 24)
	require.LessOrEqual(t, len(key), 64)
	return key
}

// requireNoSecret checks that a response shows no signing secret: no secret
// field anywhere and none of the given secrets in its text.
func requireNoSecret(t *testing.T, r response, secrets ...string) {
	t.Helper()
	require.NotContains(t, string(r.body), `"secret"`)
	for _, s := range secrets {
		require.NotContains(t, string(r.body), s)
		require.NotContains(t, string(r.body), strings.TrimPrefix(s, "whsec_"))
	}
}

func TestCreateWebhookEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.postJSON(t, "/v1/webhook-endpoints", `{"url": "https://example.com/hooks/ctrader", "description": "billing"}`)
	require.Equal(t, http.StatusCreated, r.status, string(r.body))
	created := decode[httpapi.WebhookEndpointWithSecret](t, r)
	require.Equal(t, "/v1/webhook-endpoints/"+created.ID, r.header.Get("Location"))
	require.Equal(t, "https://example.com/hooks/ctrader", created.URL)
	require.Equal(t, "billing", created.Description)
	require.True(t, created.Enabled, "enabled by default")
	require.Zero(t, created.ConsecutiveFailures)
	require.Empty(t, created.DisabledReason)
	require.Nil(t, created.DisabledAt)
	require.Nil(t, created.DeletedAt)
	require.WithinDuration(t, time.Now(), created.CreatedAt, time.Minute)
	key := requireSecret(t, created.Secret)
	require.NotContains(t, string(r.body), "$schema")

	got, raw := b.getEndpoint(t, created.ID)
	require.Equal(t, created.WebhookEndpoint, got)
	require.NotContains(t, asMap(t, raw.body), "secret")
	requireNoSecret(t, raw, created.Secret)

	list, rawList := b.listEndpoints(t)
	require.Equal(t, []httpapi.WebhookEndpoint{created.WebhookEndpoint}, list.Items)
	require.Nil(t, list.NextCursor)
	requireNoSecret(t, rawList, created.Secret)

	var (
		stored    []byte
		sealed    bool
		expiresAt *time.Time
	)
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT secret, sealed, expires_at FROM webhook_secrets WHERE endpoint_id = $1`, created.ID).Scan(&stored, &sealed, &expiresAt))
	require.False(t, sealed, "no sealing key in these tests")
	require.Equal(t, key, stored, "the key behind the secret is the one that signs")
	require.Nil(t, expiresAt)
	require.Zero(t, count(t, b.pool, "river_job"))

	t.Run("every endpoint has its own secret", func(t *testing.T) {
		other := b.createEndpoint(t, endpointJSON("https://example.com/other"))
		require.NotEqual(t, created.Secret, other.Secret)
		requireSecret(t, other.Secret)
	})

	t.Run("disabled from the start", func(t *testing.T) {
		e := b.createEndpoint(t, `{"url": "http://example.com/x", "enabled": false}`)
		require.False(t, e.Enabled)
		got, _ := b.getEndpoint(t, e.ID)
		require.False(t, got.Enabled)
	})

	t.Run("the url is trimmed", func(t *testing.T) {
		e := b.createEndpoint(t, endpointJSON("  https://example.com/trimmed\n"))
		require.Equal(t, "https://example.com/trimmed", e.URL)
	})

	t.Run("a url of exactly 2048 characters", func(t *testing.T) {
		url := "https://example.com/"
		url += strings.Repeat("a", 2048-len(url))
		e := b.createEndpoint(t, endpointJSON(url))
		require.Equal(t, url, e.URL)
	})
}

func TestCreateWebhookEndpointRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	long := "https://example.com/" + strings.Repeat("a", 2048)
	tests := []struct {
		name     string
		body     string
		status   int
		code     string
		location string // the errors entry that must be present, if any
		hidden   string // text the problem must not show, if any
	}{
		{"relative url", endpointJSON("/hooks/ctrader"), 422, "invalid", "body.url", ""},
		{"host without scheme", endpointJSON("example.com/hooks"), 422, "invalid", "body.url", ""},
		{"ftp url", endpointJSON("ftp://example.com/x"), 422, "invalid", "body.url", ""},
		{"mailto url", endpointJSON("mailto:ops@example.com"), 422, "invalid", "body.url", ""},
		{"javascript url", endpointJSON("javascript:alert(1)"), 422, "invalid", "body.url", ""},
		{"missing host", endpointJSON("https:///x"), 422, "invalid", "body.url", ""},
		{"port without host", endpointJSON("http://:8080/x"), 422, "invalid", "body.url", ""},
		{"port out of range", endpointJSON("https://example.com:70000/x"), 422, "invalid", "body.url", ""},
		{"unparsable url", endpointJSON("http://[::1/x"), 422, "invalid", "body.url", ""},
		{"user and password", endpointJSON("https://user:pass@example.com/x"), 422, "invalid", "body.url", "pass"},
		{"user token", endpointJSON("https://tok3n@example.com/x"), 422, "invalid", "body.url", "tok3n"},
		{"fragment", endpointJSON("https://example.com/x#part"), 422, "invalid", "body.url", ""},
		{"empty fragment", endpointJSON("https://example.com/x#"), 422, "invalid", "body.url", ""},
		{"url over 2048 characters", endpointJSON(long), 422, "invalid", "body.url", ""},
		{"empty url", endpointJSON(""), 422, "invalid", "body.url", ""},
		{"blank url", endpointJSON("   "), 422, "invalid", "body.url", ""},
		{"url of wrong type", `{"url": 5}`, 422, "invalid", "body.url", ""},
		{"no url", `{"description": "x"}`, 422, "invalid", "body", ""},
		{"description over 2000 characters", `{"url": "https://example.com/x", "description": "` + strings.Repeat("d", 2001) + `"}`,
			422, "invalid", "body.description", ""},
		{"enabled not a bool", `{"url": "https://example.com/x", "enabled": "yes"}`, 422, "invalid", "body.enabled", ""},
		{"unknown field", `{"url": "https://example.com/x", "secret": "whsec_AAAA"}`, 422, "invalid", "body.secret", ""},
		{"malformed JSON", `{"url": `, 400, "malformed", "", ""},
		{"no body", ``, 400, "malformed", "", ""},
		{"body over 16 KiB", `{"url": "https://example.com/x", "description": "` + strings.Repeat("d", 17*1024) + `"}`, 413, "too_large", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.postJSON(t, "/v1/webhook-endpoints", tt.body)
			p := requireProblem(t, r, tt.status, tt.code)
			if tt.location != "" {
				require.Contains(t, locations(p), tt.location)
			}
			if tt.hidden != "" {
				require.NotContains(t, string(r.body), tt.hidden)
			}
		})
	}
	require.Zero(t, count(t, b.pool, "webhook_endpoints"), "no bad input wrote anything")
	require.Zero(t, count(t, b.pool, "webhook_secrets"))
}

func TestGetWebhookEndpointUnknownAndMalformed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	p := requireProblem(t, b.do(t, http.MethodGet, "/v1/webhook-endpoints/"+unknownID, "", ""), http.StatusNotFound, "not_found")
	require.Equal(t, "/v1/webhook-endpoints/"+unknownID, p.Instance)
	p = requireProblem(t, b.do(t, http.MethodGet, "/v1/webhook-endpoints/42", "", ""), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "path.id")
}

func TestListWebhookEndpointsPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var ids []string
	for i := range 3 {
		ids = append(ids, b.createEndpoint(t, endpointJSON(fmt.Sprintf("https://example.com/%d", i))).ID)
	}
	r := b.do(t, http.MethodGet, "/v1/webhook-endpoints?limit=2", "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	first := decode[endpointList](t, r)
	require.Len(t, first.Items, 2)
	require.Equal(t, []string{ids[2], ids[1]}, []string{first.Items[0].ID, first.Items[1].ID}, "newest first")
	require.NotNil(t, first.NextCursor)
	second := decode[endpointList](t, b.do(t, http.MethodGet, "/v1/webhook-endpoints?limit=2&cursor="+*first.NextCursor, "", ""))
	require.Len(t, second.Items, 1)
	require.Equal(t, ids[0], second.Items[0].ID)
	require.Nil(t, second.NextCursor)

	for _, query := range []string{"?limit=0", "?limit=501", "?cursor=nope"} {
		requireProblem(t, b.do(t, http.MethodGet, "/v1/webhook-endpoints"+query, "", ""), http.StatusUnprocessableEntity, "invalid")
	}
}

func TestUpdateWebhookEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	created := b.createEndpoint(t, `{"url": "https://example.com/a", "description": "first"}`)

	r := b.patchEndpoint(t, created.ID, `{"url": "https://example.com/b"}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	requireNoSecret(t, r, created.Secret)
	moved := decode[httpapi.WebhookEndpoint](t, r)
	require.Equal(t, "https://example.com/b", moved.URL)
	require.Equal(t, "first", moved.Description, "absent fields stay")
	require.True(t, moved.Enabled)
	require.Equal(t, created.CreatedAt, moved.CreatedAt)
	require.True(t, moved.UpdatedAt.After(created.UpdatedAt))

	described := decode[httpapi.WebhookEndpoint](t, b.patchEndpoint(t, created.ID, `{"description": ""}`))
	require.Equal(t, "https://example.com/b", described.URL)
	require.Empty(t, described.Description)
	got, _ := b.getEndpoint(t, created.ID)
	require.Equal(t, described, got)

	t.Run("disable and enable", func(t *testing.T) {
		r := b.patchEndpoint(t, created.ID, `{"enabled": false}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		off := decode[httpapi.WebhookEndpoint](t, r)
		require.False(t, off.Enabled)
		require.NotNil(t, off.DisabledAt)
		require.WithinDuration(t, time.Now(), *off.DisabledAt, time.Minute)
		require.Empty(t, off.DisabledReason, "disabled by the client, not by ctrader")

		again := decode[httpapi.WebhookEndpoint](t, b.patchEndpoint(t, created.ID, `{"enabled": false}`))
		require.Equal(t, off.DisabledAt, again.DisabledAt, "disabling a disabled endpoint keeps when it was disabled")

		on := decode[httpapi.WebhookEndpoint](t, b.patchEndpoint(t, created.ID, `{"enabled": true}`))
		require.True(t, on.Enabled)
		require.Nil(t, on.DisabledAt)
	})

	t.Run("enabling clears the failure streak and the reason", func(t *testing.T) {
		_, err := b.pool.Exec(ctx, `
			UPDATE webhook_endpoints SET enabled = false, consecutive_failures = 50, disabled_reason = $2, disabled_at = now()
			WHERE id = $1`, created.ID, webhook.DisabledFailures)
		require.NoError(t, err)
		off, _ := b.getEndpoint(t, created.ID)
		require.False(t, off.Enabled)
		require.Equal(t, 50, off.ConsecutiveFailures)
		require.Equal(t, webhook.DisabledFailures, off.DisabledReason)

		r := b.patchEndpoint(t, created.ID, `{"enabled": true}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		on := decode[httpapi.WebhookEndpoint](t, r)
		require.True(t, on.Enabled)
		require.Zero(t, on.ConsecutiveFailures)
		require.Empty(t, on.DisabledReason)
		require.Nil(t, on.DisabledAt)
		require.NotContains(t, string(r.body), "disabled_reason")
		got, _ := b.getEndpoint(t, created.ID)
		require.Equal(t, on, got)
	})

	t.Run("a streak on an enabled endpoint stays when enabled is repeated", func(t *testing.T) {
		_, err := b.pool.Exec(ctx, `UPDATE webhook_endpoints SET consecutive_failures = 3 WHERE id = $1`, created.ID)
		require.NoError(t, err)
		got := decode[httpapi.WebhookEndpoint](t, b.patchEndpoint(t, created.ID, `{"enabled": true}`))
		require.Equal(t, 3, got.ConsecutiveFailures)
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		before, _ := b.getEndpoint(t, created.ID)
		tests := []struct {
			name     string
			id       string
			body     string
			status   int
			code     string
			location string
		}{
			{"relative url", created.ID, endpointJSON("/x"), 422, "invalid", "body.url"},
			{"ftp url", created.ID, endpointJSON("ftp://example.com/x"), 422, "invalid", "body.url"},
			{"credentials", created.ID, endpointJSON("https://user:pass@example.com/x"), 422, "invalid", "body.url"},
			{"fragment", created.ID, endpointJSON("https://example.com/x#f"), 422, "invalid", "body.url"},
			{"empty url", created.ID, endpointJSON(""), 422, "invalid", "body.url"},
			{"url over 2048 characters", created.ID, endpointJSON("https://example.com/" + strings.Repeat("a", 2048)), 422, "invalid", "body.url"},
			{"description over 2000 characters", created.ID, `{"description": "` + strings.Repeat("d", 2001) + `"}`, 422, "invalid", "body.description"},
			{"unknown field", created.ID, `{"ur": "https://example.com/x"}`, 422, "invalid", "body.ur"},
			{"malformed JSON", created.ID, `{"url": `, 400, "malformed", ""},
			{"body over 16 KiB", created.ID, `{"description": "` + strings.Repeat("d", 17*1024) + `"}`, 413, "too_large", ""},
			{"unknown id", unknownID, `{"description": "x"}`, 404, "not_found", ""},
			{"malformed id", "42", `{"description": "x"}`, 422, "invalid", "path.id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := b.patchEndpoint(t, tt.id, tt.body)
				p := requireProblem(t, r, tt.status, tt.code)
				if tt.location != "" {
					require.Contains(t, locations(p), tt.location)
				}
				require.NotContains(t, string(r.body), "pass")
			})
		}
		after, _ := b.getEndpoint(t, created.ID)
		require.Equal(t, before, after)
	})

	t.Run("a deleted endpoint conflicts", func(t *testing.T) {
		gone := b.createEndpoint(t, endpointJSON("https://example.com/gone"))
		require.Equal(t, http.StatusNoContent, b.deleteEndpoint(t, gone.ID).status)
		deleted, _ := b.getEndpoint(t, gone.ID)
		requireProblem(t, b.patchEndpoint(t, gone.ID, `{"enabled": true}`), http.StatusConflict, "conflict")
		requireProblem(t, b.patchEndpoint(t, gone.ID, `{"url": "https://example.com/back"}`), http.StatusConflict, "conflict")
		requireProblem(t, b.patchEndpoint(t, gone.ID, `{}`), http.StatusConflict, "conflict")
		after, _ := b.getEndpoint(t, gone.ID)
		require.Equal(t, deleted, after)
	})
}

func TestDeleteWebhookEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t)
	kept := b.createEndpoint(t, endpointJSON("https://example.com/kept"))
	used := b.createEndpoint(t, endpointJSON("https://example.com/used"))
	webhookAction := func(id string) string { return `[{"type": "webhook", "endpoint_id": "` + id + `"}]` }
	// The id in another spelling: rules store it normalized, so the check finds it.
	alpha := b.createRule(t, `{"name": "alpha", "condition": "true", "actions": `+webhookAction(strings.ToUpper(used.ID))+`}`)
	beta := b.createRule(t, `{"name": "beta", "condition": "true", "enabled": false, "actions": [
		{"type": "set_account_status", "status": "vip"}, {"type": "webhook", "endpoint_id": "`+used.ID+`"}]}`)
	b.createRule(t, `{"name": "gamma", "condition": "true", "actions": `+webhookAction(kept.ID)+`}`)
	b.createRule(t, ruleJSON("delta", "true"))

	p := requireProblem(t, b.deleteEndpoint(t, used.ID), http.StatusConflict, "conflict")
	require.Contains(t, p.Detail, "alpha")
	require.Contains(t, p.Detail, "beta", "a disabled rule still sends once enabled")
	require.NotContains(t, p.Detail, "gamma")
	require.NotContains(t, p.Detail, "delta")
	stillThere, _ := b.getEndpoint(t, used.ID)
	require.Nil(t, stillThere.DeletedAt)
	require.True(t, stillThere.Enabled)

	require.Equal(t, http.StatusNoContent, b.deleteRule(t, alpha.ID).status)
	p = requireProblem(t, b.deleteEndpoint(t, used.ID), http.StatusConflict, "conflict")
	require.NotContains(t, p.Detail, "alpha", "deleted rules do not count")
	require.Contains(t, p.Detail, "beta")

	r := b.patchRule(t, beta.ID, `{"actions": [{"type": "set_account_status", "status": "vip"}]}`)
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	r = b.deleteEndpoint(t, used.ID)
	require.Equal(t, http.StatusNoContent, r.status, string(r.body))
	require.Empty(t, r.body)

	got, raw := b.getEndpoint(t, used.ID)
	require.NotNil(t, got.DeletedAt)
	require.WithinDuration(t, time.Now(), *got.DeletedAt, time.Minute)
	require.False(t, got.Enabled)
	require.Equal(t, used.URL, got.URL, "a deleted endpoint stays readable")
	requireNoSecret(t, raw, used.Secret)

	list, _ := b.listEndpoints(t)
	require.Len(t, list.Items, 1)
	require.Equal(t, kept.ID, list.Items[0].ID, "deleted endpoints are not listed")

	again := b.deleteEndpoint(t, used.ID)
	require.Equal(t, http.StatusNoContent, again.status, string(again.body))
	after, _ := b.getEndpoint(t, used.ID)
	require.Equal(t, got, after, "deleting again changes nothing")

	requireProblem(t, b.deleteEndpoint(t, unknownID), http.StatusNotFound, "not_found")
	p = requireProblem(t, b.deleteEndpoint(t, "42"), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "path.id")
	require.Equal(t, 2, count(t, b.pool, "webhook_endpoints"))
}

func TestRotateWebhookSecret(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	created := b.createEndpoint(t, endpointJSON("https://example.com/x"))
	firstKey := requireSecret(t, created.Secret)

	r := b.rotateSecret(t, created.ID)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	rotated := decode[rotatedSecret](t, r)
	newKey := requireSecret(t, rotated.Secret)
	require.NotEqual(t, created.Secret, rotated.Secret)
	require.NotContains(t, string(r.body), created.Secret)
	require.WithinDuration(t, time.Now().Add(24*time.Hour), rotated.PreviousExpiresAt, time.Minute)

	type stored struct {
		key       []byte
		expiresAt *time.Time
	}
	secrets := func() []stored {
		rows, err := b.pool.Query(ctx, `SELECT secret, expires_at FROM webhook_secrets WHERE endpoint_id = $1 ORDER BY created_at, id`, created.ID)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
			var s stored
			return s, r.Scan(&s.key, &s.expiresAt)
		})
		require.NoError(t, err)
		return out
	}
	got := secrets()
	require.Len(t, got, 2)
	require.Equal(t, firstKey, got[0].key)
	require.NotNil(t, got[0].expiresAt, "the previous secret expires")
	require.WithinDuration(t, rotated.PreviousExpiresAt, *got[0].expiresAt, time.Millisecond)
	require.Equal(t, newKey, got[1].key)
	require.Nil(t, got[1].expiresAt, "the new secret does not")

	ep, raw := b.getEndpoint(t, created.ID)
	require.Equal(t, created.ID, ep.ID)
	requireNoSecret(t, raw, created.Secret, rotated.Secret)
	_, rawList := b.listEndpoints(t)
	requireNoSecret(t, rawList, created.Secret, rotated.Secret)

	t.Run("a disabled endpoint can rotate", func(t *testing.T) {
		require.Equal(t, http.StatusOK, b.patchEndpoint(t, created.ID, `{"enabled": false}`).status)
		r := b.rotateSecret(t, created.ID)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		third := decode[rotatedSecret](t, r)
		require.NotEqual(t, rotated.Secret, third.Secret)
		got := secrets()
		require.Len(t, got, 3)
		require.NotNil(t, got[1].expiresAt)
		require.Nil(t, got[2].expiresAt)
		require.False(t, got[0].expiresAt.After(*got[1].expiresAt), "an older secret never outlives a newer one")
	})

	t.Run("refusals", func(t *testing.T) {
		gone := b.createEndpoint(t, endpointJSON("https://example.com/gone"))
		require.Equal(t, http.StatusNoContent, b.deleteEndpoint(t, gone.ID).status)
		before := count(t, b.pool, "webhook_secrets")
		requireProblem(t, b.rotateSecret(t, gone.ID), http.StatusConflict, "conflict")
		requireProblem(t, b.rotateSecret(t, unknownID), http.StatusNotFound, "not_found")
		p := requireProblem(t, b.rotateSecret(t, "42"), http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, locations(p), "path.id")
		require.Equal(t, before, count(t, b.pool, "webhook_secrets"))
		var expiring int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM webhook_secrets WHERE endpoint_id = $1 AND expires_at IS NOT NULL`, gone.ID).Scan(&expiring))
		require.Zero(t, expiring, "a refused rotation expires nothing")
	})
}

func TestRuleWebhookActions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	live := b.createEndpoint(t, endpointJSON("https://example.com/live"))
	gone := b.createEndpoint(t, endpointJSON("https://example.com/gone"))
	require.Equal(t, http.StatusNoContent, b.deleteEndpoint(t, gone.ID).status)
	disabled := b.createEndpoint(t, `{"url": "https://example.com/off", "enabled": false}`)

	withActions := func(actions string) string {
		return `{"name": "r", "condition": "true", "actions": [` + actions + `]}`
	}
	webhookTo := func(id string) string { return `{"type": "webhook", "endpoint_id": "` + id + `"}` }

	t.Run("refusals write nothing", func(t *testing.T) {
		tests := []struct {
			name      string
			body      string
			locations []string
		}{
			{"unknown endpoint", withActions(webhookTo(unknownID)), []string{"body.actions[0].endpoint_id"}},
			{"the nil uuid", withActions(webhookTo(uuid.Nil.String())), []string{"body.actions[0].endpoint_id"}},
			{"deleted endpoint", withActions(webhookTo(gone.ID)), []string{"body.actions[0].endpoint_id"}},
			{"unknown endpoint after a good action", withActions(webhookTo(live.ID) + "," + webhookTo(unknownID)), []string{"body.actions[1].endpoint_id"}},
			{"malformed endpoint_id", withActions(webhookTo("42")), []string{"body.actions[0].endpoint_id"}},
			{"no endpoint_id", withActions(`{"type": "webhook"}`), []string{"body.actions[0].endpoint_id"}},
			{"endpoint_id not a string", withActions(`{"type": "webhook", "endpoint_id": 42}`), []string{"body.actions[0].endpoint_id"}},
			{"endpoint_id over 64 characters", withActions(webhookTo(strings.Repeat("a", 65))), []string{"body.actions[0].endpoint_id"}},
			{"webhook with a status", withActions(`{"type": "webhook", "endpoint_id": "` + live.ID + `", "status": "vip"}`), []string{"body.actions[0]"}},
			{"webhook with an event_type", withActions(`{"type": "webhook", "endpoint_id": "` + live.ID + `", "event_type": "x"}`), []string{"body.actions[0]"}},
			{"webhook with a payload", withActions(`{"type": "webhook", "endpoint_id": "` + live.ID + `", "payload": {"a": 1}}`), []string{"body.actions[0]"}},
			{"webhook with a payload_expr", withActions(`{"type": "webhook", "endpoint_id": "` + live.ID + `", "payload_expr": "{'a': 1}"}`), []string{"body.actions[0]"}},
			{"webhook with an unknown field", withActions(`{"type": "webhook", "endpoint_id": "` + live.ID + `", "url": "https://example.com"}`), []string{"body.actions[0].url"}},
			{"emit_event with an endpoint_id", withActions(`{"type": "emit_event", "event_type": "x", "endpoint_id": "` + live.ID + `"}`), []string{"body.actions[0].endpoint_id"}},
			{"set_account_status with an endpoint_id", withActions(`{"type": "set_account_status", "status": "vip", "endpoint_id": "` + live.ID + `"}`), []string{"body.actions[0]"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := requireProblem(t, b.postJSON(t, "/v1/rules", tt.body), http.StatusUnprocessableEntity, "invalid")
				require.Subset(t, locations(p), tt.locations)
			})
		}
		require.Zero(t, count(t, b.pool, "rules"))
		require.Zero(t, count(t, b.pool, "rule_versions"))
		require.Zero(t, count(t, b.pool, "river_job"))
	})

	t.Run("good webhook actions", func(t *testing.T) {
		r := b.postJSON(t, "/v1/rules", `{"name": "notify", "condition": "true", "actions": [
			{"type": "set_account_status", "status": "vip"},
			{"type": "webhook", "endpoint_id": "`+strings.ToUpper(live.ID)+`"},
			{"type": "webhook", "endpoint_id": "`+disabled.ID+`"}]}`)
		require.Equal(t, http.StatusCreated, r.status, string(r.body))
		created := decode[httpapi.Rule](t, r)
		require.Equal(t, []httpapi.RuleAction{
			{Type: "set_account_status", Status: "vip"},
			{Type: "webhook", EndpointID: live.ID},
			{Type: "webhook", EndpointID: disabled.ID},
		}, created.Actions, "ids are stored in their canonical form; a disabled endpoint may be named")
		require.Equal(t, created, b.getRule(t, created.ID))
		require.Equal(t, []any{
			map[string]any{"type": "set_account_status", "status": "vip"},
			map[string]any{"type": "webhook", "endpoint_id": live.ID},
			map[string]any{"type": "webhook", "endpoint_id": disabled.ID},
		}, asMap(t, r.body)["actions"], "no fields of other action types")
	})

	t.Run("patching in a webhook action", func(t *testing.T) {
		rule := b.createRule(t, `{"name": "patched", "condition": "true", "actions": [{"type": "set_account_status", "status": "vip"}]}`)
		versions := count(t, b.pool, "rule_versions")
		for _, tt := range []struct {
			name, actions, location string
		}{
			{"unknown endpoint", `{"type": "set_account_status", "status": "vip"}, ` + webhookTo(unknownID), "body.actions[1].endpoint_id"},
			{"deleted endpoint", webhookTo(gone.ID), "body.actions[0].endpoint_id"},
			{"malformed endpoint_id", webhookTo("nope"), "body.actions[0].endpoint_id"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				p := requireProblem(t, b.patchRule(t, rule.ID, `{"actions": [`+tt.actions+`]}`), http.StatusUnprocessableEntity, "invalid")
				require.Contains(t, locations(p), tt.location)
				require.Equal(t, rule, b.getRule(t, rule.ID), "version unchanged")
				require.Equal(t, versions, count(t, b.pool, "rule_versions"))
			})
		}

		r := b.patchRule(t, rule.ID, `{"actions": [`+webhookTo(live.ID)+`]}`)
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		patched := decode[httpapi.Rule](t, r)
		require.Equal(t, rule.Version+1, patched.Version)
		require.Equal(t, []httpapi.RuleAction{{Type: "webhook", EndpointID: live.ID}}, patched.Actions)
	})
}

// awaitLockWait fails the test unless, before done answers, some query on
// webhook_endpoints waits for a lock.
func awaitLockWait(t *testing.T, b *testBundle, done <-chan response, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		select {
		case r := <-done:
			require.Failf(t, what+" did not wait", "%d %s", r.status, r.body)
		default:
		}
		var waiting bool
		require.NoError(t, b.pool.QueryRow(context.Background(), `
			SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%webhook_endpoints%')`).Scan(&waiting))
		if waiting {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.Fail(t, what+" never waited for the other transaction")
}

// sendAsync makes a request in another goroutine; the channel answers once.
func (b *testBundle) sendAsync(method, path, body string) <-chan response {
	done := make(chan response, 1)
	go func() {
		r, err := b.send(method, path, http.Header{"Content-Type": {"application/json"}}, body)
		if err != nil {
			r = response{status: -1, body: []byte(err.Error())}
		}
		done <- r
	}()
	return done
}

// A rule written while its endpoint is being deleted must either see the
// deletion (422) or make the deletion see the rule (409): never a live rule
// sending to a deleted endpoint.
func TestRuleAndEndpointDeletionDoNotRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("the deletion first", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ep := b.createEndpoint(t, endpointJSON("https://example.com/x"))

		// Delete the endpoint as the API does, with a rule created meanwhile.
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		_, err = tx.Exec(ctx, `SELECT 1 FROM webhook_endpoints WHERE id = $1 FOR UPDATE`, ep.ID)
		require.NoError(t, err)
		var users int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM rules WHERE deleted_at IS NULL`).Scan(&users))
		require.Zero(t, users)

		done := b.sendAsync(http.MethodPost, "/v1/rules",
			`{"name": "r", "condition": "true", "actions": [{"type": "webhook", "endpoint_id": "`+ep.ID+`"}]}`)
		awaitLockWait(t, b, done, "creating a rule that sends to an endpoint being deleted")
		_, err = tx.Exec(ctx, `UPDATE webhook_endpoints SET deleted_at = now(), enabled = false, updated_at = now() WHERE id = $1`, ep.ID)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))

		p := requireProblem(t, <-done, http.StatusUnprocessableEntity, "invalid")
		require.Equal(t, []string{"body.actions[0].endpoint_id"}, locations(p))
		require.Zero(t, count(t, b.pool, "rules"))
	})

	t.Run("the rule first", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ep := b.createEndpoint(t, endpointJSON("https://example.com/x"))

		// Write a rule as the API does, with the endpoint deleted meanwhile.
		tx, err := b.pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		usable, err := webhook.Referable(ctx, tx, uuid.MustParse(ep.ID))
		require.NoError(t, err)
		require.True(t, usable)

		done := b.sendAsync(http.MethodDelete, "/v1/webhook-endpoints/"+ep.ID, "")
		awaitLockWait(t, b, done, "deleting an endpoint a rule is being written for")
		_, err = tx.Exec(ctx, `INSERT INTO rules (id, name, condition, actions) VALUES ($1, 'racer', 'true', $2)`,
			uuid.New(), `[{"type": "webhook", "endpoint_id": "`+ep.ID+`"}]`)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))

		p := requireProblem(t, <-done, http.StatusConflict, "conflict")
		require.Contains(t, p.Detail, "racer")
		got, _ := b.getEndpoint(t, ep.ID)
		require.Nil(t, got.DeletedAt)
	})
}

func TestWebhookDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	ep := b.createEndpoint(t, endpointJSON("https://example.com/x"))
	deliveries := func(t *testing.T, endpointID, query string) deliveryList {
		t.Helper()
		r := b.do(t, http.MethodGet, "/v1/webhook-endpoints/"+endpointID+"/deliveries"+query, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		return decode[deliveryList](t, r)
	}
	retry := func(id string) response {
		return b.do(t, http.MethodPost, "/v1/webhook-deliveries/"+id+"/retry", "", "")
	}

	r := b.do(t, http.MethodGet, "/v1/webhook-endpoints/"+ep.ID+"/deliveries", "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.JSONEq(t, `{"items": []}`, string(r.body))

	t.Run("refusals", func(t *testing.T) {
		tests := []struct {
			name     string
			method   string
			path     string
			status   int
			code     string
			location string
		}{
			{"deliveries of an unknown endpoint", "GET", "/v1/webhook-endpoints/" + unknownID + "/deliveries", 404, "not_found", ""},
			{"deliveries of a malformed endpoint id", "GET", "/v1/webhook-endpoints/42/deliveries", 422, "invalid", "path.id"},
			{"bad status filter", "GET", "/v1/webhook-endpoints/" + ep.ID + "/deliveries?status=lost", 422, "invalid", "query.status"},
			{"bad limit", "GET", "/v1/webhook-endpoints/" + ep.ID + "/deliveries?limit=0", 422, "invalid", "query.limit"},
			{"bad cursor", "GET", "/v1/webhook-endpoints/" + ep.ID + "/deliveries?cursor=nope", 422, "invalid", "query.cursor"},
			{"unknown delivery", "GET", "/v1/webhook-deliveries/" + unknownID, 404, "not_found", ""},
			{"malformed delivery id", "GET", "/v1/webhook-deliveries/42", 422, "invalid", "path.id"},
			{"retry of an unknown delivery", "POST", "/v1/webhook-deliveries/" + unknownID + "/retry", 404, "not_found", ""},
			{"retry of a malformed delivery id", "POST", "/v1/webhook-deliveries/42/retry", 422, "invalid", "path.id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				p := requireProblem(t, b.do(t, tt.method, tt.path, "", ""), tt.status, tt.code)
				if tt.location != "" {
					require.Contains(t, locations(p), tt.location)
				}
			})
		}
		require.Zero(t, count(t, b.pool, "webhook_deliveries"))
		require.Zero(t, count(t, b.pool, "river_job"))
	})

	msg := webhook.Message{Type: "rule.matched", Timestamp: time.Now().UTC(), Data: map[string]any{"x": 1}}
	id := uuid.Must(uuid.NewV7())
	require.NoError(t, pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		return webhook.EnqueueMany(ctx, tx, b.client, []webhook.Outbound{{ID: id, EndpointID: uuid.MustParse(ep.ID), Message: msg}})
	}))
	require.Equal(t, map[string]int{"webhook.deliver": 1}, jobKinds(t, b.pool))

	list := deliveries(t, ep.ID, "")
	require.Len(t, list.Items, 1)
	d := list.Items[0]
	require.Equal(t, id.String(), d.ID)
	require.Equal(t, ep.ID, d.EndpointID)
	require.Empty(t, d.EvaluationID)
	require.Equal(t, "rule.matched", d.Type)
	require.Equal(t, "pending", d.Status)
	require.Zero(t, d.Attempts)
	require.Nil(t, d.LastStatus)
	require.Empty(t, d.LastError)
	require.Nil(t, d.FinishedAt)
	require.Empty(t, d.Body, "lists leave out bodies")
	require.Nil(t, list.NextCursor)
	require.Len(t, deliveries(t, ep.ID, "?status=pending").Items, 1)
	require.Empty(t, deliveries(t, ep.ID, "?status=succeeded").Items)
	require.Empty(t, deliveries(t, ep.ID, "?status=failed").Items)
	other := b.createEndpoint(t, endpointJSON("https://example.com/other"))
	require.Empty(t, deliveries(t, other.ID, "").Items, "an endpoint lists only its own deliveries")

	r = b.do(t, http.MethodGet, "/v1/webhook-deliveries/"+id.String(), "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	detail := decode[httpapi.WebhookDeliveryDetail](t, r)
	require.Equal(t, d, func() httpapi.WebhookDelivery { c := detail.WebhookDelivery; c.Body = nil; return c }())
	want, err := json.Marshal(msg)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(detail.Body), "the body is the stored message")
	require.Equal(t, []httpapi.WebhookAttempt{}, detail.AttemptList)
	require.Contains(t, asMap(t, r.body), "attempt_list")
	require.Equal(t, []any{}, asMap(t, r.body)["attempt_list"])

	t.Run("retry of a pending delivery", func(t *testing.T) {
		r := retry(id.String())
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		got := decode[httpapi.WebhookDelivery](t, r)
		require.Equal(t, id.String(), got.ID)
		require.Equal(t, "pending", got.Status)
		require.Equal(t, map[string]int{"webhook.deliver": 1}, jobKinds(t, b.pool), "the job it has is brought forward")
	})

	t.Run("retry of a failed delivery", func(t *testing.T) {
		_, err := b.pool.Exec(ctx, `
			UPDATE webhook_deliveries SET status = 'failed', attempts = 10, last_status = 500, last_error = 'answered 500',
				next_attempt_at = NULL, finished_at = now()
			WHERE id = $1`, id)
		require.NoError(t, err)
		require.Len(t, deliveries(t, ep.ID, "?status=failed").Items, 1)

		r := retry(id.String())
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		got := decode[httpapi.WebhookDelivery](t, r)
		require.Equal(t, "pending", got.Status)
		require.Nil(t, got.FinishedAt)
		require.NotNil(t, got.NextAttemptAt)
		require.Equal(t, map[string]int{"webhook.deliver": 2}, jobKinds(t, b.pool), "a new job sends it again")
		var jobID, newest int64
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT job_id FROM webhook_deliveries WHERE id = $1`, id).Scan(&jobID))
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT max(id) FROM river_job`).Scan(&newest))
		require.Equal(t, newest, jobID)
	})

	t.Run("retry to a disabled or deleted endpoint conflicts", func(t *testing.T) {
		require.Equal(t, http.StatusOK, b.patchEndpoint(t, ep.ID, `{"enabled": false}`).status)
		before := b.do(t, http.MethodGet, "/v1/webhook-deliveries/"+id.String(), "", "")
		jobsBefore := jobKinds(t, b.pool)
		requireProblem(t, retry(id.String()), http.StatusConflict, "conflict")

		require.Equal(t, http.StatusNoContent, b.deleteEndpoint(t, ep.ID).status)
		requireProblem(t, retry(id.String()), http.StatusConflict, "conflict")

		after := b.do(t, http.MethodGet, "/v1/webhook-deliveries/"+id.String(), "", "")
		require.JSONEq(t, string(before.body), string(after.body))
		require.Equal(t, jobsBefore, jobKinds(t, b.pool))
		require.Len(t, deliveries(t, ep.ID, "").Items, 1, "a deleted endpoint's deliveries stay readable")
	})
}

func TestWebhookSpec(t *testing.T) {
	t.Parallel()
	secretLike := regexp.MustCompile(`whsec_[A-Za-z0-9+/]{8,}`)
	for _, path := range []string{"../../openapi/openapi.yaml", "../../openapi/openapi-3.0.yaml"} {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Empty(t, secretLike.FindAllString(string(data), -1), "%s shows something that looks like a secret", path)
	}

	spec := httpapi.Describe().OpenAPI()
	item := spec.Paths["/v1/webhook-endpoints/{id}"]
	require.NotNil(t, item)
	require.NotNil(t, item.Delete)
	require.Equal(t, "deleteWebhookEndpoint", item.Delete.OperationID)
	require.Contains(t, item.Delete.Responses, "409")
	require.Contains(t, item.Delete.Responses, "404")
	require.Contains(t, item.Delete.Responses, "204")
	rotate := spec.Paths["/v1/webhook-endpoints/{id}/rotate-secret"]
	require.NotNil(t, rotate)
	require.Contains(t, rotate.Post.Responses, "409")
	retry := spec.Paths["/v1/webhook-deliveries/{id}/retry"]
	require.NotNil(t, retry)
	require.Contains(t, retry.Post.Responses, "202")
	require.Contains(t, retry.Post.Responses, "409")
}
