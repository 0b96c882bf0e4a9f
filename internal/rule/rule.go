// Package rule is the rule domain: conditions written in CEL over an event,
// its account and the time, with actions to take when they match. Rules are
// versioned; every change makes a new version and evaluations record the
// version they used.
package rule

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/patch"
)

// Limits on input.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 2000
	MaxEventTypes        = 20
	MaxActions           = 10
)

// Errors.
var (
	ErrNotFound  = apperr.New(apperr.NotFound, "rule not found")
	ErrNameTaken = apperr.New(apperr.Conflict, "a rule with this name exists")
	ErrDeleted   = apperr.New(apperr.Conflict, "the rule is deleted")
	ErrDisabled  = apperr.New(apperr.Conflict, "the rule is disabled; enable it to evaluate it")
)

// Rule is one version of a rule.
type Rule struct {
	ID          uuid.UUID
	Name        string
	Description string
	EventTypes  []string // empty: any type (for unscheduled rules)
	Scheduled   bool
	Condition   string
	Actions     []Action
	Enabled     bool
	Version     int
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   *time.Time
}

// Input is a rule's writable fields.
type Input struct {
	Name        string
	Description string
	EventTypes  []string
	Scheduled   bool
	Condition   string
	Actions     []Action
	Enabled     bool
}

// Patch changes some fields; nil fields stay as they are.
type Patch struct {
	Name        *string
	Description *string
	EventTypes  *[]string
	Scheduled   *bool
	Condition   *string
	Actions     *[]Action
	Enabled     *bool
}

func (p Patch) apply(r *Rule) Input {
	in := Input{Name: r.Name, Description: r.Description, EventTypes: r.EventTypes, Scheduled: r.Scheduled,
		Condition: r.Condition, Actions: r.Actions, Enabled: r.Enabled}
	patch.Set(&in.Name, p.Name)
	patch.Set(&in.Description, p.Description)
	patch.Set(&in.EventTypes, p.EventTypes)
	patch.Set(&in.Scheduled, p.Scheduled)
	patch.Set(&in.Condition, p.Condition)
	patch.Set(&in.Actions, p.Actions)
	patch.Set(&in.Enabled, p.Enabled)
	return in
}

func (in Input) equal(r *Rule) bool {
	a, _ := json.Marshal(in.Actions)
	b, _ := json.Marshal(r.Actions)
	return in.Name == r.Name && in.Description == r.Description && slices.Equal(in.EventTypes, r.EventTypes) &&
		in.Scheduled == r.Scheduled && in.Condition == r.Condition && string(a) == string(b) && in.Enabled == r.Enabled
}

// normalize trims and checks in, compiling its expressions, and returns
// their compiled form. A draft (a rule to test, not to store) may have no
// name.
func (c *Compiler) normalize(in *Input, draft bool) (*Compiled, error) {
	var fields []apperr.FieldError
	bad := func(location, msg string, value any) {
		fields = append(fields, apperr.FieldError{Location: location, Message: msg, Value: value})
	}
	in.Name = strings.TrimSpace(in.Name)
	switch n := utf8.RuneCountInString(in.Name); {
	case n == 0 && draft:
	case n == 0:
		bad("body.name", "must not be blank", nil)
	case n > MaxNameLength:
		bad("body.name", fmt.Sprintf("must be at most %d characters", MaxNameLength), nil)
	}
	if utf8.RuneCountInString(in.Description) > MaxDescriptionLength {
		bad("body.description", fmt.Sprintf("must be at most %d characters", MaxDescriptionLength), nil)
	}
	if in.EventTypes == nil {
		in.EventTypes = []string{}
	}
	if len(in.EventTypes) > MaxEventTypes {
		bad("body.event_types", fmt.Sprintf("at most %d types", MaxEventTypes), nil)
	}
	for i, t := range in.EventTypes {
		if len(t) == 0 || len(t) > event.MaxTypeLength || !event.TypePattern.MatchString(t) {
			bad(fmt.Sprintf("body.event_types[%d]", i), "not a valid event type", t)
		}
	}
	slices.Sort(in.EventTypes)
	in.EventTypes = slices.Compact(in.EventTypes)
	if in.Actions == nil {
		in.Actions = []Action{}
	}
	if len(in.Actions) > MaxActions {
		bad("body.actions", fmt.Sprintf("at most %d actions", MaxActions), nil)
	}
	for i := range in.Actions {
		fields = append(fields, checkAction(&in.Actions[i], fmt.Sprintf("body.actions[%d]", i))...)
	}
	compiled, celFields := c.compile(in.Condition, in.Actions, "body", true)
	fields = append(fields, celFields...)
	if len(fields) > 0 {
		return nil, apperr.InvalidFields("invalid rule", fields...)
	}
	return compiled, nil
}

func wrap(action string, err error) error {
	if code, constraint := db.ConstraintOf(err); code == db.CodeUniqueViolation && constraint == "rules_name_key" {
		return ErrNameTaken
	}
	return db.Wrap(action, err, ErrNotFound)
}
