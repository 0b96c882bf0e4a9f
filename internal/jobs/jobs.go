// Package jobs declares ctrader's River job arguments and the queues (named in
// package queue) they route to. It holds plain data only, so domain packages can enqueue jobs without depending on
// the workers that run them (package worker).
package jobs

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/queue"
)

// EventMaxAttempts bounds retries of an event's jobs: about four hours of
// River's backoff, after which the event is marked failed.
const EventMaxAttempts = 10

// AccountProvision provisions a newly created account. It is inserted in the
// same transaction as the account row.
type AccountProvision struct {
	AccountID uuid.UUID `json:"account_id"`
}

// Kind is the job's stable name in river_job.kind.
func (AccountProvision) Kind() string { return "account.provision" }

// InsertOpts routes the job to the accounts queue.
func (AccountProvision) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Accounts}
}

// EventsPerJob is the most events one EventsProcess job carries. A batch of
// events is processed in jobs of this many, each in one transaction.
const EventsPerJob = 100

// EventsProcess processes events in one transaction: a won event's amount is
// added to its account's totals exactly once, then the enabled rules that
// match each event's type are evaluated, in the order of the events' ids.
type EventsProcess struct {
	EventIDs []uuid.UUID `json:"event_ids"`
}

// Kind is the job's stable name in river_job.kind.
func (EventsProcess) Kind() string { return "events.process" }

// InsertOpts routes the job to the events queue.
func (EventsProcess) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Events, MaxAttempts: EventMaxAttempts}
}

// RulesSchedule starts the scheduled evaluation of one window: it fans out
// EvaluateAccounts jobs over pages of provisioned accounts. It is unique by
// window; RulesScheduleTick inserts it once per window.
type RulesSchedule struct {
	WindowStart time.Time `json:"window_start" river:"unique"`
}

// Kind is the job's stable name.
func (RulesSchedule) Kind() string { return "rules.schedule" }

// InsertOpts makes the job unique per window for as long as River keeps it.
func (RulesSchedule) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Rules, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// RulesScheduleTick schedules every window of scheduled evaluation that is
// due and not yet scheduled, each as one RulesSchedule job. The leader
// inserts one at every window boundary and when it is elected.
type RulesScheduleTick struct {
	// At is when the leader's schedule fired, so a worker whose clock is
	// behind the leader's still sees the window that fired as due.
	At time.Time `json:"at"`
	// Interval is the leader's RULES_EVAL_INTERVAL, so every process that
	// works a tick cuts the same windows.
	Interval time.Duration `json:"interval,omitzero"`
}

// Kind is the job's stable name.
func (RulesScheduleTick) Kind() string { return "rules.schedule_tick" }

// InsertOpts routes the job to the rules queue.
func (RulesScheduleTick) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Rules}
}

// RulesFanOut evaluates rules against every provisioned account by inserting
// one EvaluateAccounts job per page of accounts.
type RulesFanOut struct {
	Trigger string      `json:"trigger"`
	RunID   string      `json:"run_id"`
	RuleIDs []uuid.UUID `json:"rule_ids,omitempty"` // empty: every enabled scheduled rule
}

// Kind is the job's stable name.
func (RulesFanOut) Kind() string { return "rules.fan_out" }

// InsertOpts routes the job to the rules queue.
func (RulesFanOut) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Rules}
}

// EvaluateAccounts evaluates rules against one page of accounts, or one
// account, outside the event pipeline. It is unique by its arguments, so a page
// is never queued twice for the same run.
type EvaluateAccounts struct {
	Trigger   string      `json:"trigger" river:"unique"`
	RunID     string      `json:"run_id" river:"unique"`
	RuleIDs   []uuid.UUID `json:"rule_ids,omitempty" river:"unique"`
	AccountID uuid.UUID   `json:"account_id,omitzero" river:"unique"` // one account, whatever its status
	After     uuid.UUID   `json:"after,omitzero" river:"unique"`      // else: provisioned accounts with After < id <= Through
	Through   uuid.UUID   `json:"through,omitzero" river:"unique"`
}

// Kind is the job's stable name.
func (EvaluateAccounts) Kind() string { return "rules.evaluate_accounts" }

