package app

import (
	"log/slog"
	"runtime/debug"
)

// defaultGCPercent is the GOGC that serve and worker run with when the
// environment does not set one. Under a stream of single POSTs Go's default
// of 100 spent a sixth of the server's CPU collecting garbage, for a live
// heap of a few megabytes; 200 halves that and raised the peak RSS of a run
// of batches of 1,000 from 86 to 105 MB (docs/performance.md).
const defaultGCPercent = 200

// setGCPercent applies defaultGCPercent unless GOGC is set, which the Go
// runtime has applied already, as it does GOMEMLIMIT.
func setGCPercent(getenv func(string) string, logger *slog.Logger) {
	if getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
	logger.Debug("garbage collector", slog.Int("gogc", defaultGCPercent))
}
