package ctrader_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
	if line, w, g, differ := firstDifference(string(want), string(got)); differ {
		t.Fatalf("sdk/go/ctrader/client.gen.go is stale: run `go tool task sdk`\nfirst difference at line %d:\n  generated: %q\n  committed: %q", line, w, g)
	}
}

// firstDifference finds the first line where want and got differ, and the
// two lines there (empty past the end of either).
func firstDifference(want, got string) (line int, w, g string, differ bool) {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		w, g = "", ""
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g || i >= len(wl) || i >= len(gl) {
			return i + 1, w, g, true
		}
	}
	return 0, "", "", false
}
