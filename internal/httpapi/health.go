package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/ctrader/ctrader/internal/db"
)

var opHealthz = huma.Operation{
	OperationID: "getHealth",
	Method:      http.MethodGet,
	Path:        "/healthz",
	Summary:     "Liveness",
	Description: "200 while the process is running. It does not look at the database.",
	Tags:        []string{"operations"},
	Security:    public,
}

var opReadyz = huma.Operation{
	OperationID: "getReadiness",
	Method:      http.MethodGet,
	Path:        "/readyz",
	Summary:     "Readiness",
	Description: "200 when the database answers and its schema is current; 503 otherwise.",
	Tags:        []string{"operations"},
	Errors:      []int{http.StatusServiceUnavailable},
	Security:    public,
}

// public marks an operation that needs no credentials (an empty security
// requirement), for probes that orchestrators call.
var public = []map[string][]string{{}}

type healthOutput struct {
	Body struct {
		Status string `json:"status" example:"ok"`
	}
}

func (h *handlers) healthz(ctx context.Context, _ *struct{}) (*healthOutput, error) {
	out := &healthOutput{}
	out.Body.Status = "ok"
	return out, nil
}

func (h *handlers) readyz(ctx context.Context, _ *struct{}) (*healthOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := db.CheckSchema(ctx, h.Pool); err != nil {
		detail := "the database is unavailable"
		if errors.Is(err, db.ErrSchemaBehind) {
			detail = "the database schema is behind this binary"
		}
		return nil, newProblem(ctx, http.StatusServiceUnavailable, detail, nil)
	}
	out := &healthOutput{}
	out.Body.Status = "ok"
	return out, nil
}
