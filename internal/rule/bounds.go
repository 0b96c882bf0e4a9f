package rule

import (
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/event"
)

// Caps on what one built-in call may build or do. cel-go charges a call's
// cost only after the call returns, and looks at the deadline only between
// the steps of a comprehension, so without these a single call (a huge
// range, a quadratic distinct, a replace that multiplies a string, a regex
// with a large program) runs unbounded. A call that would pass a cap fails
// before it does the work; the evaluation records the error.
const (
	// MaxListSize bounds a list a built-in builds (lists.range, +, map,
	// flatten, split ...).
	MaxListSize = 10_000
	// MaxStringBytes bounds a string or bytes value a built-in builds.
	MaxStringBytes = 64 * 1024
	// MaxPairwiseWork bounds the element comparisons of one call that
	// compares every element with every other: distinct, hasAll, hasAny,
	// hasOnly, hasExactly.
	MaxPairwiseWork = 1_000_000
	// MaxRegexProgramSize bounds the compiled size of a regular expression
	// (instructions of Go's regexp program); matching costs up to this times
	// the input's length.
	MaxRegexProgramSize = 1_000
	// MaxRegexWork bounds a regex's program size times the length of the
	// string it matches (about 10 ns each): a pattern of 150 instructions
	// over a 32 KiB payload string, of 1,000 over an account name.
	MaxRegexWork = 5_000_000
)

// Size hints for the write-time estimate: what a condition can reach is at
// most this large.
const (
	uuidLength   = 36
	statusLength = 32
	// elementShare divides a document's byte limit to size each element of
	// a list or map inside it. The estimator sizes values one by one, so it
	// would take every element of a list to be as large as the whole
	// document; the document bounds their sum instead. This makes the
	// estimate optimistic only for work superlinear in one large element,
	// which the caps and the runtime cost limit still bound.
	elementShare = 32
)

// sizeHints is the cost.Estimator of the write-time check: it knows how large
// the inputs of an evaluation can be, from the limits the API puts on them.
type sizeHints struct{}

// EstimateSize bounds strings, lists and maps reached through the event and
// the account.
func (sizeHints) EstimateSize(node cost.AstNode) *cost.SizeEstimate {
	path := node.Path()
	if len(path) < 2 {
		return nil
	}
	var limit uint64
	switch path[0] + "." + path[1] {
	case "event.payload":
		limit = event.MaxPayloadBytes
	case "account.metadata":
		limit = account.MaxMetadataBytes
	case "event.type":
		limit = event.MaxTypeLength
	case "account.name":
		limit = account.MaxNameLength
	case "account.status":
		limit = statusLength
	case "event.id", "event.account_id", "event.causation_id", "account.id":
		limit = uuidLength
	default:
		return nil
	}
	switch {
	case slices.ContainsFunc(path[2:], func(p string) bool { return strings.HasPrefix(p, "@") }):
		limit /= elementShare
	case node.Type().Kind() == types.ListKind || node.Type().Kind() == types.MapKind:
		// Each element takes at least two bytes of JSON ("0,").
		limit /= 2
	}
	size := cost.RangedSizeEstimate(0, limit)
	return &size
}

// EstimateCallCost prices the calls cel-go has no estimate of its own for
// (format and strings.quote): linear in what they read. Overloads with a
// cost model of their own never reach it.
func (sizeHints) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	switch overloadID {
	case "string_format", "strings.quote":
		var in cost.SizeEstimate
		if target != nil {
			in = cost.EstimateSize(sizeHints{}, *target)
		}
		for _, a := range args {
			in = in.Add(totalSize(cost.EstimateSize(sizeHints{}, a)))
		}
		out := cost.RangedSizeEstimate(0, min(in.Max*2+1, MaxStringBytes))
		return cost.NewCallEstimate(cost.FixedCostEstimate(1).Add(in.MultiplyByCostFactor(0.1)), &out)
	}
	return nil
}

// totalSize is the size of a value together with its elements.
func totalSize(s cost.SizeEstimate) cost.SizeEstimate {
	if s.Elem != nil {
		s = s.Add(s.Multiply(totalSize(*s.Elem)))
	}
	return s
}

