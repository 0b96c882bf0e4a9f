package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/backlog"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/queue"
)

const unknownID = "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b"

type eventList struct {
	Items      []httpapi.Event `json:"items"`
	NextCursor *string         `json:"next_cursor"`
}

type eventBatch struct {
	Events []httpapi.Event `json:"events"`
}

// eventJSON is one event of a request body.
func eventJSON(accountID, typ, payload string) string {
	if payload == "" {
		return fmt.Sprintf(`{"account_id": %q, "type": %q}`, accountID, typ)
	}
	return fmt.Sprintf(`{"account_id": %q, "type": %q, "payload": %s}`, accountID, typ, payload)
}

func batchJSON(events ...string) string {
	return `{"events": [` + strings.Join(events, ",") + `]}`
}

// asMap decodes a JSON object, for comparing documents field by field.
func asMap(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), string(body))
	return m
}

func TestCreateEvent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		typ     string
		payload string
		job     string
	}{
		{"won event", "won", `{"amount": 1500, "currency": "EUR"}`, "events.process"},
		{"other event", "trade.closed", `{"symbol": "EURUSD"}`, "events.process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			accountID := b.createAccount(t, "John Doe")

			r := b.postJSON(t, "/v1/events", eventJSON(accountID, tt.typ, tt.payload))
			require.Equal(t, http.StatusAccepted, r.status, string(r.body))
			e := decode[httpapi.Event](t, r)
			require.Equal(t, "pending", e.Status)
			require.Equal(t, accountID, e.AccountID)
			require.Equal(t, tt.typ, e.Type)
			var want map[string]any
			require.NoError(t, json.Unmarshal([]byte(tt.payload), &want))
			require.Equal(t, want, e.Payload)
			require.Zero(t, e.Depth)
			require.Nil(t, e.CausationID)
			require.Nil(t, e.ProcessedAt)
			require.Equal(t, e.ReceivedAt, e.OccurredAt, "occurred_at defaults to when the event was received")
			require.WithinDuration(t, time.Now(), e.ReceivedAt, time.Minute)
			require.Equal(t, "/v1/events/"+e.ID, r.header.Get("Location"))
			require.Empty(t, r.header.Get("Idempotent-Replayed"))

			require.Equal(t, 1, count(t, b.pool, "events"))
			require.Equal(t, map[string]int{"account.provision": 1, tt.job: 1}, jobKinds(t, b.pool))

			got := b.do(t, http.MethodGet, r.header.Get("Location"), "", "")
			require.Equal(t, http.StatusOK, got.status, string(got.body))
			detail := asMap(t, got.body)
			require.Equal(t, []any{}, detail["evaluations"])
			delete(detail, "evaluations")
			require.Equal(t, asMap(t, r.body), detail, "GET shows the event as POST answered it")
		})
	}
}

func TestCreateEventJobArgsNameTheEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")

	won := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(accountID, "won", `{"amount": 10}`)))
	job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), jobs.EventsProcess{},
		&rivertest.RequireInsertedOpts{Queue: queue.Events, MaxAttempts: jobs.EventMaxAttempts})
	require.Len(t, job.Args.EventIDs, 1)
	require.Equal(t, won.ID, job.Args.EventIDs[0].String())

	other := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(accountID, "login", "")))
	requireOneJobEach(t, b.pool, []string{won.ID, other.ID})
}