// InsertOpts routes the job to the rules queue.
func (EvaluateAccounts) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Rules, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// IdempotencyCleanup deletes expired idempotency keys.
type IdempotencyCleanup struct{}

// Kind is the job's stable name.
func (IdempotencyCleanup) Kind() string { return "maintenance.idempotency_cleanup" }

// InsertOpts routes the job to the maintenance queue.
func (IdempotencyCleanup) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Maintenance}
}

// Inserter inserts jobs inside a caller's transaction, so that rows and the
// jobs that must follow them commit together. *river.Client[pgx.Tx] is one.
type Inserter interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertManyTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	InsertManyFastTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) (int, error)
}

// WebhookDeliver makes one attempt at a webhook delivery; failed attempts are
// retried on the webhook schedule.
type WebhookDeliver struct {
	DeliveryID uuid.UUID `json:"delivery_id"`
	// AttemptsBefore is how many attempts the delivery had before this job:
	// a delivery whose first attempt was made by a WebhookDeliverBatch job
	// continues its schedule here from attempt AttemptsBefore+1.
	AttemptsBefore int `json:"attempts_before,omitempty"`
}

// Kind is the job's stable name.
func (WebhookDeliver) Kind() string { return "webhook.deliver" }

// InsertOpts routes the job to the webhooks queue, so a slow consumer cannot
// hold back event processing.
func (WebhookDeliver) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Webhooks}
}

// WebhookDeliverBatch makes the first attempt at several webhook deliveries
// stored by one transaction, sending them side by side and recording them in
// one transaction. A delivery whose attempt fails continues on its own
// WebhookDeliver job.
type WebhookDeliverBatch struct {
	DeliveryIDs []uuid.UUID `json:"delivery_ids"`
}

// Kind is the job's stable name.
func (WebhookDeliverBatch) Kind() string { return "webhook.deliver_batch" }

// InsertOpts routes the job to the webhooks queue, as WebhookDeliver.
func (WebhookDeliverBatch) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Webhooks}
}

// Vacuum vacuums ctrader's busiest tables when the server's autovacuum is
// off; otherwise it does nothing.
type Vacuum struct{}

// Kind is the job's stable name.
func (Vacuum) Kind() string { return "maintenance.vacuum" }

// InsertOpts routes the job to the maintenance queue, and keeps a run from
// being queued while another waits or runs: a throttled vacuum of a large
// table can outlast the interval.
func (Vacuum) InsertOpts() river.InsertOpts {
	return oneMaintenanceRun()
}

// oneMaintenanceRun puts a job on the maintenance queue unless a job of its
// kind already waits or runs.
func oneMaintenanceRun() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Maintenance, UniqueOpts: river.UniqueOpts{ByState: []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	}}}
}

// Retention creates the partitions of events and evaluations ahead of time
// and removes what is past its retention: old partitions, finished webhook
// deliveries.
type Retention struct{}

// Kind is the job's stable name.
func (Retention) Kind() string { return "maintenance.retention" }

// InsertOpts routes the job to the maintenance queue, and keeps a run from
// being queued while another waits or runs.
func (Retention) InsertOpts() river.InsertOpts {
	return oneMaintenanceRun()
}

// BackfillPage works the next page of a backfill: it evaluates the page's
// events, records them and where the next page starts, and inserts the job
// of the next page, in the transaction that completes it. Page is how many
// pages ran before this one; a job that finds the backfill elsewhere is a
// stale duplicate and does nothing.
type BackfillPage struct {
	BackfillID uuid.UUID `json:"backfill_id"`
	Page       int       `json:"page"`
}

// Kind is the job's stable name.
func (BackfillPage) Kind() string { return "backfill.page" }

// InsertOpts routes the job to the backfill queue, whose concurrency
// (BACKFILL_WORKERS) leaves the live queues their share of the machine.
func (BackfillPage) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: queue.Backfill, MaxAttempts: BackfillMaxAttempts}
}

// BackfillMaxAttempts bounds retries of a backfill page: after them the
// backfill is marked failed, its pages so far kept.
const BackfillMaxAttempts = 5
