// Command ctrader is the Postgres-native event and rules service.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/ctrader/ctrader/internal/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, app.ErrUsage):
		fmt.Fprintln(os.Stderr, "ctrader:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "ctrader:", err)
		os.Exit(1)
	}
}