func TestCreateEventAcceptsEdges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	soon := time.Now().Add(23 * time.Hour).UTC().Truncate(time.Second)
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, e httpapi.Event)
	}{
		{"no payload", eventJSON(accountID, "login", ""), func(t *testing.T, e httpapi.Event) {
			require.Equal(t, map[string]any{}, e.Payload)
		}},
		{"type of 100 characters", eventJSON(accountID, strings.Repeat("t", 100), ""), func(t *testing.T, e httpapi.Event) {
			require.Equal(t, strings.Repeat("t", 100), e.Type)
		}},
		{"type with every allowed punctuation", eventJSON(accountID, "trade:closed_v2.eu-west", ""), func(t *testing.T, e httpapi.Event) {
			require.Equal(t, "trade:closed_v2.eu-west", e.Type)
		}},
		{"occurred_at 23 hours ahead", fmt.Sprintf(`{"account_id": %q, "type": "login", "occurred_at": %q}`, accountID, soon.Format(time.RFC3339)),
			func(t *testing.T, e httpapi.Event) { require.True(t, soon.Equal(e.OccurredAt), e.OccurredAt) }},
		{"occurred_at in another zone is kept as UTC", fmt.Sprintf(`{"account_id": %q, "type": "login", "occurred_at": "2024-05-01T10:00:00+02:00"}`, accountID),
			func(t *testing.T, e httpapi.Event) {
				require.Equal(t, time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC), e.OccurredAt)
			}},
		{"won with a zero amount", eventJSON(accountID, "won", `{"amount": 0}`), func(t *testing.T, e httpapi.Event) {
			require.Equal(t, map[string]any{"amount": 0.0}, e.Payload)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := b.postJSON(t, "/v1/events", tt.body)
			require.Equal(t, http.StatusAccepted, r.status, string(r.body))
			tt.check(t, decode[httpapi.Event](t, r))
		})
	}
	require.Equal(t, len(tests), count(t, b.pool, "events"))
}

// Time given with more precision than Postgres keeps must be answered as it
// is stored, or the POST, its replay and a GET would disagree.
func TestCreateEventOccurredAtIsAnsweredAsStored(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	body := fmt.Sprintf(`{"account_id": %q, "type": "login", "occurred_at": "2024-05-01T10:00:00.123456789Z"}`, accountID)

	r := b.postJSON(t, "/v1/events", body)
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	e := decode[httpapi.Event](t, r)
	require.Equal(t, time.Date(2024, 5, 1, 10, 0, 0, 123456000, time.UTC), e.OccurredAt)

	got := decode[httpapi.EventDetail](t, b.do(t, http.MethodGet, "/v1/events/"+e.ID, "", ""))
	require.Equal(t, e.OccurredAt, got.OccurredAt)
}

func TestCreateEventRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	jobsBefore := jobKinds(t, b.pool)
	future := time.Now().Add(25 * time.Hour).UTC().Format(time.RFC3339)
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
		location    string // an errors entry that must be present, if any
	}{
		{"unknown account", "", eventJSON(unknownID, "login", ""), 422, "invalid", "body.account_id"},
		{"account_id not a uuid", "", eventJSON("42", "login", ""), 422, "invalid", "body.account_id"},
		{"the nil uuid as account_id", "", eventJSON(uuid.Nil.String(), "login", ""), 422, "invalid", "body.account_id"},
		{"no account_id", "", `{"type": "login"}`, 422, "invalid", "body"},
		{"payload an array", "", eventJSON(accountID, "login", `[1]`), 422, "invalid", "body.payload"},
		{"payload a string", "", eventJSON(accountID, "login", `"x"`), 422, "invalid", "body.payload"},
		{"payload over 32 KiB", "", eventJSON(accountID, "login", `{"blob": "`+strings.Repeat("x", 33*1024)+`"}`), 413, "too_large", "body.payload"},
		{"body over 64 KiB", "", eventJSON(accountID, "login", `{"blob": "`+strings.Repeat("x", 65*1024)+`"}`), 413, "too_large", ""},
		{"empty type", "", eventJSON(accountID, "", ""), 422, "invalid", "body.type"},
		{"type over 100 characters", "", eventJSON(accountID, strings.Repeat("t", 101), ""), 422, "invalid", "body.type"},
		{"type with spaces", "", eventJSON(accountID, "trade closed", ""), 422, "invalid", "body.type"},
		{"type starting with punctuation", "", eventJSON(accountID, ".won", ""), 422, "invalid", "body.type"},
		{"occurred_at malformed", "", fmt.Sprintf(`{"account_id": %q, "type": "login", "occurred_at": "yesterday"}`, accountID), 422, "invalid", "body.occurred_at"},
		{"occurred_at over 24 hours ahead", "", fmt.Sprintf(`{"account_id": %q, "type": "login", "occurred_at": %q}`, accountID, future), 422, "invalid", "body.occurred_at"},
		{"won without payload", "", eventJSON(accountID, "won", ""), 422, "invalid", "body.payload.amount"},
		{"won without amount", "", eventJSON(accountID, "won", `{"currency": "EUR"}`), 422, "invalid", "body.payload.amount"},
		{"won with a string amount", "", eventJSON(accountID, "won", `{"amount": "1500"}`), 422, "invalid", "body.payload.amount"},
		{"won with a null amount", "", eventJSON(accountID, "won", `{"amount": null}`), 422, "invalid", "body.payload.amount"},
		{"NUL in a payload string", "", eventJSON(accountID, "login", `{"note": ["a\u0000b"]}`), 422, "invalid", "body.payload"},
		{"NUL in a payload key", "", eventJSON(accountID, "login", `{"a": {"k\u0000": 1}}`), 422, "invalid", "body.payload"},
		{"unknown field", "", fmt.Sprintf(`{"account_id": %q, "type": "login", "typ": "x"}`, accountID), 422, "invalid", "body.typ"},
		{"malformed JSON", "", `{"account_id": `, 400, "malformed", ""},
		{"no body", "", ``, 400, "malformed", ""},
		{"form instead of JSON", "application/x-www-form-urlencoded", `type=login`, 415, "unsupported_media_type", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := tt.contentType
			if ct == "" {
				ct = "application/json"
			}
			p := requireProblem(t, b.do(t, http.MethodPost, "/v1/events", ct, tt.body), tt.status, tt.code)
			require.Equal(t, "/v1/events", p.Instance)
			if tt.location != "" {
				require.Contains(t, locations(p), tt.location)
			}
		})
	}
	require.Zero(t, count(t, b.pool, "events"), "no bad input wrote anything")
	require.Equal(t, jobsBefore, jobKinds(t, b.pool))
	require.Zero(t, count(t, b.pool, "idempotency_keys"))
}

