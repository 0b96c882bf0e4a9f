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

// FuzzCompileAndEvaluate holds the bounds of a rule against any condition: it
// is refused when written, or it evaluates to a bool or an error, without a
// panic and well within the deadline. Its seeds (the expressions that once
// stalled evaluation, and ordinary rules) run with every go test; run
// `go test -fuzz FuzzCompileAndEvaluate ./internal/rule/` to search further.
func FuzzCompileAndEvaluate(f *testing.F) {
	for _, seed := range []struct{ condition, s string }{
		{rangeAttack, ""},
		{regexAttack, strings.Repeat("a", 500)},
		{regexAttack, strings.Repeat("a", 9*1024)},
		{replaceAttack, strings.Repeat("a", 600)},
		{`lists.range(30000).distinct().size() > 0`, ""},
		{`event.payload.s.matches(event.payload.s)`, strings.Repeat(".{0,1000}", 100)},
		{`event.payload.s.contains(event.payload.s)`, strings.Repeat("a", 20_000)},
		{`lists.range(10000).map(i, event.payload.s).join('').size() > 0`, strings.Repeat("a", 9*1024)},
		{`lists.range(60).all(i, lists.range(60).all(j, i + j >= 0))`, ""},
		{`event.payload.amount > 1000`, ""},
		{`has(event.payload.tags) && 'vip' in event.payload.tags`, ""},
		{`account.won_total > 10000 && account.status != 'vip'`, ""},
		{`event.payload.s.matches('^[a-z]+$')`, "abc"},
		{`now - event.occurred_at < duration('1h')`, ""},
	} {
		f.Add(seed.condition, seed.s)
	}
	c := newCompiler(f)
	f.Fuzz(func(t *testing.T, condition, s string) {
		start := time.Now()
		fields := c.Check(condition, nil)
		require.Less(t, time.Since(start), 2*time.Second, "checked quickly")
		if len(fields) > 0 {
			return // refused when written
		}
		compiled, err := c.Compile(&rule.Rule{ID: uuid.New(), Version: 1, Condition: condition})
		require.NoError(t, err, "a condition accepted when written compiles when evaluated")
		vars := &rule.Vars{
			Event: rule.Event{Type: "probe", OccurredAt: time.Now(), Payload: map[string]any{
				"s": s, "amount": 1500.0, "tags": []any{"vip", s},
			}},
			Account: rule.Account{Name: "Acme", Status: "active", Metadata: map[string]any{"tier": s}},
			Now:     time.Now(),
		}
		start = time.Now()
		_, _ = compiled.Match(context.Background(), vars) // a bool or an error, never a panic
		require.Less(t, time.Since(start), 2*time.Second)
	})
}
