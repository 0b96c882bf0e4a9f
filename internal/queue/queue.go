// Package queue names ctrader's River queues. It imports nothing, so
// configuration can check queue names without loading River.
package queue

// Queues. Each kind of work has its own queue with its own concurrency, so a
// flood of one kind cannot starve the others.
const (
	Accounts    = "accounts"
	Events      = "events"
	Rules       = "rules"
	Maintenance = "maintenance"
	Webhooks    = "webhooks"
)

// Names lists every queue a worker process serves.
func Names() []string {
	return []string{Accounts, Events, Rules, Webhooks, Maintenance}
}
