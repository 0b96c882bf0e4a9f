package rule

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jsonvalue"
)

// Action types.
const (
	ActionEmitEvent        = "emit_event"         // post a follow-up event for the same account
	ActionSetAccountStatus = "set_account_status" // change the account's status
	ActionWebhook          = "webhook"            // deliver a signed message to a webhook endpoint
)

// ActionTypes lists every action type, in the order the API documents them.
var ActionTypes = []string{ActionEmitEvent, ActionSetAccountStatus, ActionWebhook}

// StatusPattern is what an account status set by a rule may look like.
var StatusPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Action is one thing a rule does when it matches. Type selects which fields
// apply; new action types add fields without changing existing ones.
type Action struct {
	Type string `json:"type"`
	// emit_event
	EventType   string         `json:"event_type,omitempty"`
	Payload     map[string]any `json:"payload,omitempty"`
	PayloadExpr string         `json:"payload_expr,omitempty"`
	// set_account_status
	Status string `json:"status,omitempty"`
	// webhook
	EndpointID string `json:"endpoint_id,omitempty"`
}

func checkAction(a *Action, location string) []apperr.FieldError {
	var fields []apperr.FieldError
	bad := func(field, msg string, value any) {
		fields = append(fields, apperr.FieldError{Location: location + field, Message: msg, Value: value})
	}
	switch a.Type {
	case ActionEmitEvent:
		switch {
		case a.EventType == "":
			bad(".event_type", "emit_event needs an event_type", nil)
		case len(a.EventType) > event.MaxTypeLength || !event.TypePattern.MatchString(a.EventType):
			bad(".event_type", "not a valid event type", a.EventType)
		}
		if a.Payload != nil && a.PayloadExpr != "" {
			bad("", "give payload or payload_expr, not both", nil)
		}
		if msg := jsonvalue.Check(a.Payload); msg != "" {
			bad(".payload", msg, nil)
		} else if b, _ := json.Marshal(a.Payload); len(b) > event.MaxPayloadBytes {
			bad(".payload", fmt.Sprintf("must encode to at most %d bytes of JSON", event.MaxPayloadBytes), nil)
		}
		if a.EventType == event.TypeWon && a.PayloadExpr == "" {
			if _, ok := jsonvalue.Amount(a.Payload["amount"]); !ok {
				bad(".payload.amount", "a won event needs a numeric amount", nil)
			}
		}
		if a.Status != "" {
			bad(".status", "only for set_account_status", nil)
		}
		if a.EndpointID != "" {
			bad(".endpoint_id", "only for webhook", nil)
		}
	case ActionSetAccountStatus:
		switch {
		case a.Status == "":
			bad(".status", "set_account_status needs a status", nil)
		case a.Status == account.StatusPending || !StatusPattern.MatchString(a.Status):
			bad(".status", "must match "+StatusPattern.String()+" and not be pending", a.Status)
		}
		if a.EventType != "" || a.Payload != nil || a.PayloadExpr != "" || a.EndpointID != "" {
			bad("", "set_account_status takes only a status", nil)
		}
	case ActionWebhook:
		if id, err := uuid.Parse(a.EndpointID); err != nil {
			bad(".endpoint_id", "webhook needs the id of a webhook endpoint", a.EndpointID)
		} else {
			a.EndpointID = id.String()
		}
		if a.EventType != "" || a.Payload != nil || a.PayloadExpr != "" || a.Status != "" {
			bad("", "webhook takes only an endpoint_id", nil)
		}
	default:
		bad(".type", "unknown action type; one of "+strings.Join(ActionTypes, ", "), a.Type)
	}
	return fields
}

// EndpointCheck reports whether id names a webhook endpoint that exists and
// is not deleted, through q, the transaction that writes the rule; it should
// hold the endpoint's row until that transaction ends. webhook.Referable is one.
type EndpointCheck func(ctx context.Context, q db.Querier, id uuid.UUID) (bool, error)

// requireEndpoints checks that every webhook action names an endpoint that
// exists and is not deleted.
func (s *Service) requireEndpoints(ctx context.Context, tx pgx.Tx, actions []Action) error {
	return RequireEndpoints(ctx, tx, actions, s.endpoints)
}

// RequireEndpoints checks, with check through q, that every webhook action
// among actions names an endpoint a rule may send to, and names each one
// that does not as writing the rule would.
func RequireEndpoints(ctx context.Context, q db.Querier, actions []Action, check EndpointCheck) error {
	var fields []apperr.FieldError
	for i, a := range actions {
		if a.Type != ActionWebhook {
			continue
		}
		ok, err := check(ctx, q, uuid.MustParse(a.EndpointID))
		if err != nil {
			return err
		}
		if !ok {
			fields = append(fields, apperr.FieldError{Location: fmt.Sprintf("body.actions[%d].endpoint_id", i),
				Message: "no webhook endpoint has this id", Value: a.EndpointID})
		}
	}
	if len(fields) > 0 {
		return apperr.InvalidFields("unknown webhook endpoint", fields...)
	}
	return nil
}