// checkCost refuses an expression whose worst-case cost, over any input the
// API accepts, exceeds CostLimit.
func (c *Compiler) checkCost(ast *cel.Ast) string {
	est, err := c.env.EstimateCost(ast, sizeHints{})
	if err != nil {
		return fmt.Sprintf("cannot estimate its cost: %v", err)
	}
	if est.Max > CostLimit {
		return fmt.Sprintf("estimated worst-case cost %d exceeds the limit of %d; "+
			"bound what it iterates over, builds or matches (a range, a nested loop over the payload, a replace that grows a string)",
			est.Max, CostLimit)
	}
	return ""
}

// boundedOverloads redefines, with the same signatures, the overloads whose
// work is not linear in their arguments: each checks its arguments before
// doing the work. cel-go allows an overload's implementation to be replaced
// this way.
func boundedOverloads(env *cel.Env) ([]cel.EnvOption, error) {
	checks := map[string]func(args []ref.Val) error{
		"string_replace_string_string":     checkReplace,
		"string_replace_string_string_int": checkReplace,
		"list_join":                        checkJoin("join"),
		"list_join_string":                 checkJoin("join"),
		"string_format":                    checkFormat,
		"list_distinct":                    checkPairwise("distinct", false),
		"list_hasOnly_list":                checkPairwise("hasOnly", true),
		"list_hasAny_list":                 checkPairwise("hasAny", true),
		"list_hasAll_list":                 checkPairwise("hasAll", true),
		"list_hasExactly_list":             checkPairwise("hasExactly", true),
	}
	var opts []cel.EnvOption
	for name, fn := range env.Functions() {
		bindings, err := fn.Bindings()
		if err != nil {
			return nil, fmt.Errorf("bindings of %s: %w", name, err)
		}
		impl := make(map[string]func(args ...ref.Val) ref.Val, len(bindings))
		for _, b := range bindings {
			impl[b.Operator] = callOf(b.Unary, b.Binary, b.Function)
		}
		for _, o := range fn.OverloadDecls() {
			check, ok := checks[o.ID()]
			if !ok {
				continue
			}
			call := impl[o.ID()]
			if call == nil {
				return nil, fmt.Errorf("overload %s has no implementation to bound", o.ID())
			}
			delete(checks, o.ID())
			binding := cel.FunctionBinding(func(args ...ref.Val) ref.Val {
				if err := check(args); err != nil {
					return types.WrapErr(err)
				}
				return call(args...)
			})
			var decl cel.FunctionOpt
			if o.IsMemberFunction() {
				decl = cel.MemberOverload(o.ID(), o.ArgTypes(), o.ResultType(), binding)
			} else {
				decl = cel.Overload(o.ID(), o.ArgTypes(), o.ResultType(), binding)
			}
			opts = append(opts, cel.Function(name, decl))
		}
	}
	for id := range checks {
		return nil, fmt.Errorf("overload %s to bound is not in the environment", id)
	}
	return opts, nil
}

func callOf(unary func(ref.Val) ref.Val, binary func(ref.Val, ref.Val) ref.Val, fn func(...ref.Val) ref.Val) func(args ...ref.Val) ref.Val {
	switch {
	case fn != nil:
		return fn
	case binary != nil:
		return func(args ...ref.Val) ref.Val { return binary(args[0], args[1]) }
	case unary != nil:
		return func(args ...ref.Val) ref.Val { return unary(args[0]) }
	}
	return nil
}

// regexLiterals checks literal patterns when an expression is compiled: it
// refuses a matches call whose pattern's program passes MaxRegexProgramSize,
// or whose program times the largest string it can be matched against passes
// MaxRegexWork.
type regexLiterals struct{}

func (regexLiterals) Name() string { return "ctrader.regex_literals" }

func (regexLiterals) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *celast.AST, iss *cel.Issues) {
	for _, call := range celast.MatchDescendants(celast.NavigateAST(a), celast.FunctionMatcher(overloads.Matches)) {
		c := call.AsCall()
		args := c.Args()
		pattern, input := args[len(args)-1], c.Target()
		if !c.IsMemberFunction() {
			input = args[0]
		}
		if pattern.Kind() != celast.LiteralKind {
			continue
		}
		p, ok := pattern.AsLiteral().(types.String)
		if !ok {
			continue
		}
		if err := checkPattern(string(p), inputLimit(input)); err != nil {
			iss.ReportErrorAtID(pattern.ID(), "%v", err)
		}
	}
}