// An unknown account refused under an Idempotency-Key leaves the key unused:
// the same key with a good request then does the work.
func TestCreateEventUnknownAccountLeavesTheKeyUnused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")

	p := requireProblem(t, b.postJSONWithKey(t, "/v1/events", "key-1", eventJSON(unknownID, "login", "")), 422, "invalid")
	require.Equal(t, []string{"body.account_id"}, locations(p))
	require.Zero(t, count(t, b.pool, "events"))
	require.Zero(t, count(t, b.pool, "idempotency_keys"))
	require.Zero(t, jobKinds(t, b.pool)["events.process"])

	r := b.postJSONWithKey(t, "/v1/events", "key-1", eventJSON(accountID, "login", ""))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	require.Empty(t, r.header.Get("Idempotent-Replayed"))
	require.Equal(t, 1, count(t, b.pool, "events"))
	requireOneJobEach(t, b.pool, []string{decode[httpapi.Event](t, r).ID})
}

func TestCreateEventTooLargeNamesThePayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	accountID := b.createAccount(t, "John Doe")
	body := eventJSON(accountID, "login", `{"blob": "`+strings.Repeat("x", 33*1024)+`"}`)
	require.Less(t, len(body), 64*1024, "under the body limit, over the payload limit")

	p := requireProblem(t, b.postJSON(t, "/v1/events", body), http.StatusRequestEntityTooLarge, "too_large")
	require.Equal(t, []string{"body.payload"}, locations(p))
	require.Contains(t, p.Errors[0].Message, "32768")
	require.Zero(t, count(t, b.pool, "events"))
}

func TestCreateEventBatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.createAccount(t, "Alice")
	bob := b.createAccount(t, "Bob")

	r := b.postJSON(t, "/v1/events/batch", batchJSON(
		eventJSON(alice, "won", `{"amount": 1}`),
		eventJSON(bob, "login", ""),
		eventJSON(alice, "won", `{"amount": 2.5}`),
		eventJSON(bob, "trade.closed", `{"symbol": "EURUSD"}`),
		eventJSON(alice, "logout", ""),
	))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	got := decode[eventBatch](t, r).Events
	require.Len(t, got, 5)
	wantTypes := []string{"won", "login", "won", "trade.closed", "logout"}
	wantAccounts := []string{alice, bob, alice, bob, alice}
	ids := map[string]bool{}
	for i, e := range got {
		require.Equal(t, wantTypes[i], e.Type, "events are answered in the order posted")
		require.Equal(t, wantAccounts[i], e.AccountID)
		require.Equal(t, "pending", e.Status)
		ids[e.ID] = true
	}
	require.Len(t, ids, 5, "every event has its own id")
	require.Equal(t, 2.5, got[2].Payload["amount"])

	require.Equal(t, 5, count(t, b.pool, "events"))
	require.Equal(t, map[string]int{"account.provision": 2, "events.process": 1}, jobKinds(t, b.pool), "one job for the batch")
	requireOneJobEach(t, b.pool, slices.Collect(maps.Keys(ids)))

	stored := decode[httpapi.EventDetail](t, b.do(t, http.MethodGet, "/v1/events/"+got[3].ID, "", ""))
	require.Equal(t, got[3].Payload, stored.Payload)
	require.Equal(t, bob, stored.AccountID)
}

func TestCreateEventBatchRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")
	jobsBefore := jobKinds(t, b.pool)
	good := eventJSON(a, "login", "")
	future := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	many := make([]string, 1001)
	for i := range many {
		many[i] = good
	}
	big := `{"blob": "` + strings.Repeat("x", 33*1024) + `"}`
	tests := []struct {
		name      string
		body      string
		status    int
		code      string
		locations []string // exactly these, when set
		contains  string   // an entry that must be present, when set
	}{
		{"empty list", `{"events": []}`, 422, "invalid", nil, "body.events"},
		{"no list", `{}`, 422, "invalid", nil, "body"},
		{"1001 events", batchJSON(many...), 422, "invalid", nil, "body.events"},
		{"bad fields at 1 and 3", batchJSON(good, eventJSON(a, "won", `{"amount": "x"}`), good,
			fmt.Sprintf(`{"account_id": %q, "type": "login", "occurred_at": %q}`, a, future), good),
			422, "invalid", []string{"body.events[1].payload.amount", "body.events[3].occurred_at"}, ""},
		{"schema errors at 1 and 3", batchJSON(good, eventJSON(a, "no spaces", ""), good, eventJSON("42", "login", "")),
			422, "invalid", []string{"body.events[1].type", "body.events[3].account_id"}, ""},
		{"unknown accounts at 1 and 3", batchJSON(good, eventJSON(unknownID, "login", ""), good, eventJSON(uuid.NewString(), "login", "")),
			422, "invalid", []string{"body.events[1].account_id", "body.events[3].account_id"}, ""},
		{"payloads too large at 1 and 3", batchJSON(good, eventJSON(a, "login", big), good, eventJSON(a, "login", big)),
			413, "too_large", []string{"body.events[1].payload", "body.events[3].payload"}, ""},
		{"NUL in payloads at 1 and 3", batchJSON(good, eventJSON(a, "login", `{"x": "\u0000"}`), good, eventJSON(a, "login", `{"\u0000": 1}`)),
			422, "invalid", []string{"body.events[1].payload", "body.events[3].payload"}, ""},
		{"malformed JSON", `{"events": [`, 400, "malformed", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := requireProblem(t, b.postJSON(t, "/v1/events/batch", tt.body), tt.status, tt.code)
			if tt.locations != nil {
				require.ElementsMatch(t, tt.locations, locations(p))
			}
			if tt.contains != "" {
				require.Contains(t, locations(p), tt.contains)
			}
		})
	}
	require.Zero(t, count(t, b.pool, "events"), "one bad event rejects the whole batch")
	require.Equal(t, jobsBefore, jobKinds(t, b.pool))
}

