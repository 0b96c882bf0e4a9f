package rule_test

import (
	"context"
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
