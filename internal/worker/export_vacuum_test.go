package worker

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
)

// NewVacuumWorkerOnServer returns a VacuumWorker that takes the server's
// autovacuum setting to be autovacuumOn, whatever the test server's is.
func NewVacuumWorkerOnServer(pool *pgxpool.Pool, autovacuumOn bool) *VacuumWorker {
	return &VacuumWorker{pool: pool, logger: slog.New(slog.DiscardHandler),
		serverAutovacuum: func(context.Context) (bool, error) { return autovacuumOn, nil }}
}
