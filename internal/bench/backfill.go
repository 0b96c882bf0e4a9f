package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// Backfill is the backfill a run started beside its live load
// (--backfill): how long it took over the stored history, while the live
// events' latency was measured.
type Backfill struct {
	ID              string  `json:"id"`
	Mode            string  `json:"mode"`
	State           string  `json:"state"`
	From            string  `json:"from"`
	Pages           int     `json:"pages"`
	EventsScanned   int64   `json:"events_scanned"`
	EventsEvaluated int64   `json:"events_evaluated"`
	EventsSkipped   int64   `json:"events_skipped"`
	EventsMatched   int64   `json:"events_matched"`
	Seconds         float64 `json:"seconds"` // created to finished
	EventsPerSecond float64 `json:"events_per_second"`
	Error           string  `json:"error,omitempty"`
}

// backfillState is what GET /v1/backfills/{id} answers that the run reads.
type backfillState struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Progress   struct {
		Pages           int   `json:"pages"`
		EventsScanned   int64 `json:"events_scanned"`
		EventsEvaluated int64 `json:"events_evaluated"`
		EventsSkipped   int64 `json:"events_skipped"`
		EventsMatched   int64 `json:"events_matched"`
	} `json:"progress"`
}

// startBackfill starts a backfill of ruleID over everything the pre-fill
// can have stored, and returns a function that waits for it to finish (or
// ctx to end) and reports it.
func (r *runner) startBackfill(ctx context.Context, ruleID uuid.UUID) func() *Backfill {
	from := time.Now().Add(-prefillSpan - 24*time.Hour).UTC().Truncate(time.Second)
	rep := &Backfill{Mode: r.o.Backfill, From: from.Format(time.RFC3339)}
	var st backfillState
	err := r.call(ctx, http.MethodPost, "/v1/rules/"+ruleID.String()+"/backfills",
		map[string]any{"from": rep.From, "mode": r.o.Backfill}, &st)
	if err != nil {
		rep.Error = err.Error()
		return func() *Backfill { return rep }
	}
	rep.ID = st.ID
	r.log.Info("backfill started", slog.String("id", st.ID), slog.String("mode", r.o.Backfill))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for st.State == "pending" || st.State == "running" {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := r.call(ctx, http.MethodGet, "/v1/backfills/"+rep.ID, nil, &st); err != nil {
				rep.Error = err.Error()
				return
			}
		}
	}()
	return func() *Backfill {
		<-done
		p := st.Progress
		rep.State, rep.Pages, rep.EventsScanned, rep.EventsEvaluated = st.State, p.Pages, p.EventsScanned, p.EventsEvaluated
		rep.EventsSkipped, rep.EventsMatched = p.EventsSkipped, p.EventsMatched
		if st.FinishedAt != nil {
			rep.Seconds = st.FinishedAt.Sub(st.CreatedAt).Seconds()
			rep.EventsPerSecond = float64(p.EventsEvaluated+p.EventsSkipped) / max(rep.Seconds, 1e-9)
		} else if rep.Error == "" {
			rep.Error = fmt.Sprintf("still %s when the run ended", st.State)
		}
		return rep
	}
}
