package app

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
)

// serve and worker collect garbage at defaultGCPercent unless GOGC says
// otherwise. Not parallel: the setting is the process's.
func TestGCPercentDefaultsUnlessGOGCIsSet(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	setGCPercent(func(string) string { return "" }, dbtest.Logger(t))
	require.Equal(t, defaultGCPercent, debug.SetGCPercent(100))

	setGCPercent(func(k string) string {
		if k == "GOGC" {
			return "100"
		}
		return ""
	}, dbtest.Logger(t))
	require.Equal(t, 100, debug.SetGCPercent(100), "GOGC set: left as the runtime read it")
}
