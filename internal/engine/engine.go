// Package engine evaluates rules and carries out their actions. It is called
// by the River workers inside the transaction that completes their job, so an
// evaluation, its effects and the job's completion commit together.
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

// DefaultMaxDepth is how many follow-up events a chain may have.
const DefaultMaxDepth = 8

// SkippedDepthLimit says an emit_event action was not taken because the
// triggering event is at the maximum depth.
const SkippedDepthLimit = "depth_limit"

// SkippedEndpointDisabled says a webhook action was not taken because its
// endpoint is disabled or deleted.
const SkippedEndpointDisabled = "endpoint_disabled"

// Engine evaluates rules.
type Engine struct {
	compiler *rule.Compiler
	maxDepth int
	logger   *slog.Logger
	metrics  *metrics.Metrics
}

// WithMetrics makes the engine record evaluations and event latency in m.
func (e *Engine) WithMetrics(m *metrics.Metrics) *Engine {
	e.metrics = m
	return e
}

// New returns an Engine. Events at maxDepth are evaluated but emit nothing.
func New(compiler *rule.Compiler, maxDepth int, logger *slog.Logger) *Engine {
	return &Engine{compiler: compiler, maxDepth: maxDepth, logger: logger}
}

// subject is one (rule, account, event) to evaluate.
type subject struct {
	rule    *rule.Rule
	account *account.Account
	event   *event.Event // nil for scheduled and manual evaluations
}

func accountVar(a *account.Account) rule.Account {
	return rule.Account{ID: a.ID.String(), Name: a.Name, Status: a.Status, WonCount: a.WonCount,
		WonTotal: a.WonTotal, Metadata: a.Metadata, CreatedAt: a.CreatedAt}
}

func eventVar(e *event.Event) rule.Event {
	if e == nil {
		return rule.Event{Payload: map[string]any{}}
	}
	v := rule.Event{ID: e.ID.String(), Type: e.Type, Payload: e.Payload, OccurredAt: e.OccurredAt,
		AccountID: e.AccountID.String(), Depth: e.Depth}
	if e.CausationID != nil {
		v.CausationID = e.CausationID.String()
	}
	return v
}

// EvaluateEvent evaluates every enabled rule that matches the event's type,
// records one evaluation per rule version, acts on matches and marks the event
// processed, all in tx. Running it again for the same event does nothing.
func (e *Engine) EvaluateEvent(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, eventID uuid.UUID) error {
	ev, err := event.GetForUpdate(ctx, tx, eventID)
	if err != nil {
		return err
	}
	if ev.Status != event.StatusPending {
		return nil
	}
	acct, err := account.Get(ctx, tx, ev.AccountID)
	if err != nil {
		return err
	}
	rules, err := rule.ForEvent(ctx, tx, ev.Type)
	if err != nil {
		return err
	}
	subjects := make([]subject, len(rules))
	for i, r := range rules {
		subjects[i] = subject{rule: r, account: acct, event: ev}
	}
	if err := e.evaluate(ctx, tx, inserter, subjects, evaluation.TriggerEvent, nil); err != nil {
		return err
	}
	if err := event.MarkProcessed(ctx, tx, ev.ID); err != nil {
		return err
	}
	e.metrics.EventProcessed(time.Since(ev.ReceivedAt))
	return nil
}

// EvaluateAccounts evaluates rules against accounts outside the event
// pipeline, as a job of a scheduled window or a manual run describes.
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
	subjects := make([]subject, 0, len(rules)*len(accounts))
	for _, a := range accounts {
		for _, r := range rules {
			subjects = append(subjects, subject{rule: r, account: a})
		}
	}
	runID := args.RunID
	return len(subjects), e.evaluate(ctx, tx, inserter, subjects, args.Trigger, &runID)
}

// pending is an evaluation with what it needs to act.
type pending struct {
	eval     *evaluation.Evaluation
	compiled *rule.Compiled
	vars     *rule.Vars
	subject  subject
}

