package rule

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ctrader/ctrader/internal/apperr"
)

// Limits on evaluating conditions and payload expressions.
const (
	// CostLimit bounds the work of one evaluation in CEL's cost units (about
	// one per operation); a condition that exceeds it fails with an error.
	CostLimit = 1_000_000
	// EvalTimeout bounds the wall time of one evaluation.
	EvalTimeout = time.Second
	// MaxExpressionLength bounds a condition or payload expression.
	MaxExpressionLength = 4096
	// cacheSize bounds the number of compiled rule versions kept in memory.
	cacheSize = 10_000
)

// Event is an event as conditions see it: `event.type`, `event.payload.amount`.
// For scheduled and manual evaluations it is empty.
type Event struct {
	ID          string         `json:"id"`
	Type        string         `json:"type"`
	Payload     map[string]any `json:"payload"`
	OccurredAt  time.Time      `json:"occurred_at"`
	AccountID   string         `json:"account_id"`
	Depth       int            `json:"depth"`
	CausationID string         `json:"causation_id"`
}

// Account is an account as conditions see it: `account.won_total > 10000`.
type Account struct {
	ID        string         `json:"id"`
	Name      string         `json:"name"`
	Status    string         `json:"status"`
	WonCount  int64          `json:"won_count"`
	WonTotal  float64        `json:"won_total"`
	Metadata  map[string]any `json:"metadata"`
	CreatedAt time.Time      `json:"created_at"`
}

// Vars are the variables of one evaluation.
type Vars struct {
	Event   Event
	Account Account
	Now     time.Time
}

func (v *Vars) activation() map[string]any {
	return map[string]any{"event": v.Event, "account": v.Account, "now": v.Now}
}

// Compiler checks and compiles conditions and payload expressions, and keeps
// the compiled programs of each rule version.
type Compiler struct {
	env *cel.Env

	mu    sync.RWMutex
	cache map[cacheKey]*Compiled
}

type cacheKey struct {
	id      uuid.UUID
	version int
}

// NewCompiler returns a compiler with ctrader's CEL environment: variables
// event, account and now, and the standard extensions for strings, math and
// lists.
func NewCompiler() (*Compiler, error) {
	env, err := cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[Event](), reflect.TypeFor[Account](), ext.ParseStructTag("json")),
		cel.Variable("event", cel.ObjectType("rule.Event")),
		cel.Variable("account", cel.ObjectType("rule.Account")),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(),
		ext.Math(),
		ext.Lists(ext.ListsMaxRangeSize(MaxListSize)),
		cel.CrossTypeNumericComparisons(true),
		// Literal patterns are checked when an expression is compiled;
		// checkRegex checks the others. cel-go's RegexProgramSizeLimit
		// would compile every pattern in full first, which takes most of a
		// second for the largest.
		cel.ASTValidators(regexLiterals{}),
	)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	bounded, err := boundedOverloads(env)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	if env, err = env.Extend(bounded...); err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	return &Compiler{env: env, cache: make(map[cacheKey]*Compiled)}, nil
}

// Compiled is a rule version ready to evaluate.
type Compiled struct {
	condition cel.Program
	payloads  []cel.Program // per action; nil where the payload is static
}

// program compiles src; strict adds the checks of a rule being written, which
// a stored rule is not held to again.
func (c *Compiler) program(src string, want *cel.Type, location string, strict bool) (cel.Program, *apperr.FieldError) {
	if strings.TrimSpace(src) == "" {
		return nil, &apperr.FieldError{Location: location, Message: "must not be empty"}
	}
	if len(src) > MaxExpressionLength {
		return nil, &apperr.FieldError{Location: location, Message: fmt.Sprintf("must be at most %d characters", MaxExpressionLength)}
	}
	ast, iss := c.env.Compile(src)
	if iss.Err() != nil {
		first := iss.Errors()[0]
		loc := first.Location
		return nil, &apperr.FieldError{Location: location,
			Message: fmt.Sprintf("line %d, column %d: %s", loc.Line(), loc.Column()+1, first.Message),
			Value:   apperr.Position{Line: loc.Line(), Column: loc.Column() + 1, Message: first.Message}}
	}
	if out := ast.OutputType(); !want.IsAssignableType(out) && out != cel.DynType {
		return nil, &apperr.FieldError{Location: location,
			Message: fmt.Sprintf("must evaluate to %s, not %s", want, out)}
	}
	if strict {
		if msg := c.checkCost(ast); msg != "" {
			return nil, &apperr.FieldError{Location: location, Message: msg}
		}
	}
	prg, err := c.env.Program(ast,
		cel.CostLimit(CostLimit),
		cel.InterruptCheckFrequency(100),
		cel.CustomDecoratorV2(capResults),
	)
	if err != nil {
		return nil, &apperr.FieldError{Location: location, Message: err.Error()}
	}
	return prg, nil
}