// inputLimit is the largest string e can be: what the API accepts for the
// field it selects, else the largest string a call may build.
func inputLimit(e celast.Expr) int {
	var path []string
	for e.Kind() == celast.SelectKind {
		path = append([]string{e.AsSelect().FieldName()}, path...)
		e = e.AsSelect().Operand()
	}
	if e.Kind() != celast.IdentKind || len(path) == 0 {
		return MaxStringBytes
	}
	path = append([]string{e.AsIdent()}, path...)
	if size := (sizeHints{}).EstimateSize(cost.NewAstNode(nil, path, types.StringType, nil)); size != nil {
		return int(size.Max)
	}
	return MaxStringBytes
}

// checkRegex checks a pattern computed at evaluation time against the string
// it is to match. matches has one binding for all its overloads, which
// cel-go does not let an environment redefine, so capResults puts it in
// front of the match instead.
func checkRegex(args []ref.Val) error {
	s, okS := args[0].(types.String)
	pattern, okP := args[1].(types.String)
	if !okS || !okP {
		return nil
	}
	return checkPattern(string(pattern), len(s))
}

// checkPattern refuses a pattern whose program passes MaxRegexProgramSize,
// or which would take more than MaxRegexWork steps over input bytes: Go's
// regexp matches in time proportional to both. Compiling a pattern such as
// .{0,1000} repeated a hundred times takes most of a second by itself, so a
// quick reckoning of the parsed pattern refuses the clearly too large before
// the exact count. cel-go's RegexProgramSizeLimit compiles every pattern in
// full first.
func checkPattern(pattern string, input int) error {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil // the match reports the error
	}
	size := regexSize(re)
	if size <= 4*MaxRegexProgramSize {
		if exact, err := types.RegexProgramSize(pattern); err == nil {
			size = exact
		}
	}
	if size > MaxRegexProgramSize {
		return fmt.Errorf("matches: regex program size %d exceeds the limit of %d", size, MaxRegexProgramSize)
	}
	if work := size * max(input, 1); work > MaxRegexWork {
		return fmt.Errorf("matches: regex program size %d over a string of up to %d bytes exceeds the limit of %d steps; use a simpler pattern",
			size, input, MaxRegexWork)
	}
	return nil
}

// regexSize reckons the instructions of re's program without expanding its
// repetitions, saturating at a large bound.
func regexSize(re *syntax.Regexp) int {
	const ceiling = 1 << 30
	switch re.Op {
	case syntax.OpRepeat:
		n := re.Max
		if n < 0 {
			n = re.Min + 1
		}
		return min(ceiling, max(n, 1)*(regexSize(re.Sub[0])+1))
	case syntax.OpLiteral:
		return len(re.Rune)
	}
	n := 1
	for _, sub := range re.Sub {
		n = min(ceiling, n+regexSize(sub)+1)
	}
	return n
}

// checkReplace refuses a replace whose result would pass MaxStringBytes.
func checkReplace(args []ref.Val) error {
	s, okS := args[0].(types.String)
	old, okO := args[1].(types.String)
	repl, okR := args[2].(types.String)
	if !okS || !okO || !okR {
		return nil
	}
	n := strings.Count(string(s), string(old))
	if len(args) == 4 {
		if limit, ok := args[3].(types.Int); ok && limit >= 0 {
			n = min(n, int(limit))
		}
	}
	if size := len(s) + n*(len(repl)-len(old)); size > MaxStringBytes {
		return fmt.Errorf("replace: result of %d bytes exceeds the limit of %d", size, MaxStringBytes)
	}
	return nil
}

// checkJoin refuses a join whose result would pass MaxStringBytes.
func checkJoin(function string) func(args []ref.Val) error {
	return func(args []ref.Val) error {
		size := valueBytes(args[0])
		if len(args) == 2 {
			if list, ok := args[0].(traits.Lister); ok {
				if n, ok := list.Size().(types.Int); ok && n > 0 {
					size += (int(n) - 1) * valueBytes(args[1])
				}
			}
		}
		if size > MaxStringBytes {
			return fmt.Errorf("%s: result of at least %d bytes exceeds the limit of %d", function, size, MaxStringBytes)
		}
		return nil
	}
}

