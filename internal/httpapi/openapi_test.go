package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/httpapi"
	"github.com/ctrader/ctrader/internal/jsonvalue"
)

// The committed spec is what clients generate SDKs from: it must be exactly
// what the code serves. Regenerate with `go tool task openapi`.
func TestCommittedSpecMatchesCode(t *testing.T) {
	t.Parallel()
	spec := httpapi.Describe().OpenAPI()

	want31, err := spec.YAML()
	require.NoError(t, err)
	got31, err := os.ReadFile("../../openapi/openapi.yaml")
	require.NoError(t, err)
	require.Equal(t, string(want31), string(got31), "openapi/openapi.yaml is stale: run `go tool task openapi`")

	want30, err := spec.DowngradeYAML()
	require.NoError(t, err)
	got30, err := os.ReadFile("../../openapi/openapi-3.0.yaml")
	require.NoError(t, err)
	require.Equal(t, string(want30), string(got30), "openapi/openapi-3.0.yaml is stale: run `go tool task openapi`")
}

func TestSpecIsValidForGenerators(t *testing.T) {
	t.Parallel()
	data, err := httpapi.Describe().OpenAPI().Downgrade()
	require.NoError(t, err)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))

	seen := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			require.NotEmpty(t, op.OperationID, "%s %s needs an operationId", method, path)
			require.NotContains(t, seen, op.OperationID, "operationId %s is used twice", op.OperationID)
			seen[op.OperationID] = method + " " + path
			require.NotEmpty(t, op.Summary, "%s %s needs a summary", method, path)
		}
	}
}

// The nesting limit is written out in field docs and the README; they must
// say what the code enforces.
func TestNestingLimitIsDocumented(t *testing.T) {
	t.Parallel()
	levels := fmt.Sprintf("%d levels deep", jsonvalue.MaxDepth)
	schemas := httpapi.Describe().OpenAPI().Components.Schemas.Map()
	for schema, field := range map[string]string{
		"EventInput": "payload", "CreateAccountInputBody": "metadata", "RuleAction": "payload",
	} {
		require.Contains(t, schemas[schema].Properties[field].Description, levels, schema)
	}
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	require.Contains(t, string(readme), fmt.Sprintf("may nest at most\n  %d levels", jsonvalue.MaxDepth))
}
