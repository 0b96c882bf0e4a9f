package ctrader_test

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/config"
)

// documentedEnvVars is every environment variable the ctrader binary reads.
// .env.example must document exactly these.
var documentedEnvVars = func() []string {
	var names []string
	for _, v := range config.Vars() {
		names = append(names, v.Env)
	}
	return names
}()

// ctraderServices are the compose services that run the ctrader image.
var ctraderServices = []string{"migrate", "api", "worker"}

const composeDatabaseURL = "postgres://ctrader:ctrader@postgres:5432/ctrader?sslmode=disable"

// loadComposeProject loads compose.yaml from the repository root the way
// `docker compose` would, but hermetically: no variables from the process
// environment or from a developer's .env are used for interpolation, and
// env_file entries are not read.
func loadComposeProject(t *testing.T) *types.Project {
	t.Helper()

	opts, err := cli.NewProjectOptions(
		[]string{"compose.yaml"},
		cli.WithWorkingDirectory("."),
		cli.WithoutEnvironmentResolution,
	)
	require.NoError(t, err)

	project, err := opts.LoadProject(t.Context())
	require.NoError(t, err)
	return project
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	// The Compose Specification has no top-level version; Compose warns on it.
	raw, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	require.NotRegexp(t, `(?m)^version\s*:`, string(raw), "compose.yaml must not have a top-level version key")

	for _, name := range []string{"postgres", "migrate", "api", "worker"} {
		_, err := project.GetService(name)
		require.NoError(t, err, "service %q", name)
	}
}

func TestComposeHealthchecks(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	for _, name := range []string{"postgres", "api", "worker"} {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		require.NotNil(t, svc.HealthCheck, "service %q has no healthcheck", name)
		require.False(t, svc.HealthCheck.Disable, "service %q disables its healthcheck", name)
		require.NotEmpty(t, svc.HealthCheck.Test, "service %q has an empty healthcheck", name)
	}

	// The runtime image has no shell or curl: the ctrader services probe
	// themselves with `ctrader health` in exec form.
	for name, url := range map[string]string{
		"api":    "http://127.0.0.1:8000/readyz",
		"worker": "http://127.0.0.1:8001/readyz",
	} {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		require.Equal(t,
			types.HealthCheckTest{"CMD", "/ctrader", "health", "--url", url},
			svc.HealthCheck.Test, "service %q", name)
	}
}

func TestComposeCtraderEnvironment(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	for _, name := range ctraderServices {
		svc, err := project.GetService(name)
		require.NoError(t, err)

		dsn, ok := svc.Environment["DATABASE_URL"]
		require.True(t, ok, "service %q has no DATABASE_URL", name)
		require.NotNil(t, dsn, "service %q has an unset DATABASE_URL", name)
		require.Equal(t, composeDatabaseURL, *dsn, "service %q", name)

		// .env is optional: `docker compose up` must work without one.
		require.Len(t, svc.EnvFiles, 1, "service %q", name)
		require.Equal(t, ".env", baseName(svc.EnvFiles[0].Path), "service %q", name)
		require.False(t, bool(svc.EnvFiles[0].Required), "service %q must not require .env", name)
	}
}

func TestComposeWorkerIsScalable(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	worker, err := project.GetService("worker")
	require.NoError(t, err)
	require.Empty(t, worker.ContainerName, "a fixed container_name prevents --scale")
	require.Empty(t, worker.Ports, "worker must not publish ports (a fixed host port prevents --scale)")
	require.Equal(t, types.ShellCommand{"worker"}, worker.Command)

	api, err := project.GetService("api")
	require.NoError(t, err)
	require.Equal(t, types.ShellCommand{"serve"}, api.Command)
	require.Len(t, api.Ports, 1)
	require.Equal(t, uint32(8000), api.Ports[0].Target)
	require.Equal(t, "8000", api.Ports[0].Published, "default host port when HTTP_PORT is unset")
}

