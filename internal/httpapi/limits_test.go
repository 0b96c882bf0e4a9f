package httpapi_test

import (
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/idempotency"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

// Struct tags cannot name constants, so a limit the domain enforces is
// written again in the tag that documents it to clients. The spec must
// say what the code enforces.
func TestSchemaLimitsAreTheDomains(t *testing.T) {
	t.Parallel()
	schemas := httpapi.Describe().OpenAPI().Components.Schemas.Map()
	property := func(schema, name string) *huma.Schema {
		t.Helper()
		require.Contains(t, schemas, schema)
		require.Contains(t, schemas[schema].Properties, name, schema)
		return schemas[schema].Properties[name]
	}
	maxLength := []struct {
		schema, property string
		want             int
	}{
		{"EventInput", "type", event.MaxTypeLength},
		{"RuleAction", "event_type", event.MaxTypeLength},
		{"RuleAction", "payload_expr", rule.MaxExpressionLength},
		{"CreateAccountInputBody", "name", account.MaxNameLength},
		{"CreateRuleInputBody", "name", rule.MaxNameLength},
		{"UpdateRuleInputBody", "name", rule.MaxNameLength},
		{"CreateRuleInputBody", "description", rule.MaxDescriptionLength},
		{"UpdateRuleInputBody", "description", rule.MaxDescriptionLength},
		{"CreateRuleInputBody", "condition", rule.MaxExpressionLength},
		{"TestRuleInputBody", "name", rule.MaxNameLength},
		{"TestRuleInputBody", "description", rule.MaxDescriptionLength},
		{"TestRuleInputBody", "condition", rule.MaxExpressionLength},
		{"TestEvent", "type", event.MaxTypeLength},
		{"TestAccount", "name", account.MaxNameLength},
		{"UpdateRuleInputBody", "condition", rule.MaxExpressionLength},
		{"CreateWebhookEndpointInputBody", "description", webhook.MaxDescriptionLength},
		{"UpdateWebhookEndpointInputBody", "description", webhook.MaxDescriptionLength},
	}
	for _, tt := range maxLength {
		p := property(tt.schema, tt.property)
		require.NotNil(t, p.MaxLength, "%s.%s has no maxLength", tt.schema, tt.property)
		require.Equal(t, tt.want, *p.MaxLength, "%s.%s maxLength", tt.schema, tt.property)
	}
	maxItems := []struct {
		schema, property string
		want             int
	}{
		{"CreateRuleInputBody", "event_types", rule.MaxEventTypes},
		{"UpdateRuleInputBody", "event_types", rule.MaxEventTypes},
		{"CreateRuleInputBody", "actions", rule.MaxActions},
		{"UpdateRuleInputBody", "actions", rule.MaxActions},
		{"TestRuleInputBody", "event_types", rule.MaxEventTypes},
		{"TestRuleInputBody", "actions", rule.MaxActions},
	}
	for _, tt := range maxItems {
		p := property(tt.schema, tt.property)
		require.NotNil(t, p.MaxItems, "%s.%s has no maxItems", tt.schema, tt.property)
		require.Equal(t, tt.want, *p.MaxItems, "%s.%s maxItems", tt.schema, tt.property)
	}
	require.Equal(t, event.TypePattern.String(), property("EventInput", "type").Pattern)
	require.Equal(t, event.TypePattern.String(), property("TestEvent", "type").Pattern)
	depth := property("TestEvent", "depth")
	require.NotNil(t, depth.Maximum)
	require.EqualValues(t, engine.MaxSampleDepth, *depth.Maximum)
}

// Every list has the same page size by default, and every query or header
// parameter with a domain limit documents it.
func TestParameterLimitsAreTheDomains(t *testing.T) {
	t.Parallel()
	lists, keys, types := 0, 0, 0
	for path, item := range httpapi.Describe().OpenAPI().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Post, item.Patch, item.Put, item.Delete} {
			if op == nil {
				continue
			}
			for _, p := range op.Parameters {
				switch {
				case p.In == "query" && p.Name == "limit":
					lists++
					require.EqualValues(t, page.DefaultLimit, p.Schema.Default, "%s limit", path)
				case p.In == "query" && p.Name == "type":
					types++
					require.Equal(t, event.MaxTypeLength, *p.Schema.MaxLength, "%s type", path)
				case p.In == "header" && p.Name == "Idempotency-Key":
					keys++
					require.Equal(t, idempotency.MaxKeyLength, *p.Schema.MaxLength, "%s Idempotency-Key", path)
				}
			}
		}
	}
	require.NotZero(t, lists)
	require.NotZero(t, types)
	require.NotZero(t, keys)
}
