package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/backfill"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
)

// BackfillPage evaluates the next page of b's events in tx with the rule
// version b recorded, and reports what it did; the caller records that
// (backfill.Advance) and completes the page's job in the same transaction.
//
// Only processed events are evaluated: a pending one is the events worker's
// to evaluate, with the rule's version of its time, and a failed one was
// given up on. The condition sees the event as stored and its account as it
// stands now. A dry run stores its evaluations and takes no action. An apply
// locks the page's events as the events worker does, skips those that
// already have an evaluation of this rule version that may have acted (the
// events worker's, or an earlier apply backfill's), and acts on the matches
// through the same path as the events worker, in event order.
func (e *Engine) BackfillPage(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, b *backfill.Backfill) (backfill.Page, error) {
	r, err := rule.GetVersion(ctx, tx, b.RuleID, b.RuleVersion)
	if err != nil {
		return backfill.Page{}, err
	}
	apply := b.Mode == backfill.ModeApply
	size := backfill.PageSize
	if apply && changesStatus(r) {
		size = backfill.LockingPageSize
	}
	rng := b.Range()
	walked, err := event.Walk(ctx, tx, rng, size)
	if err != nil {
		return backfill.Page{}, err
	}
	p := backfill.Page{Last: walked.Last, Done: walked.Count < size}
	p.Scanned = int64(walked.Count)
	if walked.Count == 0 {
		p.Last = rng.After
	}
	if len(walked.IDs) == 0 {
		return p, nil
	}

	var (
		events   []*event.Event
		accounts map[uuid.UUID]*account.Account
	)
	reads := &pgx.Batch{}
	accountIDs := event.AccountIDsOf(walked.IDs)
	switch {
	case !apply:
		event.BatchRead(reads, walked.IDs, &events)
		account.BatchRead(reads, accountIDs, &accounts)
	case changesStatus(r):
		event.BatchLock(reads, walked.IDs, &events)
		account.BatchLock(reads, accountIDs, &accounts)
	default:
		// Without a status to change, the accounts are only read: live
		// events of the same accounts need not wait for this page.
		event.BatchLock(reads, walked.IDs, &events)
		account.BatchRead(reads, accountIDs, &accounts)
	}
	if err := tx.SendBatch(ctx, reads).Close(); err != nil {
		return backfill.Page{}, err
	}
	var acted map[uuid.UUID]bool
	if apply {
		applied, err := backfill.Applied(ctx, tx, b.RuleID)
		if err != nil {
			return backfill.Page{}, err
		}
		if acted, err = evaluation.ActedOn(ctx, tx, b.RuleID, b.RuleVersion, applied, walked.IDs); err != nil {
			return backfill.Page{}, err
		}
	}

	start := time.Now()
	var batch []*pending
	for i, ev := range events {
		// A page that outlasts its budget ends at the event before; the
		// next page starts there.
		if i > 0 && time.Since(start) > backfill.PageBudget {
			p.Last, p.Done = events[i-1].ID, false
			break
		}
		if ev.Status != event.StatusProcessed || acted[ev.ID] {
			p.Skipped++
			continue
		}
		acct, ok := accounts[ev.AccountID]
		if !ok {
			return backfill.Page{}, fmt.Errorf("event %s: %w", ev.ID, account.ErrNotFound)
		}
		seen := *acct
		matched, changes, err := e.match(ctx, []subject{{rule: r, account: acct, seen: &seen, event: ev}}, evaluation.TriggerBackfill, nil)
		if err != nil {
			return backfill.Page{}, err
		}
		for _, m := range matched {
			if m.eval.ID, err = evaluation.IDAt(ev.ID); err != nil {
				return backfill.Page{}, err
			}
			m.eval.BackfillID = &b.ID
			p.Evaluated++
			if m.eval.Matched {
				p.Matched++
			}
			if m.eval.Error != nil {
				p.Errors++
			}
		}
		if !apply {
			batch = append(batch, matched...)
			continue
		}
		if batch, err = e.collect(ctx, tx, inserter, batch, matched, changes); err != nil {
			return backfill.Page{}, err
		}
	}
	if apply {
		return p, e.store(ctx, tx, inserter, batch)
	}
	_, err = evaluation.InsertNew(ctx, tx, evalsOf(batch))
	return p, err
}
