// Package engine evaluates rules and carries out their actions: the work that
// spans accounts, events, rules, evaluations and webhooks. The River workers
// call it inside the transaction that completes their job, so an evaluation,
// its effects and the job's completion commit together; Manual starts an
// evaluation by hand; Tester evaluates a rule through the same code and
// reports what its actions would do, doing none of it.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/decimal"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/jsonvalue"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/rule"
)

// DefaultMaxDepth is how many follow-up events a chain may have unless
// MAX_EVENT_DEPTH says otherwise (config's default is held to it by a test).
const DefaultMaxDepth = 8

// SkippedDepthLimit says an emit_event action was not taken because the
// triggering event is at the maximum depth.
const SkippedDepthLimit = "depth_limit"

// DefaultMaxCascade is how many follow-up events one posted event may cause
// in all, at every depth together, unless MAX_CASCADE_EVENTS says otherwise.
const DefaultMaxCascade = 1000

// SkippedCascadeLimit says an emit_event action was not taken because the
// posted event its chain started from has caused the most follow-ups allowed.
const SkippedCascadeLimit = "cascade_limit"

// SkippedEndpointDisabled says a webhook action was not taken because its
// endpoint is disabled or deleted.
const SkippedEndpointDisabled = "endpoint_disabled"

// Engine evaluates rules.
type Engine struct {
	compiler   *rule.Compiler
	maxDepth   int
	maxCascade int
	// accountsBudget bounds the time one EvaluateAccounts call spends.
	accountsBudget time.Duration
	logger         *slog.Logger
	metrics        *metrics.Metrics
}

// WithMetrics makes the engine record evaluations and event latency in m.
func (e *Engine) WithMetrics(m *metrics.Metrics) *Engine {
	e.metrics = m
	return e
}

// DefaultAccountsBudget is how long one job of scheduled or manual
// evaluation evaluates accounts before it leaves the rest of its page to a
// new job: well inside JOB_TIMEOUT, whatever the rules cost.
const DefaultAccountsBudget = 5 * time.Second

// WithAccountsBudget sets how long one job evaluates accounts before it
// leaves the rest to a new one (DefaultAccountsBudget unless set).
func (e *Engine) WithAccountsBudget(d time.Duration) *Engine {
	e.accountsBudget = d
	return e
}

// WithCascadeLimit bounds the follow-up events of one posted event, at
// every depth together, to n (DefaultMaxCascade unless set).
func (e *Engine) WithCascadeLimit(n int) *Engine {
	e.maxCascade = n
	return e
}

// New returns an Engine. Events at maxDepth are evaluated but emit nothing.
func New(compiler *rule.Compiler, maxDepth int, logger *slog.Logger) *Engine {
	return &Engine{compiler: compiler, maxDepth: maxDepth, maxCascade: DefaultMaxCascade, accountsBudget: DefaultAccountsBudget, logger: logger}
}

// subject is one (rule, account, event) to evaluate.
type subject struct {
	rule    *rule.Rule
	account *account.Account // as it stands now; a status change updates it
	// seen is the account as the event left it, shared by the event's
	// subjects: what its webhooks report even when they are sent after
	// later events have changed the account.
	seen  *account.Account
	event *event.Event // nil for scheduled and manual evaluations
}

// accountVar and eventVar build what conditions see. CEL has no exact
// decimals: the won total and JSON numbers become the nearest float64.
func accountVar(a *account.Account) rule.Account {
	return rule.Account{ID: a.ID.String(), Name: a.Name, Status: a.Status, WonCount: a.WonCount,
		WonTotal: a.WonTotal.Float64(), Metadata: jsonvalue.PlainObject(a.Metadata), CreatedAt: a.CreatedAt}
}

func eventVar(e *event.Event) rule.Event {
	if e == nil {
		return rule.Event{Payload: map[string]any{}}
	}
	v := rule.Event{ID: e.ID.String(), Type: e.Type, Payload: jsonvalue.PlainObject(e.Payload), OccurredAt: e.OccurredAt,
		AccountID: e.AccountID.String(), Depth: e.Depth}
	if e.CausationID != nil {
		v.CausationID = e.CausationID.String()
	}
	return v
}

