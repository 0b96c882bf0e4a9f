package rule_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/rule"
)

// BenchmarkMatch measures one condition evaluation from a cached program, the
// CEL cost of every (rule, event) pair.
func BenchmarkMatch(b *testing.B) {
	c, err := rule.NewCompiler()
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, condition string }{
		{"threshold", "event.payload.amount > 1000"},
		{"guarded", "has(event.payload.region) && event.payload.region == 'EU' && account.won_total >= 10000.0"},
		{"time", "now - event.occurred_at < duration('1h') && account.status != 'vip'"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			compiled, err := c.Compile(&rule.Rule{ID: uuid.New(), Version: 1, Condition: tc.condition})
			if err != nil {
				b.Fatal(err)
			}
			vars := &rule.Vars{
				Event:   rule.Event{Type: "won", Payload: map[string]any{"amount": 1500.0, "region": "EU"}, OccurredAt: time.Now()},
				Account: rule.Account{Status: "active", WonTotal: 12000},
				Now:     time.Now(),
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := compiled.Match(ctx, vars); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWorstAccepted measures the slowest conditions the write-time checks
// accept, against the largest inputs the API accepts: what one evaluation can
// cost at most.
func BenchmarkWorstAccepted(b *testing.B) {
	c := newCompiler(b)
	// The largest pattern accepted over a payload string (rule.MaxRegexWork).
	pattern := strings.Repeat("[a-c]?", 70) + "d"
	// Each element "aaa…", within the 32 KiB payload.
	tags := make([]any, 1000)
	for i := range tags {
		tags[i] = strings.Repeat("a", 30)
	}
	vars := &rule.Vars{
		Event: rule.Event{Type: "probe", OccurredAt: time.Now(), Payload: map[string]any{
			"s": strings.Repeat("a", 32*1024-16), "tags": tags,
		}},
		Now: time.Now(),
	}
	for _, tc := range []struct{ name, condition string }{
		{"largest regex over the payload", "event.payload.s.matches('" + pattern + "')"},
		{"nested ranges", "lists.range(300).all(i, lists.range(300).all(j, i + j >= 0))"},
		{"range of 10000", "lists.range(10000).exists(i, i < 0)"},
		{"payload list scan", "event.payload.tags.exists(t, t == 'b')"},
		{"string transforms", "event.payload.s.lowerAscii().upperAscii().lowerAscii().contains('b')"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			if fields := c.Check(tc.condition, nil); len(fields) > 0 {
				b.Fatalf("refused: %s", fields[0].Message)
			}
			compiled, err := c.Compile(&rule.Rule{ID: uuid.New(), Version: 1, Condition: tc.condition})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for b.Loop() {
				if _, err := compiled.Match(ctx, vars); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