func TestCreateEventBatchAcceptsOneThousand(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")
	events := make([]string, 1000)
	for i := range events {
		events[i] = eventJSON(a, "won", fmt.Sprintf(`{"amount": %d}`, i))
	}
	r := b.postJSON(t, "/v1/events/batch", batchJSON(events...))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	posted := decode[eventBatch](t, r).Events
	require.Len(t, posted, 1000)
	require.Equal(t, 1000, count(t, b.pool, "events"))
	require.Equal(t, 1000/jobs.EventsPerJob, jobKinds(t, b.pool)["events.process"], "one account: full jobs")
	want := make([]string, len(posted))
	for i, e := range posted {
		want[i] = e.ID
	}
	requireOneJobEach(t, b.pool, want)
}

func TestIdempotencyKeyReplays(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		path  string
		body  func(account string) string
		other func(account string) string // a different body
	}{
		{"single event", "/v1/events",
			func(a string) string { return eventJSON(a, "won", `{"amount": 1500}`) },
			func(a string) string { return eventJSON(a, "won", `{"amount": 1501}`) }},
		{"batch", "/v1/events/batch",
			func(a string) string {
				return batchJSON(eventJSON(a, "won", `{"amount": 1}`), eventJSON(a, "login", ""))
			},
			func(a string) string { return batchJSON(eventJSON(a, "won", `{"amount": 1}`)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			a := b.createAccount(t, "John Doe")

			first := b.postJSONWithKey(t, tt.path, "key-1", tt.body(a))
			require.Equal(t, http.StatusAccepted, first.status, string(first.body))
			require.Empty(t, first.header.Get("Idempotent-Replayed"))
			events := count(t, b.pool, "events")
			jobsAfter := jobKinds(t, b.pool)
			require.NotZero(t, events)

			// The same body, even spelt differently, is the same request.
			retry := b.postJSONWithKey(t, tt.path, "key-1", "\n "+tt.body(a)+" ")
			require.Equal(t, http.StatusAccepted, retry.status, string(retry.body))
			require.Equal(t, "true", retry.header.Get("Idempotent-Replayed"))
			require.Equal(t, string(first.body), string(retry.body), "a replay answers the first response")
			require.Equal(t, first.header.Get("Location"), retry.header.Get("Location"))
			require.Equal(t, events, count(t, b.pool, "events"), "a replay creates nothing")
			require.Equal(t, jobsAfter, jobKinds(t, b.pool))

			p := requireProblem(t, b.postJSONWithKey(t, tt.path, "key-1", tt.other(a)), http.StatusUnprocessableEntity, "invalid")
			require.Equal(t, []string{"header.Idempotency-Key"}, locations(p))

			p = requireProblem(t, b.postJSONWithKey(t, tt.path, strings.Repeat("k", 256), tt.other(a)), http.StatusUnprocessableEntity, "invalid")
			require.Contains(t, locations(p), "header.Idempotency-Key")

			require.Equal(t, events, count(t, b.pool, "events"))
			require.Equal(t, jobsAfter, jobKinds(t, b.pool))
			require.Equal(t, 1, count(t, b.pool, "idempotency_keys"))

			// A key of the longest length is fine, and another key is another request.
			long := b.postJSONWithKey(t, tt.path, strings.Repeat("k", 255), tt.body(a))
			require.Equal(t, http.StatusAccepted, long.status, string(long.body))
			require.Empty(t, long.header.Get("Idempotent-Replayed"))
			require.NotEqual(t, string(first.body), string(long.body))
			require.Equal(t, 2*events, count(t, b.pool, "events"))
		})
	}
}

func TestIdempotencyKeysAreScopedByOperation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")

	single := b.postJSONWithKey(t, "/v1/events", "shared", eventJSON(a, "login", ""))
	require.Equal(t, http.StatusAccepted, single.status, string(single.body))
	batch := b.postJSONWithKey(t, "/v1/events/batch", "shared", batchJSON(eventJSON(a, "login", "")))
	require.Equal(t, http.StatusAccepted, batch.status, string(batch.body))
	require.Empty(t, batch.header.Get("Idempotent-Replayed"), "the batch operation does not see the single one's key")
	require.NotEqual(t, decode[httpapi.Event](t, single).ID, decode[eventBatch](t, batch).Events[0].ID)
	require.Equal(t, 2, count(t, b.pool, "events"))
	require.Equal(t, 2, count(t, b.pool, "idempotency_keys"))

	// Each still replays its own response.
	again := b.postJSONWithKey(t, "/v1/events", "shared", eventJSON(a, "login", ""))
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, string(single.body), string(again.body))
}