// ProcessEvents processes the pending events among ids in tx, in the order
// of their ids: a won event's amount is added to its account's totals once,
// then every enabled rule that matches the event's type is evaluated against
// the event and the account as it stands after the event, one evaluation per
// rule version, and the matches act. Each event sees the effects of the ones
// before it. Running it again for the same events does nothing; ids that name
// no event are skipped, and when none does it returns event.ErrNotFound.
func (e *Engine) ProcessEvents(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, ids []uuid.UUID) error {
	// The reads go out in one round trip: the events, their accounts and the
	// rules for their types, locked in that order. Each package reads its own
	// table; the accounts and types are the events', selected in SQL by the
	// event package, so no read waits for another's answer.
	var (
		events   []*event.Event
		accounts map[uuid.UUID]*account.Account
		rules    []*rule.Rule
	)
	reads := &pgx.Batch{}
	event.BatchLock(reads, ids, &events)
	account.BatchLock(reads, event.AccountIDsOf(ids), &accounts)
	rule.BatchForTypes(reads, event.TypesOf(ids), &rules)
	if err := tx.SendBatch(ctx, reads).Close(); err != nil {
		return err
	}
	if len(events) == 0 {
		return event.ErrNotFound
	}
	todo := events[:0:0]
	for _, ev := range events {
		if ev.Status == event.StatusPending {
			todo = append(todo, ev)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	rulesByType := make(map[string][]*rule.Rule)
	var (
		wonAccounts []uuid.UUID
		wonAmounts  []decimal.Decimal
		batch       []*pending
	)
	for _, ev := range todo {
		acct, ok := accounts[ev.AccountID]
		if !ok {
			return fmt.Errorf("event %s: %w", ev.ID, account.ErrNotFound)
		}
		if amount, ok, err := addWon(acct, ev); err != nil {
			return err
		} else if ok {
			wonAccounts = append(wonAccounts, acct.ID)
			wonAmounts = append(wonAmounts, amount)
		}
		forType, ok := rulesByType[ev.Type]
		if !ok {
			for _, r := range rules {
				if r.AppliesTo(ev.Type) {
					forType = append(forType, r)
				}
			}
			rulesByType[ev.Type] = forType
		}
		seen := *acct
		subjects := make([]subject, len(forType))
		for i, r := range forType {
			subjects[i] = subject{rule: r, account: acct, seen: &seen, event: ev}
		}
		matched, changes, err := e.match(ctx, subjects, evaluation.TriggerEvent, nil)
		if err != nil {
			return err
		}
		if batch, err = e.collect(ctx, tx, inserter, batch, matched, changes); err != nil {
			return err
		}
	}
	if slices.ContainsFunc(batch, (*pending).acts) {
		if err := e.store(ctx, tx, inserter, batch); err != nil {
			return err
		}
		batch = batch[:0]
	}
	// The writes go out in one round trip too. Nothing left in batch acts.
	processed := make([]uuid.UUID, len(todo))
	for i, ev := range todo {
		processed[i] = ev.ID
	}
	writes := &pgx.Batch{}
	if err := evaluation.BatchInsert(writes, evalsOf(batch)); err != nil {
		return err
	}
	account.BatchAddWon(writes, wonAccounts, wonAmounts)
	event.BatchMarkProcessed(writes, processed)
	if err := tx.SendBatch(ctx, writes).Close(); err != nil {
		return fmt.Errorf("record processed events: %w", err)
	}
	for _, ev := range todo {
		e.metrics.EventProcessed(time.Since(ev.ReceivedAt))
	}
	return nil
}

// addWon adds a won event's amount to the totals of acct, its account as
// held in memory, unless they have it already, and returns the amount. It
// reports false for other events and for won events already applied.
func addWon(acct *account.Account, ev *event.Event) (decimal.Decimal, bool, error) {
	if ev.Type != event.TypeWon || ev.WonApplied {
		return decimal.Decimal{}, false, nil
	}
	amount, ok := jsonvalue.Amount(ev.Payload["amount"])
	if !ok {
		return decimal.Decimal{}, false, fmt.Errorf("won event %s has no numeric amount", ev.ID)
	}
	acct.WonCount++
	acct.WonTotal = acct.WonTotal.Add(amount)
	return amount, true, nil
}

// EvaluateAccounts evaluates rules against accounts outside the event
// pipeline, as a job of a scheduled window or a manual run describes. When
// the accounts outlast the engine's budget, the rest of the range is queued
// as a new job in tx, and the count returned is of what was evaluated.
func (e *Engine) EvaluateAccounts(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, args jobs.EvaluateAccounts) (int, error) {
	rules, err := rule.Enabled(ctx, tx, args.RuleIDs)
	if err != nil || len(rules) == 0 {
		return 0, err
	}
	var accounts []*account.Account
	if args.AccountID != uuid.Nil {
		a, err := account.Get(ctx, tx, args.AccountID)
		if err != nil {
			return 0, err
		}
		accounts = []*account.Account{a}
	} else if accounts, err = account.ProvisionedRange(ctx, tx, args.After, args.Through); err != nil {
		return 0, err
	}
	// Accounts are evaluated in id order until the budget is spent; the rest
	// of the range becomes a new job, inserted with this one's completion.
	runID := args.RunID
	start := time.Now()
	var (
		matched []*pending
		n       int
	)
	for i, a := range accounts {
		subjects := make([]subject, len(rules))
		for j, r := range rules {
			subjects[j] = subject{rule: r, account: a, seen: a}
		}
		m, _, err := e.match(ctx, subjects, args.Trigger, &runID)
		if err != nil {
			return 0, err
		}
		matched = append(matched, m...)
		n += len(subjects)
		if i < len(accounts)-1 && time.Since(start) > e.accountsBudget {
			rest := args
			rest.After = a.ID
			if _, err := inserter.InsertTx(ctx, tx, rest, nil); err != nil {
				return 0, fmt.Errorf("queue the rest of the accounts: %w", err)
			}
			break
		}
	}
	return n, e.store(ctx, tx, inserter, matched)
}

// collect adds the evaluations of one event to batch, in the order the
// events are taken. A status change alters what the next events see, so
// when one of them changes one (changes), the batch is stored and acted on
// before the next event is evaluated, and collect returns it empty. The
// others wait for the end: their actions (follow-up events, webhooks) change
// nothing the next events read, and are taken together.
func (e *Engine) collect(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, batch, matched []*pending, changes bool) ([]*pending, error) {
	batch = append(batch, matched...)
	if !changes {
		return batch, nil
	}
	if err := e.store(ctx, tx, inserter, batch); err != nil {
		return nil, err
	}
	return batch[:0], nil
}

// pending is an evaluation with what it needs to act.
type pending struct {
	eval     *evaluation.Evaluation
	compiled *rule.Compiled
	vars     *rule.Vars
	subject  subject
	cost     uint64 // CEL cost of the condition
}

// acts reports whether p matched a rule that has actions.
func (p *pending) acts() bool { return p.eval.Matched && len(p.subject.rule.Actions) > 0 }

// changesStatus reports whether p acts with a rule that changes the
// account's status.
func (p *pending) changesStatus() bool { return p.acts() && changesStatus(p.subject.rule) }

// changesStatus reports whether r has an action that changes an account's
// status.
func changesStatus(r *rule.Rule) bool {
	return slices.ContainsFunc(r.Actions, func(a rule.Action) bool { return a.Type == rule.ActionSetAccountStatus })
}

// match evaluates each subject's rule and reports whether any evaluation
// matched a rule that changes the account's status.
func (e *Engine) match(ctx context.Context, subjects []subject, trigger string, runID *string) ([]*pending, bool, error) {
	now := event.Now()
	out := make([]*pending, 0, len(subjects))
	changes := false
	accountVars := make(map[uuid.UUID]rule.Account)
	eventVars := make(map[*event.Event]rule.Event)
	for _, s := range subjects {
		av, ok := accountVars[s.account.ID]
		if !ok {
			av = accountVar(s.account)
			accountVars[s.account.ID] = av
		}
		evv, ok := eventVars[s.event]
		if !ok {
			evv = eventVar(s.event)
			eventVars[s.event] = evv
		}
		vars := &rule.Vars{Event: evv, Account: av, Now: now}
		p, took, err := e.evaluate(ctx, s, nil, vars, trigger, runID)
		if err != nil {
			return nil, false, err
		}
		e.metrics.RuleEvaluated(p.eval.Matched, p.eval.Error != nil, took)
		changes = changes || p.changesStatus()
		out = append(out, p)
	}
	return out, changes, nil
}

// evaluate evaluates one subject's rule over vars, as an evaluation with
// trigger and runID, and returns it with the time the condition took. The
// rule is compiled as stored rules are, once per version, unless compiled
// is given (a draft's). Events, scheduled and manual runs and dry runs all
// evaluate through here.
func (e *Engine) evaluate(ctx context.Context, s subject, compiled *rule.Compiled, vars *rule.Vars, trigger string, runID *string) (*pending, time.Duration, error) {
	ev := &evaluation.Evaluation{
		RuleID: s.rule.ID, RuleVersion: s.rule.Version, AccountID: s.account.ID,
		Trigger: trigger, RunID: runID, StartedAt: time.Now().UTC(), Actions: []evaluation.ActionResult{},
	}
	// The id is derived from what is evaluated: evaluating it again (a
	// retried job) gives the same id, whose insert is skipped.
	if s.event != nil {
		ev.ID = evaluation.EventID(s.event.ID, s.rule.ID, s.rule.Version)
		ev.EventID = &s.event.ID
		ev.DepthLimited = s.event.Depth >= e.maxDepth
	} else {
		ev.ID = evaluation.RunID(*runID, s.rule.ID, s.rule.Version, s.account.ID)
	}
	var err error
	if compiled == nil {
		compiled, err = e.compiler.Compile(s.rule)
	}
	var cost uint64
	celStart := time.Now()
	if err == nil {
		ev.Matched, cost, err = compiled.MatchCost(ctx, vars)
	}
	took := time.Since(celStart)
	if err != nil {
		msg := err.Error()
		ev.Error = &msg
		ev.Matched = false
	}
	ev.EvaluatedAt = time.Now().UTC()
	return &pending{eval: ev, compiled: compiled, vars: vars, subject: s, cost: cost}, took, nil
}

func evalsOf(batch []*pending) []*evaluation.Evaluation {
	out := make([]*evaluation.Evaluation, len(batch))
	for i, p := range batch {
		out[i] = p.eval
	}
	return out
}
