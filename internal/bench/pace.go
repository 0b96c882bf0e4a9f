package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Pace says whether processing kept up with posting.
type Pace struct {
	// ProcessedAtLastPost is the fraction (0 to 1) of the run's stored
	// events that were processed when the last POST was answered, read in
	// one statement (one snapshot) at that moment.
	ProcessedAtLastPost       float64 `json:"processed_at_last_post"`
	ProcessedEventsAtLastPost int     `json:"processed_events_at_last_post"`
	StoredEventsAtLastPost    int     `json:"stored_events_at_last_post"`
	LastPostSeconds           float64 `json:"last_post_s"` // from the first POST

	// AverageRate is the processing rate from the first event processed to
	// the last, in events per second; Stalls are the stretches longer than
	// StallSeconds in which processing ran below half of it while events
	// were waiting, found in BucketMS buckets of processed_at after the run.
	AverageRate  float64 `json:"average_rate"`
	BucketMS     float64 `json:"bucket_ms"`
	StallSeconds float64 `json:"stall_min_s"`
	Stalls       []Stall `json:"stalls"`
	WorstStall   *Stall  `json:"worst_stall,omitempty"`
}

// Stall is a stretch of a run in which processing fell below half its
// average rate while events waited.
type Stall struct {
	StartSeconds float64 `json:"start_s"` // from the first POST
	Seconds      float64 `json:"seconds"`
	Rate         float64 `json:"rate"` // events processed per second during the stall
}

// Bucket and minimum length of the stall detection.
const (
	paceBucket = 250 * time.Millisecond
	stallLimit = 2 * time.Second
)

// processedNow counts the run's stored and processed events at this moment,
// and reads the database clock, in one statement. The run's accounts are
// its own, so their won events are the run's.
func (r *runner) processedNow(ctx context.Context, accounts []uuid.UUID) (stored, processed int, at time.Time, err error) {
	err = r.pool.QueryRow(ctx, `
		SELECT clock_timestamp(), count(*), count(*) FILTER (WHERE status = 'processed')
		FROM events WHERE type = 'won' AND account_id = ANY($1)`, accounts).Scan(&at, &stored, &processed)
	if err != nil {
		return 0, 0, at, fmt.Errorf("count processed events: %w", err)
	}
	return stored, processed, at, nil
}

// flow reads, after the run, how many of the run's events were received and
// how many finished processing in each bucket of the run from start. One
// statement, off the clock.
func (r *runner) flow(ctx context.Context, accounts []uuid.UUID, start time.Time, bucket time.Duration) (received, finished []int, err error) {
	rows, err := r.pool.Query(ctx, `
		SELECT greatest(floor(extract(epoch FROM v.at - $2) / $3), 0)::int AS b,
		       count(*) FILTER (WHERE v.received), count(*) FILTER (WHERE NOT v.received)
		FROM events e, LATERAL (VALUES (true, e.received_at), (false, e.processed_at)) AS v(received, at)
		WHERE e.type = 'won' AND e.account_id = ANY($1) AND v.at IS NOT NULL
		GROUP BY b ORDER BY b`, accounts, start, bucket.Seconds())
	if err != nil {
		return nil, nil, fmt.Errorf("read the run's flow: %w", err)
	}
	var b, in, out int
	_, err = pgx.ForEachRow(rows, []any{&b, &in, &out}, func() error {
		for len(received) <= b {
			received, finished = append(received, 0), append(finished, 0)
		}
		received[b], finished[b] = in, out
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("read the run's flow: %w", err)
	}
	return received, finished, nil
}

// findStalls looks for stalls in a run given, per bucket of the run, the
// events received and the events whose processing finished. The average is
// the rate from the first bucket with an event processed to the last. A
// bucket stalls when its rate is below half the average although, at its
// start, enough events were waiting to keep half the average rate busy for
// the whole bucket: a backlog, not a lull in what clients sent. Consecutive
// stalled buckets lasting longer than limit in all make a stall. worst is
// the longest (the slowest of equals).
func findStalls(received, finished []int, bucket, limit time.Duration) (average float64, stalls []Stall, worst *Stall) {
	first, last, total := -1, -1, 0
	for i, n := range finished {
		if n > 0 {
			if first < 0 {
				first = i
			}
			last = i
			total += n
		}
	}
	if first < 0 {
		return 0, nil, nil
	}
	width := bucket.Seconds()
	average = float64(total) / (float64(last-first+1) * width)

	backlog := max(1, average/2*width)
	stalls = []Stall{}
	waiting, run, runDone := 0, 0, 0
	flush := func(end int) {
		if run > 0 && time.Duration(run)*bucket > limit {
			seconds := float64(run) * width
			stalls = append(stalls, Stall{StartSeconds: float64(end-run) * width, Seconds: seconds, Rate: float64(runDone) / seconds})
		}
		run, runDone = 0, 0
	}
	for i := range max(len(received), len(finished)) {
		out := at(finished, i)
		stalled := float64(out)/width < average/2 && float64(waiting) >= backlog
		waiting += at(received, i) - out
		if stalled {
			run++
			runDone += out
			continue
		}
		flush(i)
	}
	flush(max(len(received), len(finished)))
	for i := range stalls {
		s := &stalls[i]
		if worst == nil || s.Seconds > worst.Seconds || (s.Seconds == worst.Seconds && s.Rate < worst.Rate) {
			worst = s
		}
	}
	if worst != nil {
		w := *worst
		worst = &w
	}
	return average, stalls, worst
}

func at(counts []int, i int) int {
	if i < len(counts) {
		return counts[i]
	}
	return 0
}
