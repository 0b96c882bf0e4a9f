package rule_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/rule"
)

// The expressions of the report that one rule stalled event processing:
// each spent its time inside one built-in call, where neither the cost limit
// nor the deadline looked.
var (
	rangeAttack   = `lists.range(60000).distinct().size() > 0`
	regexAttack   = `event.payload.s.matches('` + strings.Repeat(`.{0,1000}`, 100) + `b')`
	replaceAttack = `event.payload.s.replace('a', event.payload.s).replace('a', event.payload.s).replace('a', event.payload.s).size() > 0`
)

func newCompiler(t testing.TB) *rule.Compiler {
	t.Helper()
	c, err := rule.NewCompiler()
	require.NoError(t, err)
	return c
}

func TestCheckRefusesWhatCannotBeBounded(t *testing.T) {
	t.Parallel()
	c := newCompiler(t)
	for _, tc := range []struct {
		name, condition, payloadExpr, location, message string
	}{
		{"range and distinct", rangeAttack, "", "body.condition", "estimated worst-case cost"},
		{"replace chain", replaceAttack, "", "body.condition", "estimated worst-case cost"},
		{"large regex program", regexAttack, "", "body.condition", "regex program size"},
		{"regex too large for the payload", `event.payload.s.matches('[a-c]{0,450}d')`, "", "body.condition", "exceeds the limit of 5000000 steps"},
		{"nested loops over the payload", `event.payload.a.all(x, event.payload.b.exists(y, x == y))`, "", "body.condition", "estimated worst-case cost"},
		{"payload expression", "true", `{'s': event.payload.s.replace('a', event.payload.s)}`, "body.actions[0].payload_expr", "estimated worst-case cost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var actions []rule.Action
			if tc.payloadExpr != "" {
				actions = []rule.Action{{Type: rule.ActionEmitEvent, EventType: "x", PayloadExpr: tc.payloadExpr}}
			}
			fields := c.Check(tc.condition, actions)
			require.Len(t, fields, 1)
			require.Equal(t, tc.location, fields[0].Location)
			require.Contains(t, fields[0].Message, tc.message)
		})
	}
}

func TestCheckAcceptsOrdinaryRules(t *testing.T) {
	t.Parallel()
	c := newCompiler(t)
	for _, condition := range []string{
		`true`,
		`event.payload.amount > 1000`,
		`has(event.payload.tags) && 'vip' in event.payload.tags`,
		`account.won_total > 10000 && account.status != 'vip'`,
		`account.won_total >= 10000 && account.status != 'vip'`,
		`account.won_count == 2 && account.won_total == 300.0`,
		`event.payload.s.matches('^[a-z]+$')`,
		`has(event.payload.region) && event.payload.region == 'EU'`,
		`has(event.payload.region) && event.payload.region == 'EU' && account.won_total >= 10000.0`,
		`now - event.occurred_at < duration('1h')`,
		`now - event.occurred_at < duration('1h') && account.status != 'vip'`,
		`event.payload.s.contains('abc')`,
		`event.type.startsWith('won') && account.name.lowerAscii().contains('acme')`,
		`event.payload.items.exists(i, i.sku == 'A1' && i.qty > 2)`,
		`size(event.payload.tags) > 3 && 'gold' in event.payload.tags`,
		`has(account.metadata.tier) && account.metadata.tier in ['gold', 'platinum']`,
		`math.greatest([event.payload.amount, 10]) > 100`,
		`lists.range(10).exists(i, i == event.depth)`,
		`event.payload.email.matches('^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$')`,
		`'%s-%d'.format([event.type, event.depth]).size() < 200`,
		`account.name.matches('[a-c]{0,450}d')`,
	} {
		require.Empty(t, c.Check(condition, nil), condition)
	}
	require.Empty(t, c.Check("true", []rule.Action{{Type: rule.ActionEmitEvent, EventType: "x",
		PayloadExpr: `{'amount': event.payload.amount * 2, 'who': account.name, 'note': event.payload.s.upperAscii()}`}}))
}

// A rule stored before the write-time checks existed still compiles when it
// is evaluated; the caps inside the built-ins bound it instead.
func TestBuiltinsAreCappedWhenEvaluated(t *testing.T) {
	t.Parallel()
	c := newCompiler(t)
	long := strings.Repeat("a", 9*1024) + "c"
	for _, tc := range []struct {
		name, condition, message string
		payload                  map[string]any
	}{
		{"range", rangeAttack, "lists.range", nil},
		// The cost tracker charges these by their arguments once they return
		// the cap's error: either message says the call was refused.
		{"distinct", `lists.range(10000).distinct().size() > 0`, "distinct|cost limit", nil},
		{"set comparison", `lists.range(10000).hasAll(lists.range(10000))`, "hasAll|cost limit", nil},
		{"replace chain", replaceAttack, "replace", map[string]any{"s": strings.Repeat("a", 500)}},
		{"join", `lists.range(10000).map(i, event.payload.s).join('').size() > 0`, "join", map[string]any{"s": long}},
		{"format", `'%s'.format([lists.range(10000).map(i, event.payload.s)]).size() > 0`, "format", map[string]any{"s": long}},
		{"concatenation", `[event.payload.s].map(s, s + s).map(s, s + s).map(s, s + s).map(s, s + s).size() > 0`, "string of", map[string]any{"s": long}},
		{"regex literal", regexAttack, "regex program size", map[string]any{"s": strings.Repeat("a", 500)}},
		{"regex from the payload", `event.payload.s.matches(event.payload.p)`, "regex program size",
			map[string]any{"s": long, "p": strings.Repeat(`.{0,1000}`, 100) + "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			compiled, err := c.Compile(&rule.Rule{ID: uuid.New(), Version: 1, Condition: tc.condition})
			if err != nil {
				// Refused even when compiled for evaluation: bounded too.
				require.Regexp(t, tc.message, err.Error())
				return
			}
			vars := &rule.Vars{Event: rule.Event{Type: "probe", Payload: tc.payload}}
			start := time.Now()
			matched, err := compiled.Match(context.Background(), vars)
			elapsed := time.Since(start)
			require.Error(t, err)
			require.False(t, matched)
			require.Regexp(t, tc.message, err.Error())
			// Generous: these took from half a second to 39 s before.
			require.Less(t, elapsed, 2*time.Second)
		})
	}
}
