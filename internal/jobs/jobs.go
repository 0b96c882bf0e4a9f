// Package jobs declares ctrader's River job arguments and queues. It holds
// plain data only, so domain packages can enqueue jobs without depending on
// the workers that run them (package worker).
package jobs

import (
	"github.com/google/uuid"
	"github.com/riverqueue/river"
)

// Queues. Each kind of work has its own queue with its own concurrency, so a
// flood of one kind cannot starve the others.
const (
	QueueAccounts = "accounts"
)

// Queues lists every queue a worker process serves.
func Queues() []string {
	return []string{QueueAccounts}
}

// AccountProvision provisions a newly created account. It is inserted in the
// same transaction as the account row.
type AccountProvision struct {
	AccountID uuid.UUID `json:"account_id"`
}

// Kind is the job's stable name in river_job.kind.
func (AccountProvision) Kind() string { return "account.provision" }

// InsertOpts routes the job to the accounts queue.
func (AccountProvision) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueAccounts}
}