// checkFormat refuses a format whose arguments alone pass MaxStringBytes.
func checkFormat(args []ref.Val) error {
	if size := valueBytes(args[0]) + valueBytes(args[1]); size > MaxStringBytes {
		return fmt.Errorf("format: result of at least %d bytes exceeds the limit of %d", size, MaxStringBytes)
	}
	return nil
}

// checkPairwise refuses a call that compares every element of one list with
// every element of another (or of itself) when that passes MaxPairwiseWork.
func checkPairwise(function string, two bool) func(args []ref.Val) error {
	return func(args []ref.Val) error {
		a := listSize(args[0])
		b := a
		if two {
			b = listSize(args[1])
		}
		if a*b > MaxPairwiseWork {
			return fmt.Errorf("%s: %d × %d element comparisons exceed the limit of %d", function, a, b, MaxPairwiseWork)
		}
		return nil
	}
}

func listSize(v ref.Val) int {
	if list, ok := v.(traits.Lister); ok {
		if n, ok := list.Size().(types.Int); ok {
			return int(n)
		}
	}
	return 0
}

// valueBytes is the number of bytes of the strings and bytes in v, counting
// into lists and maps, stopping once it passes MaxStringBytes.
func valueBytes(v ref.Val) int {
	switch v := v.(type) {
	case types.String:
		return len(v)
	case types.Bytes:
		return len(v)
	case traits.Lister:
		total := 0
		for it := v.Iterator(); it.HasNext() == types.True && total <= MaxStringBytes; {
			total += valueBytes(it.Next()) + 1
		}
		return total
	case traits.Mapper:
		total := 0
		for it := v.Iterator(); it.HasNext() == types.True && total <= MaxStringBytes; {
			k := it.Next()
			total += valueBytes(k) + valueBytes(v.Get(k)) + 2
		}
		return total
	}
	return 0
}

// capResults is a decorator that fails any call whose result is a string or
// bytes over MaxStringBytes or a list or map over MaxListSize: the calls it
// checks after the fact do work linear in their arguments, so only their
// growth, compounded over calls, needs the cap. It also checks the patterns
// of matches calls whose pattern is not a literal.
func capResults(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	call, ok := i.(interpreter.InterpretableCall)
	if !ok {
		return i, nil
	}
	if args := call.Args(); call.Function() == overloads.Matches && len(args) == 2 {
		if _, literal := args[1].(interpreter.InterpretableConst); !literal {
			return interpreter.NewCall(call.ID(), call.Function(), call.OverloadID(), args, boundedMatch), nil
		}
		return i, nil
	}
	return &cappedCall{InterpretableCall: call}, nil
}

// boundedMatch is matches with checkRegex in front.
func boundedMatch(args ...ref.Val) ref.Val {
	if err := checkRegex(args); err != nil {
		return types.WrapErr(err)
	}
	m, ok := args[0].(traits.Matcher)
	if !ok {
		return types.MaybeNoSuchOverloadErr(args[0])
	}
	return m.Match(args[1])
}

type cappedCall struct {
	interpreter.InterpretableCall
}

func (c *cappedCall) Eval(vars interpreter.Activation) ref.Val {
	return c.check(c.InterpretableCall.Eval(vars))
}

func (c *cappedCall) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	return c.check(c.InterpretableCall.Exec(frame))
}

func (c *cappedCall) check(v ref.Val) ref.Val {
	var size, limit int
	var what string
	switch v := v.(type) {
	case types.String:
		size, limit, what = len(v), MaxStringBytes, "string of %d bytes"
	case types.Bytes:
		size, limit, what = len(v), MaxStringBytes, "bytes of %d bytes"
	case traits.Lister:
		size, limit, what = listSize(v), MaxListSize, "list of %d elements"
	case traits.Mapper:
		if n, ok := v.Size().(types.Int); ok {
			size, limit, what = int(n), MaxListSize, "map of %d entries"
		}
	}
	if size > limit {
		return types.NewErr("%s: result %s exceeds the limit of %d", functionName(c.Function()), fmt.Sprintf(what, size), limit)
	}
	return v
}

func functionName(fn string) string {
	return strings.Trim(fn, "_@")
}
