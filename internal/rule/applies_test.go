package rule_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/rule"
)

func TestAppliesTo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		types     []string
		scheduled bool
		eventType string
		want      bool
	}{
		{"named type", []string{"won", "lost"}, false, "won", true},
		{"other type", []string{"won", "lost"}, false, "login", false},
		{"no types: every type", nil, false, "login", true},
		{"scheduled without types: no event", nil, true, "won", false},
		{"scheduled with types: those", []string{"won"}, true, "won", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &rule.Rule{EventTypes: tc.types, Scheduled: tc.scheduled, Enabled: true}
			require.Equal(t, tc.want, r.AppliesTo(tc.eventType))
		})
	}
}
