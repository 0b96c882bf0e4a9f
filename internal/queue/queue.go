// Package queue names ctrader's River queues. It imports nothing, so
// configuration can check queue names without loading River.
package queue

// Queues. Each kind of work has its own queue with its own concurrency, so a
// flood of one kind cannot starve the others.
const (
	Accounts = "accounts"
	Events   = "events"
	// EventsBurst takes the events jobs of a process ingesting faster than
	// EVENTS_BURST_RATE. Its workers fetch it every
	// EVENTS_BURST_FETCH_COOLDOWN, so each fetch brings many jobs; it has
	// the concurrency of Events.
	EventsBurst = "events_burst"
	Rules       = "rules"
	Maintenance = "maintenance"
	Webhooks    = "webhooks"
	// Backfill works backfills over stored events, with a concurrency of
	// its own (BACKFILL_WORKERS) so that they leave the live queues their
	// share of the machine.
	Backfill = "backfill"
)

// Names lists every queue a worker process serves.
func Names() []string {
	return []string{Accounts, Events, EventsBurst, Rules, Webhooks, Maintenance, Backfill}
}

// Tunable lists the queues QUEUE_CONCURRENCY may set: every one but
// Backfill, which BACKFILL_WORKERS sets, and EventsBurst, which has the
// concurrency of Events.
func Tunable() []string {
	return []string{Accounts, Events, Rules, Webhooks, Maintenance}
}
