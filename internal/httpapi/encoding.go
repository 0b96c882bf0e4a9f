package httpapi

import (
	"github.com/danielgtaylor/huma/v2"

	"github.com/ctrader/ctrader/internal/decimal"
	"github.com/ctrader/ctrader/internal/jsonvalue"
)

// jsonFormat is Huma's JSON format, except that request bodies keep their
// numbers exact: free-form fields (payloads, metadata) hold json.Number,
// never a float64 that rounds a 64-bit id or a long decimal.
var jsonFormat = huma.Format{Marshal: huma.DefaultJSONFormat.Marshal, Unmarshal: unmarshalJSON}

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

// Decimal is an exact number in a response, such as an account's won_total:
// written as a JSON number with every digit, documented as a number.
type Decimal struct {
	decimal.Decimal
}

// Schema documents Decimal as what it is on the wire: a JSON number.
func (Decimal) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeNumber}
}
