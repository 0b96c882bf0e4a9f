package worker

import (
	"context"
	"encoding/json"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/reqid"
)

// metadataRequestID is the key of the request id in a job's metadata.
const metadataRequestID = "request_id"

// traceMiddleware follows a request into the jobs it causes: inserts record
// the request id of their context in the job's metadata, and working a job
// puts that id back into the context, so follow-up jobs inherit it and what
// the job logs carries it.
//
// It does not log a failed attempt: River does, once, with the job's id and
// kind ("Job errored; retrying"), and the request id is in that job's
// metadata. River logs it from a context this middleware cannot reach, so the
// request id cannot join that line.
type traceMiddleware struct {
	river.MiddlewareDefaults
}

// InsertMany stamps every job with the request id of ctx.
func (m *traceMiddleware) InsertMany(ctx context.Context, manyParams []*rivertype.JobInsertParams, doInner func(context.Context) ([]*rivertype.JobInsertResult, error)) ([]*rivertype.JobInsertResult, error) {
	if id := reqid.From(ctx); id != "" {
		for _, p := range manyParams {
			meta := map[string]any{}
			if len(p.Metadata) > 0 {
				_ = json.Unmarshal(p.Metadata, &meta)
			}
			meta[metadataRequestID] = id
			if b, err := json.Marshal(meta); err == nil {
				p.Metadata = b
			}
		}
	}
	return doInner(ctx)
}

// Work runs the job with its request id in the context.
func (m *traceMiddleware) Work(ctx context.Context, job *rivertype.JobRow, doInner func(context.Context) error) error {
	var meta struct {
		RequestID string `json:"request_id"`
	}
	_ = json.Unmarshal(job.Metadata, &meta)
	if meta.RequestID != "" {
		ctx = reqid.With(ctx, meta.RequestID)
	}
	return doInner(ctx)
}
