// Package jsonvalue is how ctrader holds the free-form JSON clients send
// (event payloads, account metadata, rule action payloads): decoded with
// exact numbers (json.Number), bounded in nesting, and turned into plain
// float64 numbers only where CEL reads them.
package jsonvalue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ctrader/ctrader/internal/decimal"
)

// MaxDepth is how deeply free-form JSON may nest: {"a": {"b": 1}} is two
// levels, and every object or array counts as one.
const MaxDepth = 32

// Decode decodes one JSON value into v, numbers in any-typed places as
// json.Number so that no digit is lost.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("invalid character after top-level value")
	}
	return nil
}

// Check reports what is wrong with a decoded value as a message for the
// client ("must not nest deeper than 32 levels"), or "" when nothing is:
// nesting over MaxDepth, a NUL character (Postgres cannot store one in
// jsonb), or a number Postgres cannot hold (decimal.MaxDigits).
func Check(v any) string {
	switch problem(v, 1) {
	case tooDeep:
		return fmt.Sprintf("must not nest deeper than %d levels", MaxDepth)
	case nul:
		return `must not contain the NUL character (\u0000)`
	case badNumber:
		return fmt.Sprintf("numbers must have at most %d digits before and after the point", decimal.MaxDigits)
	}
	return ""
}

type fault int

const (
	none fault = iota
	tooDeep
	nul
	badNumber
)

func problem(v any, depth int) fault {
	switch v := v.(type) {
	case map[string]any:
		if depth > MaxDepth {
			return tooDeep
		}
		for k, e := range v {
			if strings.ContainsRune(k, 0) {
				return nul
			}
			if f := problem(e, depth+1); f != none {
				return f
			}
		}
	case []any:
		if depth > MaxDepth {
			return tooDeep
		}
		for _, e := range v {
			if f := problem(e, depth+1); f != none {
				return f
			}
		}
	case string:
		if strings.ContainsRune(v, 0) {
			return nul
		}
	case json.Number:
		if _, err := decimal.Parse(string(v)); err != nil {
			return badNumber
		}
	}
	return none
}

// Plain returns a copy of v with every json.Number replaced by the nearest
// float64: CEL knows float64, not json.Number.
func Plain(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, _ := v.Float64()
		return f
	case map[string]any:
		return PlainObject(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = Plain(e)
		}
		return out
	}
	return v
}

// PlainObject is Plain for an object.
func PlainObject(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, e := range m {
		out[k] = Plain(e)
	}
	return out
}

// Amount reads a won amount exactly: a json.Number from a client or the
// database, or a float64 computed by a CEL payload expression.
func Amount(v any) (decimal.Decimal, bool) {
	switch v := v.(type) {
	case json.Number:
		d, err := decimal.Parse(string(v))
		return d, err == nil
	case float64:
		d, err := decimal.FromFloat(v)
		return d, err == nil
	}
	return decimal.Decimal{}, false
}