func TestIdempotencyKeyOfAFailedRequestIsNotSpent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")

	requireProblem(t, b.postJSONWithKey(t, "/v1/events", "k", eventJSON(unknownID, "login", "")), http.StatusUnprocessableEntity, "invalid")
	require.Zero(t, count(t, b.pool, "idempotency_keys"), "the key was claimed and rolled back with the request")

	r := b.postJSONWithKey(t, "/v1/events", "k", eventJSON(a, "login", ""))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
	require.Empty(t, r.header.Get("Idempotent-Replayed"))
	require.Equal(t, 1, count(t, b.pool, "events"))
}

func TestIdempotencyKeyUnderConcurrency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		path string
		body func(account string) string
		ids  func(t *testing.T, r response) []string
	}{
		{"single event", "/v1/events",
			func(a string) string { return eventJSON(a, "won", `{"amount": 7}`) },
			func(t *testing.T, r response) []string { return []string{decode[httpapi.Event](t, r).ID} }},
		{"batch", "/v1/events/batch",
			func(a string) string {
				return batchJSON(eventJSON(a, "won", `{"amount": 7}`), eventJSON(a, "login", ""))
			},
			func(t *testing.T, r response) []string {
				var ids []string
				for _, e := range decode[eventBatch](t, r).Events {
					ids = append(ids, e.ID)
				}
				return ids
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			a := b.createAccount(t, "John Doe")
			body := tt.body(a)

			const n = 5
			responses := make([]response, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					responses[i], errs[i] = b.send(http.MethodPost, tt.path, idempotencyHeader("same-key"), body)
				})
			}
			close(start)
			wg.Wait()

			replayed := 0
			var firstIDs []string
			for i, r := range responses {
				require.NoError(t, errs[i])
				require.Equal(t, http.StatusAccepted, r.status, string(r.body))
				if r.header.Get("Idempotent-Replayed") == "true" {
					replayed++
				}
				ids := tt.ids(t, r)
				if firstIDs == nil {
					firstIDs = ids
				}
				require.Equal(t, firstIDs, ids, "every request got the same events")
			}
			require.Equal(t, n-1, replayed, "exactly one request did the work")
			require.Equal(t, len(firstIDs), count(t, b.pool, "events"))
			require.Equal(t, 1, jobKinds(t, b.pool)["events.process"])
			requireOneJobEach(t, b.pool, firstIDs)
			require.Equal(t, 1, count(t, b.pool, "idempotency_keys"))
		})
	}
}

func TestGetEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")
	posted := decode[httpapi.Event](t, b.postJSON(t, "/v1/events", eventJSON(a, "won", `{"amount": 3}`)))

	r := b.do(t, http.MethodGet, "/v1/events/"+posted.ID, "", "")
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	require.Contains(t, string(r.body), `"evaluations":[]`, "a fresh event has an empty list, not null")
	got := decode[httpapi.EventDetail](t, r)
	require.Equal(t, posted.ID, got.ID)
	require.Equal(t, "won", got.Type)
	require.Equal(t, "pending", got.Status)
	require.Empty(t, got.Evaluations)

	p := requireProblem(t, b.do(t, http.MethodGet, "/v1/events/"+unknownID, "", ""), http.StatusNotFound, "not_found")
	require.Equal(t, "/v1/events/"+unknownID, p.Instance)
	p = requireProblem(t, b.do(t, http.MethodGet, "/v1/events/not-a-uuid", "", ""), http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "path.id")
}

func TestListEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	alice := b.createAccount(t, "Alice")
	bob := b.createAccount(t, "Bob")
	var ids []string // in posting order
	for _, body := range []string{
		eventJSON(alice, "won", `{"amount": 1}`),
		eventJSON(alice, "login", ""),
		eventJSON(bob, "won", `{"amount": 2}`),
		eventJSON(alice, "won", `{"amount": 3}`),
		eventJSON(bob, "login", ""),
	} {
		r := b.postJSON(t, "/v1/events", body)
		require.Equal(t, http.StatusAccepted, r.status, string(r.body))
		ids = append(ids, decode[httpapi.Event](t, r).ID)
	}
	_, err := b.pool.Exec(context.Background(), `UPDATE events SET status = 'processed', processed_at = now() WHERE id = $1`, ids[3])
	require.NoError(t, err)

	list := func(t *testing.T, query string) eventList {
		t.Helper()
		r := b.do(t, http.MethodGet, "/v1/events"+query, "", "")
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		return decode[eventList](t, r)
	}
	idsOf := func(l eventList) []string {
		out := []string{}
		for _, e := range l.Items {
			out = append(out, e.ID)
		}
		return out
	}

	tests := []struct {
		query string
		want  []string // newest first
	}{
		{"", []string{ids[4], ids[3], ids[2], ids[1], ids[0]}},
		{"?account_id=" + alice, []string{ids[3], ids[1], ids[0]}},
		{"?account_id=" + bob, []string{ids[4], ids[2]}},
		{"?type=won", []string{ids[3], ids[2], ids[0]}},
		{"?type=login&account_id=" + bob, []string{ids[4]}},
		{"?status=processed", []string{ids[3]}},
		{"?status=pending&type=won", []string{ids[2], ids[0]}},
		{"?status=failed", []string{}},
		{"?type=nothing", []string{}},
		{"?account_id=" + unknownID, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			l := list(t, tt.query)
			require.Equal(t, tt.want, idsOf(l))
			require.Nil(t, l.NextCursor)
		})
	}

	t.Run("pages", func(t *testing.T) {
		var got []string
		query := "?limit=2"
		for range 5 {
			l := list(t, query)
			require.LessOrEqual(t, len(l.Items), 2)
			got = append(got, idsOf(l)...)
			if l.NextCursor == nil {
				break
			}
			query = "?limit=2&cursor=" + *l.NextCursor
		}
		require.Equal(t, []string{ids[4], ids[3], ids[2], ids[1], ids[0]}, got)
	})

	t.Run("pages with a filter", func(t *testing.T) {
		first := list(t, "?account_id="+alice+"&limit=2")
		require.Equal(t, []string{ids[3], ids[1]}, idsOf(first))
		require.NotNil(t, first.NextCursor)
		second := list(t, "?account_id="+alice+"&limit=2&cursor="+*first.NextCursor)
		require.Equal(t, []string{ids[0]}, idsOf(second))
		require.Nil(t, second.NextCursor)
	})

	t.Run("a processed event has processed_at", func(t *testing.T) {
		l := list(t, "?status=processed")
		require.Equal(t, "processed", l.Items[0].Status)
		require.NotNil(t, l.Items[0].ProcessedAt)
	})
}

func TestListEventsRejectsBadQueries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		query    string
		location string
	}{
		{"?status=done", "query.status"},
		{"?cursor=not-a-cursor", "query.cursor"},
		{"?cursor=AAAAAAAAAAAAAAAAAAAAAA", "query.cursor"}, // the zero uuid
		{"?limit=0", "query.limit"},
		{"?limit=501", "query.limit"},
		{"?limit=-1", "query.limit"},
		{"?account_id=42", "query.account_id"},
		{"?type=" + strings.Repeat("t", 101), "query.type"},
		{"?type=a%00b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			p := requireProblem(t, b.do(t, http.MethodGet, "/v1/events"+tt.query, "", ""), http.StatusUnprocessableEntity, "invalid")
			if tt.location != "" {
				require.Contains(t, locations(p), tt.location)
			}
		})
	}
}

