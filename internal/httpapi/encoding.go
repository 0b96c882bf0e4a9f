package httpapi

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ctrader/ctrader/internal/decimal"
	"github.com/ctrader/ctrader/internal/jsonvalue"
)

// jsonFormat is Huma's JSON format with two changes. Request bodies keep
// their numbers exact: free-form fields (payloads, metadata) hold
// json.Number, never a float64 that rounds a 64-bit id or a long decimal.
// And a response is encoded whole before anything is written, so that one
// that cannot be encoded is answered as a 500 problem instead of a 200 with
// half a body (see holdStatus).
var jsonFormat = huma.Format{Marshal: marshalJSON, Unmarshal: unmarshalJSON}

func unmarshalJSON(data []byte, v any) error {
	if err := jsonvalue.Decode(data, v); err != nil {
		return err
	}
	// Huma first decodes the body into an any and validates that against the
	// schema, and its validator knows float64 numbers, not json.Number. The
	// handler's copy is decoded into the input struct, where numbers stay
	// exact.
	if p, ok := v.(*any); ok {
		*p = jsonvalue.Plain(*p)
	}
	return nil
}

func marshalJSON(w io.Writer, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		if h, ok := w.(*heldStatus); ok {
			h.failed = true
		}
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// holdStatus keeps each response's status from being sent until its body is
// encoded. Huma sends the status before it encodes the body, so an encoding
// failure would otherwise leave a 200 with "error marshaling response" as
// its body. Held back, the failure reaches the request middleware (Huma
// panics with it), which logs it and answers a 500 problem.
func holdStatus(ctx huma.Context, next func(huma.Context)) {
	h := &heldStatus{humaContext: ctx}
	next(h)
	h.send()
}

// humaContext names the embedded context apart from its Context method.
type humaContext = huma.Context

type heldStatus struct {
	humaContext
	status int
	failed bool // the body could not be encoded: nothing more is written
}

func (h *heldStatus) SetStatus(code int) { h.status = code }

func (h *heldStatus) Status() int {
	if h.status != 0 {
		return h.status
	}
	return h.humaContext.Status()
}

func (h *heldStatus) BodyWriter() io.Writer { return h }

func (h *heldStatus) Write(p []byte) (int, error) {
	if h.failed {
		return len(p), nil
	}
	h.send()
	return h.humaContext.BodyWriter().Write(p)
}

func (h *heldStatus) send() {
	if h.status != 0 && !h.failed {
		h.humaContext.SetStatus(h.status)
		h.status = 0
	}
}

// Unwrap lets humago.Unwrap reach the request and response writer.
func (h *heldStatus) Unwrap() huma.Context { return h.humaContext }

// Decimal is an exact number in a response, such as an account's won_total:
// written as a JSON number with every digit, documented as a number.
type Decimal struct {
	decimal.Decimal
}

// Schema documents Decimal as what it is on the wire: a JSON number.
func (Decimal) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeNumber}
}