func (e *Engine) evaluate(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, subjects []subject, trigger string, runID *string) error {
	now := event.Now()
	evals := make([]*evaluation.Evaluation, 0, len(subjects))
	byID := make(map[uuid.UUID]*pending, len(subjects))
	accountVars := make(map[uuid.UUID]rule.Account)
	for _, s := range subjects {
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		av, ok := accountVars[s.account.ID]
		if !ok {
			av = accountVar(s.account)
			accountVars[s.account.ID] = av
		}
		vars := &rule.Vars{Event: eventVar(s.event), Account: av, Now: now}
		ev := &evaluation.Evaluation{
			ID: id, RuleID: s.rule.ID, RuleVersion: s.rule.Version, AccountID: s.account.ID,
			Trigger: trigger, RunID: runID, StartedAt: time.Now().UTC(), Actions: []evaluation.ActionResult{},
		}
		if s.event != nil {
			ev.EventID = &s.event.ID
			ev.DepthLimited = s.event.Depth >= e.maxDepth
		}
		compiled, err := e.compiler.Compile(s.rule)
		celStart := time.Now()
		if err == nil {
			ev.Matched, err = compiled.Match(ctx, vars)
		}
		e.metrics.RuleEvaluated(ev.Matched, err != nil, time.Since(celStart))
		if err != nil {
			msg := err.Error()
			ev.Error = &msg
			ev.Matched = false
		}
		ev.EvaluatedAt = time.Now().UTC()
		evals = append(evals, ev)
		byID[id] = &pending{eval: ev, compiled: compiled, vars: vars, subject: s}
	}
	stored, err := evaluation.InsertNew(ctx, tx, evals)
	if err != nil {
		return err
	}
	for _, ev := range stored {
		if !ev.Matched {
			continue
		}
		p := byID[ev.ID]
		if err := e.act(ctx, tx, inserter, p); err != nil {
			return err
		}
		if err := evaluation.SetActions(ctx, tx, ev); err != nil {
			return err
		}
	}
	return nil
}

// act carries out a matched rule's actions. An action that cannot be taken
// for reasons of its own (a computed payload that fails) is recorded with its
// error; database errors abort the transaction and the job retries.
func (e *Engine) act(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, p *pending) error {
	for i, a := range p.subject.rule.Actions {
		res := evaluation.ActionResult{Type: a.Type}
		switch a.Type {
		case rule.ActionEmitEvent:
			res.EventType = a.EventType
			if p.eval.DepthLimited {
				res.Skipped = SkippedDepthLimit
				break
			}
			followUp, err := e.followUp(ctx, p, i, a)
			if err != nil {
				res.Error = err.Error()
				break
			}
			if err := event.Insert(ctx, tx, inserter, []*event.Event{followUp}); err != nil {
				return err
			}
			res.EventID = &followUp.ID
		case rule.ActionWebhook:
			res.EndpointID = a.EndpointID
			id, err := e.deliver(ctx, tx, inserter, p, uuid.MustParse(a.EndpointID))
			if err != nil {
				return err
			}
			if id == uuid.Nil {
				res.Skipped = SkippedEndpointDisabled
				break
			}
			res.DeliveryID = &id
		case rule.ActionSetAccountStatus:
			previous, err := account.SetStatus(ctx, tx, p.subject.account.ID, a.Status)
			if err != nil {
				return err
			}
			res.Status, res.PreviousStatus = a.Status, previous
		default:
			res.Error = "unknown action type"
		}
		p.eval.Actions = append(p.eval.Actions, res)
	}
	return nil
}

func (e *Engine) followUp(ctx context.Context, p *pending, i int, a rule.Action) (*event.Event, error) {
	payload, err := p.compiled.Payload(ctx, i, a, p.vars)
	if err != nil {
		return nil, err
	}
	now := event.Now()
	in := event.Input{AccountID: p.subject.account.ID, Type: a.EventType, Payload: payload}
	if fields := in.Validate("payload", now); len(fields) > 0 {
		return nil, fmt.Errorf("follow-up event is invalid: %s %s", fields[0].Location, fields[0].Message)
	}
	// A computed payload is held to the limit a posted one is.
	if in.PayloadTooLarge() {
		return nil, fmt.Errorf("follow-up event is invalid: payload must encode to at most %d bytes of JSON", event.MaxPayloadBytes)
	}
	followUp, err := event.New(in, now)
	if err != nil {
		return nil, err
	}
	if src := p.subject.event; src != nil {
		followUp.CausationID = &src.ID
		followUp.Depth = src.Depth + 1
	}
	return followUp, nil
}

// deliver queues a webhook delivery for a matched rule and returns its id, or
// uuid.Nil when the endpoint is disabled or deleted.
func (e *Engine) deliver(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, p *pending, endpointID uuid.UUID) (uuid.UUID, error) {
	usable, err := webhook.Enabled(ctx, tx, endpointID)
	if err != nil || !usable {
		return uuid.Nil, err
	}
	a, r, ev := p.subject.account, p.subject.rule, p.eval
	data := map[string]any{
		"event": p.subject.event,
		"rule":  map[string]any{"id": r.ID, "name": r.Name, "version": r.Version},
		"evaluation": map[string]any{
			"id": ev.ID, "trigger": ev.Trigger, "run_id": ev.RunID, "matched": ev.Matched,
			"depth_limited": ev.DepthLimited, "evaluated_at": ev.EvaluatedAt,
		},
		"account": map[string]any{
			"id": a.ID, "name": a.Name, "status": a.Status, "won_count": a.WonCount,
			"won_total": a.WonTotal, "metadata": a.Metadata, "created_at": a.CreatedAt,
		},
	}
	msg := webhook.Message{Type: webhook.MessageType, Timestamp: ev.EvaluatedAt, Data: data}
	return webhook.Enqueue(ctx, tx, inserter, endpointID, &ev.ID, msg)
}