// What a problem repeats of the input is bounded, whatever the input: a
// 30 KB amount came back whole, and a batch of 200 such events made a 6 MB
// error. URLs lose their credentials even when they do not parse.
func TestProblemsBoundWhatTheyEcho(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.createAccount(t, "John Doe")
	big := strings.Repeat("9", 30*1024)
	one := eventJSON(a, "won", `{"amount": "`+big+`"}`)

	r := b.postJSON(t, "/v1/events", one)
	p := requireProblem(t, r, http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "body.payload.amount")
	require.Less(t, len(r.body), 2048, "one bad amount")

	batch := make([]string, 200)
	for i := range batch {
		batch[i] = one
	}
	r = b.postJSON(t, "/v1/events/batch", batchJSON(batch...))
	p = requireProblem(t, r, http.StatusUnprocessableEntity, "invalid")
	require.Contains(t, locations(p), "body.events[0].payload.amount")
	require.Less(t, len(r.body), 64*1024, "200 bad amounts")

	r = b.postJSON(t, "/v1/webhook-endpoints", `{"url": "https://admin:pw-secret@example.com/%zz"}`)
	requireProblem(t, r, http.StatusUnprocessableEntity, "invalid")
	require.NotContains(t, string(r.body), "pw-secret")
	require.Zero(t, count(t, b.pool, "events"))
}

// A batch whose events are null or missing is the client's mistake (422);
// it was a 500 ("no jobs to insert").
func TestCreateEventBatchWithoutEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for body, location := range map[string]string{`{"events": null}`: "body.events", `{"events": []}`: "body.events", `{}`: "body"} {
		p := requireProblem(t, b.postJSON(t, "/v1/events/batch", body), http.StatusUnprocessableEntity, "invalid")
		require.Contains(t, locations(p), location, body)
	}
	require.Zero(t, count(t, b.pool, "events"))
}

// A body that cannot be read as HTTP says it (400 malformed), rather than a
// 500: here a chunked body whose chunk size is not hexadecimal.
func TestMalformedChunkedBodyIsABadRequest(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, path := range []string{"/v1/events", "/v1/events/batch", "/v1/accounts"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(b.server.URL, "http://"))
		require.NoError(t, err)
		_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: ctrader\r\nContent-Type: application/json\r\n"+
			"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{\"a\":\r\nzz\r\n", path)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, "%s: %s", path, body)
		require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
		require.Contains(t, string(body), `"code":"malformed"`)
	}
}

// While event processing lags more than MaxLag behind, posting events
// answers 503 with a Retry-After that says how far behind it is, and stores
// nothing; once it has caught up, posts are accepted again.
func TestPostingEventsPushesBackWhileProcessingLags(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	watcher := backlog.NewWatcher(pool, 0, dbtest.Logger(t))
	b := setupWith(t, pool, httpapi.Security{Open: true}, nil, func(d *httpapi.Deps) {
		d.Backlog, d.MaxLag = watcher, 2*time.Second
	})
	ctx := context.Background()
	a := b.createAccount(t, "John Doe")
	// A job due ten seconds ago that nothing has worked.
	old, err := b.client.Insert(ctx, jobs.EventsProcess{EventIDs: []uuid.UUID{uuid.Must(uuid.NewV7())}},
		&river.InsertOpts{ScheduledAt: time.Now().Add(-10 * time.Second)})
	require.NoError(t, err)
	require.NoError(t, watcher.Sample(ctx))
	require.InDelta(t, 10, watcher.Lag().Seconds(), 2)

	for _, r := range []response{
		b.postJSON(t, "/v1/events", eventJSON(a, "login", "")),
		b.postJSON(t, "/v1/events/batch", batchJSON(eventJSON(a, "login", ""))),
	} {
		p := requireProblem(t, r, http.StatusServiceUnavailable, "unavailable")
		require.Contains(t, p.Detail, "behind")
		wait, err := strconv.Atoi(r.header.Get("Retry-After"))
		require.NoError(t, err)
		require.InDelta(t, 8, wait, 2)
	}
	require.Zero(t, count(t, b.pool, "events"), "nothing is stored")

	_, err = b.client.JobDelete(ctx, old.Job.ID)
	require.NoError(t, err)
	require.NoError(t, watcher.Sample(ctx))
	r := b.postJSON(t, "/v1/events", eventJSON(a, "login", ""))
	require.Equal(t, http.StatusAccepted, r.status, string(r.body))
}
