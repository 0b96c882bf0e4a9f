package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/logging"
	"github.com/ctrader/ctrader/internal/redact"
	"github.com/ctrader/ctrader/internal/reqid"
)

// ProblemTypePrefix starts every problem's type URI; the code follows it.
const ProblemTypePrefix = "urn:ctrader:problem:"

// Problem is an RFC 9457 problem document. Every error response is one.
type Problem struct {
	Type      string              `json:"type" doc:"URI naming the kind of problem; stable, safe to switch on" example:"urn:ctrader:problem:not_found"`
	Title     string              `json:"title" doc:"Short summary of the kind of problem" example:"Not Found"`
	Status    int                 `json:"status" doc:"HTTP status code" example:"404"`
	Detail    string              `json:"detail,omitempty" doc:"What went wrong in this occurrence" example:"account not found"`
	Instance  string              `json:"instance,omitempty" doc:"Path of the request that failed" example:"/v1/accounts/0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b"`
	Code      string              `json:"code" doc:"Stable machine-readable code: the last part of type" example:"not_found"`
	RequestID string              `json:"request_id,omitempty" doc:"Request id, also in the X-Request-Id header and the server's logs"`
	Errors    []*huma.ErrorDetail `json:"errors,omitempty" doc:"One entry per bad part of the input"`

	headers http.Header
}

func (p *Problem) Error() string  { return p.Detail }
func (p *Problem) GetStatus() int { return p.Status }

// GetHeaders adds headers such as Retry-After to the response.
func (p *Problem) GetHeaders() http.Header { return p.headers }

// ContentType makes JSON problems application/problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" {
		return "application/problem+json"
	}
	return ct
}

// statusOf is the one table from application error codes to HTTP statuses.
var statusOf = map[apperr.Code]int{
	apperr.Invalid:     http.StatusUnprocessableEntity,
	apperr.NotFound:    http.StatusNotFound,
	apperr.Conflict:    http.StatusConflict,
	apperr.TooLarge:    http.StatusRequestEntityTooLarge,
	apperr.Unavailable: http.StatusServiceUnavailable,
	apperr.Internal:    http.StatusInternalServerError,
}

// codeOfStatus names problems that Huma raises itself (bad JSON, validation,
// body limits) with the same codes as application errors where one fits.
func codeOfStatus(status int) string {
	for code, s := range statusOf {
		if s == status {
			return string(code)
		}
	}
	if status == http.StatusBadRequest {
		return "malformed"
	}
	text := http.StatusText(status)
	if text == "" {
		return "error"
	}
	return strings.ReplaceAll(strings.ToLower(text), " ", "_")
}

func newProblem(ctx context.Context, status int, detail string, details []*huma.ErrorDetail) *Problem {
	code := codeOfStatus(status)
	p := &Problem{
		Type:   ProblemTypePrefix + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: clip(detail, maxMessage),
		Code:   code,
		Errors: bounded(details),
	}
	p.RequestID = reqid.From(ctx)
	if r := requestFrom(ctx); r != nil {
		p.Instance = r.URL.Path
	}
	if status == http.StatusServiceUnavailable {
		p.headers = http.Header{"Retry-After": []string{"5"}}
	}
	return p
}

// writeProblem answers p outside Huma (a recovered panic), as Huma would.
func writeProblem(w http.ResponseWriter, p *Problem) {
	b, _ := json.Marshal(p) // a Problem always encodes
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

// humaBodyReadFailed is the message Huma gives a failure to read a request
// body, with status 500.
const humaBodyReadFailed = "cannot read request body"

func init() {
	// Huma builds its own errors (validation, malformed JSON, body too large)
	// through these hooks; make them problem documents like ours. A 5xx never
	// carries the underlying error's text.
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		return newProblem(context.Background(), status, msg, errorDetails(status, errs))
	}
	huma.NewErrorWithContext = func(hctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		if status == http.StatusInternalServerError && msg == humaBodyReadFailed {
			// A body that cannot be read (malformed chunking, a client that
			// hung up mid-body) is the request's fault, not the server's.
			status, msg = http.StatusBadRequest, "the request body could not be read"
		}
		var ctx context.Context
		if hctx != nil {
			ctx = hctx.Context()
		}
		return newProblem(ctx, status, msg, errorDetails(status, errs))
	}
}

func errorDetails(status int, errs []error) []*huma.ErrorDetail {
	if status >= 500 {
		return nil
	}
	details := make([]*huma.ErrorDetail, 0, len(errs))
	for _, err := range errs {
		if err == nil {
			continue
		}
		var d huma.ErrorDetailer
		if errors.As(err, &d) {
			detail := *d.ErrorDetail()
			details = append(details, &detail)
			continue
		}
		details = append(details, &huma.ErrorDetail{Message: err.Error()})
	}
	return details
}

// Bounds on what a problem repeats of the input, so that its size does not
// grow with the request's.
const (
	maxEchoed  = 200  // bytes of one input value
	maxMessage = 1000 // bytes of one message
	maxDetails = 100  // entries in errors; the rest are counted in one more
)

// bounded makes details safe and small to send: every value echoable, every
// message clipped, and at most maxDetails entries and a last one that counts
// the others.
func bounded(details []*huma.ErrorDetail) []*huma.ErrorDetail {
	if len(details) == 0 {
		return details
	}
	out := make([]*huma.ErrorDetail, 0, min(len(details), maxDetails+1))
	for i, d := range details {
		if i == maxDetails {
			out = append(out, &huma.ErrorDetail{Message: fmt.Sprintf("and %d more errors", len(details)-maxDetails)})
			break
		}
		out = append(out, &huma.ErrorDetail{Location: clip(d.Location, maxEchoed), Message: clip(d.Message, maxMessage), Value: echoable(d.Value)})
	}
	return out
}

// echoable returns what of a bad input value a problem may repeat: short
// scalars as they are, URLs without their credentials or query values, long
// strings cut, and no objects or arrays (the location names the field, and a
// whole body could carry secrets).
func echoable(v any) any {
	switch v := v.(type) {
	case string:
		return clip(redact.Text(v), maxEchoed)
	case json.Number:
		return clip(string(v), maxEchoed)
	case apperr.Position:
		v.Message = clip(v.Message, maxMessage)
		return v
	case map[string]any, []any:
		return nil
	}
	return v
}

// clip cuts s to at most n bytes, on a character boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// fail turns an error from the domain into the problem the client sees.
// Application errors show their message; anything else is logged here, once,
// and answered with a bare 500.
func fail(ctx context.Context, logger *slog.Logger, err error) error {
	var ae *apperr.Error
	if errors.As(err, &ae) {
		status, ok := statusOf[ae.Code]
		if !ok {
			status = http.StatusInternalServerError
		}
		if status >= 500 {
			logger.WarnContext(ctx, "request failed", slog.String("request_id", reqid.From(ctx)), logging.ErrorAttr(err))
			return newProblem(ctx, status, ae.Message, nil)
		}
		details := make([]*huma.ErrorDetail, 0, len(ae.Fields))
		for _, f := range ae.Fields {
			details = append(details, &huma.ErrorDetail{Location: f.Location, Message: f.Message, Value: f.Value})
		}
		return newProblem(ctx, status, ae.Message, details)
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; nobody reads this response.
		return newProblem(ctx, 499, "request cancelled", nil)
	}
	logger.ErrorContext(ctx, "request failed", slog.String("request_id", reqid.From(ctx)), logging.ErrorAttr(err))
	return newProblem(ctx, http.StatusInternalServerError, "internal error", nil)
}
