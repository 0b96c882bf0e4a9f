package decimal_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/decimal"
)

func TestParseIsExactAndCanonical(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"9007199254740993":     "9007199254740993",
		"12345678901234567.89": "12345678901234567.89",
		"1.5e3":                "1500",
		"1500.100":             "1500.1",
		"-0":                   "0",
		"0.000":                "0",
		"1E-3":                 "0.001",
		"-12.5e+1":             "-125",
		"0.0012e2":             "0.12",
	} {
		d, err := decimal.Parse(in)
		require.NoError(t, err, in)
		require.Equal(t, want, d.String(), in)
	}
	for _, in := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "0x10", "1_000", " 1", "NaN", "Infinity", "--1"} {
		_, err := decimal.Parse(in)
		require.ErrorIs(t, err, decimal.ErrSyntax, in)
	}
	for _, in := range []string{"1e1001", "1e-1001", "1e99999999999", "0." + strings.Repeat("1", 1001), strings.Repeat("9", 1001)} {
		_, err := decimal.Parse(in)
		require.ErrorIs(t, err, decimal.ErrRange, in)
	}
}

func TestAddIsExact(t *testing.T) {
	t.Parallel()
	for _, tt := range [][3]string{
		{"9007199254740993", "12345678901234567.89", "21352878155975560.89"},
		{"0.1", "0.2", "0.3"},
		{"1.5", "-1.5", "0"},
		{"-0.25", "0.05", "-0.2"},
		{"0", "0.001", "0.001"},
	} {
		a, err := decimal.Parse(tt[0])
		require.NoError(t, err)
		b, err := decimal.Parse(tt[1])
		require.NoError(t, err)
		require.Equal(t, tt[2], a.Add(b).String(), tt)
	}
	var zero decimal.Decimal
	require.Equal(t, "0", zero.String())
	b, err := zero.MarshalJSON()
	require.NoError(t, err)
	require.Equal(t, "0", string(b))
}

func TestDigits(t *testing.T) {
	t.Parallel()
	d, err := decimal.Parse("-123.4500")
	require.NoError(t, err)
	i, f := d.Digits()
	require.Equal(t, [2]int{3, 2}, [2]int{i, f})
	d, _ = decimal.Parse("0.05")
	i, f = d.Digits()
	require.Equal(t, [2]int{0, 2}, [2]int{i, f})
}