// compile checks a condition and actions; location prefixes errors. strict
// is for a rule being written (see program).
func (c *Compiler) compile(condition string, actions []Action, location string, strict bool) (*Compiled, []apperr.FieldError) {
	var fields []apperr.FieldError
	out := &Compiled{payloads: make([]cel.Program, len(actions))}
	prg, ferr := c.program(condition, cel.BoolType, location+".condition", strict)
	if ferr != nil {
		fields = append(fields, *ferr)
	}
	out.condition = prg
	for i, a := range actions {
		if a.Type != ActionEmitEvent || a.PayloadExpr == "" {
			continue
		}
		prg, ferr := c.program(a.PayloadExpr, cel.MapType(cel.StringType, cel.DynType), fmt.Sprintf("%s.actions[%d].payload_expr", location, i), strict)
		if ferr != nil {
			fields = append(fields, *ferr)
		}
		out.payloads[i] = prg
	}
	return out, fields
}

// Compile returns the compiled form of r, from the cache when this version
// was compiled before.
func (c *Compiler) Compile(r *Rule) (*Compiled, error) {
	key := cacheKey{r.ID, r.Version}
	c.mu.RLock()
	compiled, ok := c.cache[key]
	c.mu.RUnlock()
	if ok {
		return compiled, nil
	}
	compiled, fields := c.compile(r.Condition, r.Actions, "rule", false)
	if len(fields) > 0 {
		return nil, fmt.Errorf("rule %s version %d does not compile: %s", r.ID, r.Version, fields[0].Message)
	}
	c.mu.Lock()
	if len(c.cache) >= cacheSize {
		clear(c.cache)
	}
	c.cache[key] = compiled
	c.mu.Unlock()
	return compiled, nil
}

// Match evaluates the condition. An error (a missing key, the cost limit, the
// deadline) is the evaluation's outcome, not a reason to retry.
func (p *Compiled) Match(ctx context.Context, vars *Vars) (bool, error) {
	matched, _, err := p.MatchCost(ctx, vars)
	return matched, err
}

// MatchCost is Match that also reports the cost the condition used, in
// CostLimit's units, up to where it stopped. The cost limit tracks it
// anyway: reading it costs nothing more.
func (p *Compiled) MatchCost(ctx context.Context, vars *Vars) (bool, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, EvalTimeout)
	defer cancel()
	out, details, err := p.condition.ContextEval(ctx, vars.activation())
	var cost uint64
	if c := details.ActualCost(); c != nil {
		cost = *c
	}
	if err != nil {
		return false, cost, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, cost, fmt.Errorf("condition evaluated to %s, not bool", out.Type())
	}
	return bool(b), cost, nil
}

// Payload evaluates the payload expression of action i, or returns its static
// payload.
func (p *Compiled) Payload(ctx context.Context, i int, a Action, vars *Vars) (map[string]any, error) {
	if p.payloads[i] == nil {
		return a.Payload, nil
	}
	ctx, cancel := context.WithTimeout(ctx, EvalTimeout)
	defer cancel()
	out, _, err := p.payloads[i].ContextEval(ctx, vars.activation())
	if err != nil {
		return nil, err
	}
	native, err := out.ConvertToNative(reflect.TypeFor[*structpb.Struct]())
	if err != nil {
		return nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	return native.(*structpb.Struct).AsMap(), nil
}
