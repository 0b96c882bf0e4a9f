package ctrader_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The committed client must be what the pinned generator makes of the
// committed spec, with the committed configuration: a client that drifted
// would call operations as they were, not as they are.
func TestGeneratedClientIsCurrent(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out := filepath.Join(t.TempDir(), "client.gen.go")
	cmd := exec.Command(goTool, "tool", "oapi-codegen", "-config", "oapi-codegen.yaml", "-o", out, "../../../openapi/openapi-3.0.yaml")
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "oapi-codegen: %s", msg)

	want, err := os.ReadFile(out)
	require.NoError(t, err)
	got, err := os.ReadFile("client.gen.go")
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "sdk/go/ctrader/client.gen.go is stale: run `go tool task sdk`")
}
