package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

// store carries out the actions of the matched evaluations in batch that
// were not already recorded, in order, then writes every evaluation of batch,
// with its actions, in one statement. Storing an acting evaluation is what
// makes its actions count once: if another transaction stored it meanwhile,
// store fails with evaluation.ErrRecordedMeanwhile and the caller's
// transaction, actions and all, must roll back.
func (e *Engine) store(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, batch []*pending) error {
	if len(batch) == 0 {
		return nil
	}
	var acting []*pending
	for _, p := range batch {
		if p.acts() {
			acting = append(acting, p)
		}
	}
	recorded, err := evaluation.Recorded(ctx, tx, evalsOf(acting))
	if err != nil {
		return err
	}
	acting = slices.DeleteFunc(acting, func(p *pending) bool { return recorded[p.eval.ID] })
	if len(acting) > 0 {
		if err := e.actAll(ctx, tx, inserter, acting); err != nil {
			return err
		}
	}
	stored, err := evaluation.InsertNew(ctx, tx, evalsOf(batch))
	if err != nil {
		return err
	}
	for _, p := range acting {
		if !stored[p.eval.ID] {
			return fmt.Errorf("evaluation %s: %w", p.eval.ID, evaluation.ErrRecordedMeanwhile)
		}
	}
	return nil
}

// actAll carries out the actions of acting, in order: webhook deliveries
// are checked, then stored, all at once.
func (e *Engine) actAll(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, acting []*pending) error {
	var endpoints []uuid.UUID
	for _, p := range acting {
		endpoints = append(endpoints, endpointsOf(p.subject.rule.Actions)...)
	}
	fx := &txEffects{tx: tx, inserter: inserter, maxCascade: e.maxCascade}
	var err error
	if fx.endpoints, err = webhook.DeliverableAmong(ctx, tx, endpoints); err != nil {
		return err
	}
	for _, p := range acting {
		if err := e.act(ctx, p, fx); err != nil {
			return err
		}
	}
	return webhook.EnqueueMany(ctx, tx, inserter, fx.deliveries)
}

// effects are what actions do outside the evaluation. The live path has them
// written in the worker's transaction (txEffects); a dry run only notes them
// (dryEffects). Either way act decides what they are.
type effects interface {
	// claimFollowUp counts one more follow-up event of root's cascade and
	// reports whether the cascade may have it.
	claimFollowUp(ctx context.Context, root uuid.UUID) (bool, error)
	// emit posts a follow-up event.
	emit(ctx context.Context, ev *event.Event) error
	// setStatus changes a's status and returns the one it had.
	setStatus(ctx context.Context, a *account.Account, status string) (previous string, err error)
	// deliverable reports whether endpoint can receive deliveries now.
	deliverable(endpoint uuid.UUID) bool
	// deliver has a webhook message delivered.
	deliver(out webhook.Outbound)
}

// txEffects writes effects in the transaction of one store: follow-up
// events with their jobs and account statuses at once, deliveries together
// once every action is taken.
type txEffects struct {
	tx         pgx.Tx
	inserter   jobs.Inserter
	maxCascade int
	endpoints  map[uuid.UUID]bool // deliverable ones
	deliveries []webhook.Outbound
}

func (fx *txEffects) claimFollowUp(ctx context.Context, root uuid.UUID) (bool, error) {
	return event.ClaimFollowUp(ctx, fx.tx, root, fx.maxCascade)
}

func (fx *txEffects) emit(ctx context.Context, ev *event.Event) error {
	return event.Insert(ctx, fx.tx, fx.inserter, []*event.Event{ev})
}

func (fx *txEffects) setStatus(ctx context.Context, a *account.Account, status string) (string, error) {
	return account.SetStatus(ctx, fx.tx, a.ID, status)
}

func (fx *txEffects) deliverable(endpoint uuid.UUID) bool { return fx.endpoints[endpoint] }

func (fx *txEffects) deliver(out webhook.Outbound) { fx.deliveries = append(fx.deliveries, out) }

// act carries out a matched rule's actions through fx. An action that cannot
// be taken for reasons of its own (a computed payload that fails) is recorded
// with its error; database errors abort the transaction and the job retries.
func (e *Engine) act(ctx context.Context, p *pending, fx effects) error {
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
			if followUp.RootID != nil {
				ok, err := fx.claimFollowUp(ctx, *followUp.RootID)
				if err != nil {
					return err
				}
				if !ok {
					res.Skipped = SkippedCascadeLimit
					break
				}
			}
			if err := fx.emit(ctx, followUp); err != nil {
				return err
			}
			res.EventID = &followUp.ID
		case rule.ActionWebhook:
			res.EndpointID = a.EndpointID
			endpoint := uuid.MustParse(a.EndpointID)
			if !fx.deliverable(endpoint) {
				res.Skipped = SkippedEndpointDisabled
				break
			}
			out, err := delivery(p, endpoint)
			if err != nil {
				return err
			}
			fx.deliver(out)
			res.DeliveryID = &out.ID
		case rule.ActionSetAccountStatus:
			previous, err := fx.setStatus(ctx, p.subject.account, a.Status)
			if err != nil {
				return err
			}
			res.Status, res.PreviousStatus = a.Status, previous
			p.subject.account.Status = a.Status
			p.subject.seen.Status = a.Status
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
		root := src.Root()
		followUp.CausationID, followUp.RootID = &src.ID, &root
		followUp.Depth = src.Depth + 1
	}
	return followUp, nil
}

// delivery is the webhook delivery of a matched rule to an endpoint, with
// the account as the evaluated event left it.
func delivery(p *pending, endpointID uuid.UUID) (webhook.Outbound, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return webhook.Outbound{}, err
	}
	a, r, ev := p.subject.seen, p.subject.rule, p.eval
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
	return webhook.Outbound{ID: id, EndpointID: endpointID, EvaluationID: &ev.ID, Message: msg}, nil
}