func TestComposeStartupOrder(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	migrate, err := project.GetService("migrate")
	require.NoError(t, err)
	require.Equal(t, types.ShellCommand{"migrate", "up"}, migrate.Command)
	require.Contains(t, migrate.DependsOn, "postgres")
	require.Equal(t, types.ServiceConditionHealthy, migrate.DependsOn["postgres"].Condition)

	for _, name := range []string{"api", "worker"} {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		require.Contains(t, svc.DependsOn, "migrate", "service %q", name)
		require.Equal(t, types.ServiceConditionCompletedSuccessfully,
			svc.DependsOn["migrate"].Condition, "service %q", name)
	}
}

func TestComposePostgresVolume(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	require.Contains(t, project.Volumes, "pgdata")

	postgres, err := project.GetService("postgres")
	require.NoError(t, err)
	mounted := slices.ContainsFunc(postgres.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume &&
			v.Source == "pgdata" &&
			v.Target == "/var/lib/postgresql/data"
	})
	require.True(t, mounted, "postgres must mount the pgdata volume at /var/lib/postgresql/data")
}

// dockerInstruction is one Dockerfile instruction with continuation lines joined.
type dockerInstruction struct {
	keyword string // upper case, e.g. FROM
	args    string
}

func readDockerfile(t *testing.T) []dockerInstruction {
	t.Helper()

	f, err := os.Open("Dockerfile")
	require.NoError(t, err)
	defer f.Close()

	var (
		out     []dockerInstruction
		pending strings.Builder
	)
	flush := func() {
		line := strings.TrimSpace(pending.String())
		pending.Reset()
		if line == "" {
			return
		}
		keyword, args, _ := strings.Cut(line, " ")
		out = append(out, dockerInstruction{
			keyword: strings.ToUpper(keyword),
			args:    strings.TrimSpace(args),
		})
	}

	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if strings.HasPrefix(line, "#") {
			continue // comments (and the syntax directive) never continue an instruction
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			pending.WriteString(rest)
			pending.WriteString(" ")
			continue
		}
		pending.WriteString(line)
		flush()
	}
	require.NoError(t, scanner.Err())
	flush()
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	instructions := readDockerfile(t)

	lastFrom := -1
	stages := 0
	for i, in := range instructions {
		if in.keyword == "FROM" {
			stages++
			lastFrom = i
		}
	}
	require.GreaterOrEqual(t, stages, 2, "the Dockerfile must be a multi-stage build")

	var builderCGO bool
	for _, in := range instructions[:lastFrom] {
		if (in.keyword == "RUN" || in.keyword == "ENV") && strings.Contains(in.args, "CGO_ENABLED=0") {
			builderCGO = true
		}
	}
	require.True(t, builderCGO, "the binary must be built with CGO_ENABLED=0 for a static runtime image")

	final := instructions[lastFrom:]
	require.NotContains(t, final[0].args, "golang", "the runtime stage must not be the Go toolchain image")

	var user, entrypoint string
	for _, in := range final {
		switch in.keyword {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		}
	}
	require.Contains(t, user, "nonroot", "the runtime stage must run as a non-root user")
	require.Equal(t, `["/ctrader"]`, entrypoint)
}

var envAssignment = regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=`)

func TestEnvExampleDocumentsEveryVariable(t *testing.T) {
	t.Parallel()

	data, err := os.ReadFile(".env.example")
	require.NoError(t, err)

	found := map[string]bool{}
	for line := range strings.Lines(string(data)) {
		if m := envAssignment.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			found[m[1]] = true
		}
	}

	for name := range found {
		require.Contains(t, documentedEnvVars, name, ".env.example mentions a variable ctrader does not read")
	}
	for _, name := range documentedEnvVars {
		require.True(t, found[name], ".env.example does not document %s", name)
	}
}

func baseName(p string) string {
	return p[strings.LastIndexAny(p, `/\`)+1:]
}
