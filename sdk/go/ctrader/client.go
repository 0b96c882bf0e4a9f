package ctrader

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	openapi_types "github.com/oapi-codegen/runtime/types"
)

// New returns a client of the API at baseURL, such as
// "http://localhost:8000". Options set the *http.Client ([WithHTTPClient]),
// the token ([WithBearerToken]) and anything else every request needs
// ([WithRequestEditorFn]).
//
// Unlike [NewClientWithResponses], whose responses carry problems in their
// ApplicationProblemJSON fields, a client from New returns every answer with a
// status of 400 or more as an error, a [*ProblemError]: on success the
// response's JSON200, JSON201 or JSON202 field is set.
func New(baseURL string, opts ...ClientOption) (*ClientWithResponses, error) {
	c, err := NewClient(baseURL, opts...)
	if err != nil {
		return nil, err
	}
	c.Client = problemDoer{next: c.Client}
	return &ClientWithResponses{c}, nil
}

// WithBearerToken sends token (a JWT whose scope grants read, write or admin)
// in the Authorization header of every request.
func WithBearerToken(token string) ClientOption {
	return WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	})
}

// WithIdempotencyKey sends key as the request's Idempotency-Key: a retry of a
// POST /v1/events or /v1/events/batch with the same key and body gets the
// first response (with Idempotent-Replayed: true) and creates nothing. Pass it
// to one call; keys are kept at least 24 hours.
func WithIdempotencyKey(key string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Idempotency-Key", key)
		return nil
	}
}

// Replayed reports whether resp is the stored answer to an earlier request
// with the same Idempotency-Key.
func Replayed(resp *http.Response) bool {
	return resp != nil && resp.Header.Get("Idempotent-Replayed") == "true"
}

// ProblemError is an answer with a status of 400 or more: the server's RFC
// 9457 problem document, or what could be made of an answer that is not one
// (from a proxy, say; Type is then "about:blank"). Get it with errors.As.
type ProblemError struct {
	Type     string // URI naming the kind of problem, e.g. urn:ctrader:problem:not_found; stable
	Title    string // short summary of the kind of problem
	Status   int    // the HTTP status code
	Detail   string // what went wrong in this occurrence
	Instance string // path of the request that failed
	Code     string // last part of Type, e.g. not_found, invalid, conflict

	// RequestID names the request in the server's logs.
	RequestID string
	// Errors has one entry per bad part of the input.
	Errors []FieldError
	// RetryAfter is how long the server asked to wait before retrying (429
	// and 503 answers); zero when it did not say.
	RetryAfter time.Duration
}

// FieldError is one bad part of a request's input.
type FieldError struct {
	Location string // e.g. body.condition, body.events[3].payload, query.limit
	Message  string
	Value    any // the value found there, when the server repeats it
}

func (e *ProblemError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ctrader: %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	} else if e.Title != "" {
		b.WriteString(" " + e.Title)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	const shown = 3
	for i, fe := range e.Errors {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", len(e.Errors)-shown)
			break
		}
		b.WriteString("; ")
		if fe.Location != "" {
			b.WriteString(fe.Location + ": ")
		}
		b.WriteString(fe.Message)
	}
	return b.String()
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// problemDoer turns answers of 400 or more into *ProblemError, so that every
// operation of a client from New reports them the same way.
type problemDoer struct {
	next HttpRequestDoer
}

func (d problemDoer) Do(req *http.Request) (*http.Response, error) {
	resp, err := d.next.Do(req)
	if err != nil || resp.StatusCode < http.StatusBadRequest {
		return resp, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return nil, fmt.Errorf("ctrader: read the %d answer to %s %s: %w", resp.StatusCode, req.Method, req.URL.Path, err)
	}
	return nil, problemFrom(resp, body)
}

// problemFrom makes a *ProblemError of an answer and its body.
func problemFrom(resp *http.Response, body []byte) *ProblemError {
	e := &ProblemError{Status: resp.StatusCode}
	var p Problem
	if isJSON(resp.Header.Get("Content-Type")) && json.Unmarshal(body, &p) == nil && p.Type != "" {
		e.Type, e.Title, e.Code = p.Type, p.Title, p.Code
		e.Detail = deref(p.Detail)
		e.Instance = deref(p.Instance)
		e.RequestID = deref(p.RequestID)
		for _, d := range p.Errors {
			e.Errors = append(e.Errors, FieldError{Location: deref(d.Location), Message: deref(d.Message), Value: d.Value})
		}
	} else {
		e.Type = "about:blank"
		e.Title = http.StatusText(resp.StatusCode)
		e.Detail = strings.TrimSpace(string(body[:min(len(body), 200)]))
		if resp.Request != nil {
			e.Instance = resp.Request.URL.Path
		}
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-Id")
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	return e
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// retryAfter reads a Retry-After header: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// WaitForEvent reads the event until it is no longer pending and returns it:
// processed, with its evaluations, or failed, with its FailureReason. It reads
// often at first and then at most once a second, and gives up when ctx ends:
// give ctx a deadline.
func (c *ClientWithResponses) WaitForEvent(ctx context.Context, id openapi_types.UUID, reqEditors ...RequestEditorFn) (*EventDetail, error) {
	delay := 20 * time.Millisecond
	for {
		resp, err := c.GetEventWithResponse(ctx, id, reqEditors...)
		if err != nil {
			return nil, fmt.Errorf("wait for event %s: %w", id, err)
		}
		if resp.JSON200 == nil {
			if resp.StatusCode() >= http.StatusBadRequest {
				return nil, fmt.Errorf("wait for event %s: %w", id, problemFrom(resp.HTTPResponse, resp.Body))
			}
			return nil, fmt.Errorf("wait for event %s: unexpected %d answer of type %q", id, resp.StatusCode(), resp.ContentType())
		}
		if resp.JSON200.Status != EventDetailStatusPending {
			return resp.JSON200, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for event %s: %w", id, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, time.Second)
	}
}
