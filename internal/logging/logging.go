// Package logging builds the one slog.Logger a ctrader process uses: coloured
// text through tint for a person at a terminal, JSON for everything else.
package logging

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
)

// New returns a logger writing to w. Format "auto" picks text when w is a
// terminal and JSON otherwise.
func New(w io.Writer, level slog.Level, format string) *slog.Logger {
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(tint.NewTextHandler(w, &tint.Options{
			Level:      level,
			TimeFormat: time.TimeOnly,
			NoColor:    !isTerminal(w),
		}))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// ErrorAttr puts an error under the one key every log line uses for errors.
func ErrorAttr(err error) slog.Attr {
	return slog.Any("error", err)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&os.ModeCharDevice != 0
}
