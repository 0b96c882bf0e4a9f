// Package decimal holds money-like numbers exactly: won amounts and totals
// travel from a client's JSON to Postgres numeric and back as their digits,
// never through a float64.
package decimal

import (
	"errors"
	"math/big"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// MaxDigits bounds the digits on either side of the point of a parsed
// number: far more than any amount needs, and well inside what Postgres
// numeric (and so jsonb) can store.
const MaxDigits = 1000

// Errors of Parse.
var (
	ErrSyntax = errors.New("not a JSON number")
	ErrRange  = errors.New("too many digits")
)

// Decimal is an exact decimal number. Its text is canonical: no exponent, no
// leading zeros, no trailing zeros after the point, no "-0". The zero value
// is 0.
type Decimal struct {
	text string
}

// Parse reads a JSON number, such as 12345678901234567.89 or 1.5e3, exactly.
// It fails with ErrRange when the number has more than MaxDigits digits
// before or after the point.
func Parse(s string) (Decimal, error) {
	return parse(s, MaxDigits)
}

// FromFloat returns the shortest decimal that reads back as f; it fails for
// infinities and NaN.
func FromFloat(f float64) (Decimal, error) {
	return Parse(strconv.FormatFloat(f, 'g', -1, 64))
}

func parse(s string, limit int) (Decimal, error) {
	neg := strings.HasPrefix(s, "-")
	rest := strings.TrimPrefix(s, "-")
	mantissa, exp := rest, 0
	if i := strings.IndexAny(rest, "eE"); i >= 0 {
		mantissa = rest[:i]
		e, sign := rest[i+1:], 1
		switch {
		case strings.HasPrefix(e, "-"):
			e, sign = e[1:], -1
		case strings.HasPrefix(e, "+"):
			e = e[1:]
		}
		if e == "" || !digits(e) {
			return Decimal{}, ErrSyntax
		}
		if len(strings.TrimLeft(e, "0")) > 9 {
			return Decimal{}, ErrRange
		}
		exp, _ = strconv.Atoi(e)
		exp *= sign
	}
	intPart, frac, hasPoint := strings.Cut(mantissa, ".")
	if intPart == "" || !digits(intPart) || (len(intPart) > 1 && intPart[0] == '0') ||
		(hasPoint && (frac == "" || !digits(frac))) {
		return Decimal{}, ErrSyntax
	}
	// The number is 0.DIGITS × 10^point.
	all := strings.TrimLeft(intPart+frac, "0")
	point := len(intPart) - (len(intPart+frac) - len(all)) + exp
	all = strings.TrimRight(all, "0")
	if all == "" {
		return Decimal{}, nil
	}
	if point > limit || len(all)-point > limit {
		return Decimal{}, ErrRange
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	switch {
	case point <= 0:
		b.WriteString("0.")
		b.WriteString(strings.Repeat("0", -point))
		b.WriteString(all)
	case point >= len(all):
		b.WriteString(all)
		b.WriteString(strings.Repeat("0", point-len(all)))
	default:
		b.WriteString(all[:point])
		b.WriteByte('.')
		b.WriteString(all[point:])
	}
	return Decimal{text: b.String()}, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String returns the number's canonical text, such as "-1234.5".
func (d Decimal) String() string {
	if d.text == "" {
		return "0"
	}
	return d.text
}

// Digits returns how many digits d has before and after the point.
func (d Decimal) Digits() (integer, fraction int) {
	intPart, frac, _ := strings.Cut(strings.TrimPrefix(d.String(), "-"), ".")
	if intPart == "0" {
		intPart = ""
	}
	return len(intPart), len(frac)
}

// Float64 returns the float64 nearest to d.
func (d Decimal) Float64() float64 {
	f, _ := strconv.ParseFloat(d.String(), 64)
	return f
}

// Add returns d + e, exactly.
func (d Decimal) Add(e Decimal) Decimal {
	a, as := d.scaled()
	b, bs := e.scaled()
	for ; as < bs; as++ {
		a.Mul(a, big.NewInt(10))
	}
	for ; bs < as; bs++ {
		b.Mul(b, big.NewInt(10))
	}
	sum := a.Add(a, b)
	neg := sum.Sign() < 0
	text := sum.Abs(sum).String()
	if as > 0 {
		if len(text) <= as {
			text = strings.Repeat("0", as-len(text)+1) + text
		}
		text = text[:len(text)-as] + "." + text[len(text)-as:]
	}
	if neg {
		text = "-" + text
	}
	out, _ := parse(text, int(^uint(0)>>1))
	return out
}

// scaled returns d as an integer and a count of decimal places.
func (d Decimal) scaled() (*big.Int, int) {
	s := d.String()
	intPart, frac, _ := strings.Cut(s, ".")
	n, _ := new(big.Int).SetString(intPart+frac, 10)
	return n, len(frac)
}

// MarshalJSON writes d as a JSON number with every digit.
func (d Decimal) MarshalJSON() ([]byte, error) {
	return []byte(d.String()), nil
}

// UnmarshalJSON reads a JSON number exactly, within MaxDigits.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	out, err := Parse(string(b))
	if err != nil {
		return err
	}
	*d = out
	return nil
}

// ScanText reads a Postgres numeric, whatever its size.
func (d *Decimal) ScanText(v pgtype.Text) error {
	if !v.Valid {
		return errors.New("decimal: NULL")
	}
	out, err := parse(v.String, int(^uint(0)>>1))
	if err != nil {
		return err
	}
	*d = out
	return nil
}
