package ctrader_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/errdefs"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

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

// defaultServices run on a plain `docker compose up`.
var defaultServices = []string{"postgres", "migrate", "api", "worker"}

// monitoringServices run only with `docker compose --profile monitoring up`.
var monitoringServices = []string{"prometheus", "grafana"}

const monitoringProfile = "monitoring"

// loadComposeProject loads compose.yaml from the repository root the way
// `docker compose` would, but hermetically: no variables from the process
// environment or from a developer's .env are used for interpolation, and
// env_file entries are not read. profiles are the active profiles, as with
// `docker compose --profile`.
func loadComposeProject(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	project, err := loadCompose(t, requiredSecrets, profiles...)
	require.NoError(t, err)
	return project
}

// requiredSecrets are what an operator must put in .env before the stack
// starts: without them the API would listen unprotected.
var requiredSecrets = []string{
	"AUTH_HS256_SECRET=0123456789abcdef0123456789abcdef",
	"UI_PASSWORD=secret-for-tests",
}

func loadCompose(t *testing.T, env []string, profiles ...string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions(
		[]string{"compose.yaml"},
		cli.WithWorkingDirectory("."),
		cli.WithoutEnvironmentResolution,
		cli.WithEnv(env),
		cli.WithProfiles(profiles),
	)
	require.NoError(t, err)
	return opts.LoadProject(t.Context())
}

func TestComposeRefusesAnUnprotectedStack(t *testing.T) {
	t.Parallel()
	_, err := loadCompose(t, nil)
	require.ErrorContains(t, err, "set AUTH_HS256_SECRET in .env")
	require.ErrorContains(t, err, "set UI_PASSWORD in .env")

	project := loadComposeProject(t)
	for _, name := range []string{"api", "worker"} {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		require.NotNil(t, svc.Environment["AUTH_HS256_SECRET"])
		require.NotEmpty(t, *svc.Environment["AUTH_HS256_SECRET"], "%s verifies tokens", name)
	}
}

func TestComposeServices(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	// The Compose Specification has no top-level version; Compose warns on it.
	raw, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	require.NotRegexp(t, `(?m)^version\s*:`, string(raw), "compose.yaml must not have a top-level version key")

	for _, name := range defaultServices {
		svc, err := project.GetService(name)
		require.NoError(t, err, "service %q", name)
		require.Empty(t, svc.Profiles, "service %q must start without --profile", name)
	}
	require.Len(t, project.Services, len(defaultServices), "services enabled without a profile")

	// The monitoring services are defined but stay off without their profile.
	for _, name := range monitoringServices {
		_, err := project.GetService(name)
		require.ErrorIs(t, err, errdefs.ErrDisabled, "service %q", name)
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

func TestComposeMonitoringProfile(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t, monitoringProfile)

	require.Len(t, project.Services, len(defaultServices)+len(monitoringServices))
	for _, name := range defaultServices {
		svc, err := project.GetService(name)
		require.NoError(t, err, "service %q", name)
		require.Empty(t, svc.Profiles, "service %q", name)
	}
	for _, name := range monitoringServices {
		svc, err := project.GetService(name)
		require.NoError(t, err, "service %q", name)
		require.Equal(t, []string{monitoringProfile}, svc.Profiles, "service %q", name)
		require.NotNil(t, svc.HealthCheck, "service %q has no healthcheck", name)
		require.False(t, svc.HealthCheck.Disable, "service %q", name)
		require.NotEmpty(t, svc.HealthCheck.Test, "service %q", name)
	}
	for _, volume := range []string{"prometheus-data", "grafana-data"} {
		require.Contains(t, project.Volumes, volume)
	}
}

func TestComposePrometheus(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t, monitoringProfile)

	prom, err := project.GetService("prometheus")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(prom.Image, "prom/prometheus:v3."), "image %q", prom.Image)
	require.Contains(t, prom.Command, "--config.file=/etc/prometheus/prometheus.yml")
	require.Contains(t, prom.Command, "--storage.tsdb.path=/prometheus")

	requireBindMount(t, prom, "monitoring/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml")
	requireVolumeMount(t, prom, "prometheus-data", "/prometheus")

	require.Len(t, prom.Ports, 1)
	require.Equal(t, uint32(9090), prom.Ports[0].Target)
	require.Equal(t, "9090", prom.Ports[0].Published, "default host port when PROMETHEUS_PORT is unset")

	// The image is busybox-based; promtool is the documented probe.
	require.Equal(t, types.HealthCheckTest{"CMD", "/bin/promtool", "check", "ready"}, prom.HealthCheck.Test)
}

func TestComposeGrafana(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t, monitoringProfile)

	grafana, err := project.GetService("grafana")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(grafana.Image, "grafana/grafana:"), "image %q", grafana.Image)

	requireBindMount(t, grafana, "monitoring/grafana/provisioning", "/etc/grafana/provisioning")
	dashboards := requireBindMount(t, grafana, "monitoring/grafana/dashboards", "/etc/grafana/dashboards")
	requireVolumeMount(t, grafana, "grafana-data", "/var/lib/grafana")

	require.Len(t, grafana.Ports, 1)
	require.Equal(t, uint32(3000), grafana.Ports[0].Target)
	require.Equal(t, "3000", grafana.Ports[0].Published, "default host port when GRAFANA_PORT is unset")

	for key, want := range map[string]string{
		"GF_SECURITY_ADMIN_USER":     "admin",
		"GF_SECURITY_ADMIN_PASSWORD": "admin",
		"GF_AUTH_ANONYMOUS_ENABLED":  "false",
	} {
		value, ok := grafana.Environment[key]
		require.True(t, ok, "grafana has no %s", key)
		require.NotNil(t, value, "grafana has an unset %s", key)
		require.Equal(t, want, *value, "%s (default when the shell sets nothing)", key)
	}

	require.Contains(t, grafana.DependsOn, "prometheus")
	require.Equal(t, types.ServiceConditionHealthy, grafana.DependsOn["prometheus"].Condition)

	// The provisioned datasource is the compose prometheus service, under the
	// uid the dashboard uses.
	var datasources struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "monitoring/grafana/provisioning/datasources/prometheus.yml", &datasources)
	require.Len(t, datasources.Datasources, 1)
	require.Equal(t, "prometheus", datasources.Datasources[0].UID)
	require.Equal(t, "prometheus", datasources.Datasources[0].Type)
	require.Equal(t, "http://prometheus:9090", datasources.Datasources[0].URL)

	// The dashboard provider reads the directory compose mounts the dashboards at.
	var providers struct {
		Providers []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "monitoring/grafana/provisioning/dashboards/ctrader.yml", &providers)
	require.Len(t, providers.Providers, 1)
	require.Equal(t, "file", providers.Providers[0].Type)
	require.Equal(t, dashboards.Target, providers.Providers[0].Options.Path)
}

func TestComposeCtraderMetricsCredentials(t *testing.T) {
	t.Parallel()
	project := loadComposeProject(t)

	for _, name := range ctraderServices {
		svc, err := project.GetService(name)
		require.NoError(t, err)
		for _, key := range []string{"METRICS_USER", "METRICS_PASSWORD"} {
			value, ok := svc.Environment[key]
			require.True(t, ok, "service %q has no %s", name, key)
			require.NotNil(t, value, "service %q has an unset %s", name, key)
			require.NotEmpty(t, *value, "service %q", name)
		}
	}
}

// prometheusConfig is the part of a Prometheus configuration file the tests read.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval string `yaml:"scrape_interval"`
	} `yaml:"global"`
	ScrapeConfigs []prometheusScrapeConfig `yaml:"scrape_configs"`
}

type prometheusScrapeConfig struct {
	JobName        string `yaml:"job_name"`
	ScrapeInterval string `yaml:"scrape_interval"`
	MetricsPath    string `yaml:"metrics_path"`
	BasicAuth      *struct {
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"basic_auth"`
	StaticConfigs []struct {
		Targets []string `yaml:"targets"`
	} `yaml:"static_configs"`
	DNSSDConfigs []struct {
		Names []string `yaml:"names"`
		Type  string   `yaml:"type"`
		Port  int      `yaml:"port"`
	} `yaml:"dns_sd_configs"`
}

func TestPrometheusScrapesCtrader(t *testing.T) {
	t.Parallel()

	var cfg prometheusConfig
	readYAML(t, "monitoring/prometheus/prometheus.yml", &cfg)

	// Prometheus cannot read the environment, so its credentials must equal
	// what compose.yaml gives the ctrader services.
	project := loadComposeProject(t)
	api, err := project.GetService("api")
	require.NoError(t, err)
	user, password := api.Environment["METRICS_USER"], api.Environment["METRICS_PASSWORD"]
	require.NotNil(t, user)
	require.NotNil(t, password)

	checkJob := func(job prometheusScrapeConfig) {
		t.Helper()
		interval := job.ScrapeInterval
		if interval == "" {
			interval = cfg.Global.ScrapeInterval
		}
		require.Equal(t, "15s", interval, "job %q", job.JobName)
		path := job.MetricsPath
		if path == "" {
			path = "/metrics" // the Prometheus default
		}
		require.Equal(t, "/metrics", path, "job %q", job.JobName)
		require.NotNil(t, job.BasicAuth, "job %q must send basic auth", job.JobName)
		require.Equal(t, *user, job.BasicAuth.Username, "job %q", job.JobName)
		require.Equal(t, *password, job.BasicAuth.Password, "job %q", job.JobName)
	}

	var apiJobs, workerJobs int
	for _, job := range cfg.ScrapeConfigs {
		for _, static := range job.StaticConfigs {
			if slices.Contains(static.Targets, "api:8000") {
				apiJobs++
				checkJob(job)
			}
			for _, target := range static.Targets {
				require.False(t, strings.HasPrefix(target, "worker"),
					"job %q: a static worker target scrapes one replica only; use dns_sd_configs", job.JobName)
			}
		}
		for _, dns := range job.DNSSDConfigs {
			if slices.Contains(dns.Names, "worker") {
				workerJobs++
				require.Equal(t, "A", dns.Type, "job %q", job.JobName)
				require.Equal(t, 8001, dns.Port, "job %q", job.JobName)
				checkJob(job)
			}
		}
	}
	require.Equal(t, 1, apiJobs, "exactly one job must scrape api:8000")
	require.Equal(t, 1, workerJobs, "exactly one job must discover the worker replicas")
}

// ctraderHistograms and ctraderSeries are the metrics ctrader exports. The
// dashboard may query only these, so renaming a metric in the code without
// updating monitoring/grafana/dashboards/ctrader.json fails this test.
var (
	ctraderHistograms = []string{
		"ctrader_http_request_duration_seconds",
		"ctrader_event_processing_seconds",
		"ctrader_job_run_seconds",
		"ctrader_job_queue_latency_seconds",
	}
	ctraderSeries = []string{
		"ctrader_http_requests_total",
		"ctrader_events_ingested_total",
		"ctrader_jobs_total",
		"ctrader_queue_jobs",
		"ctrader_rule_evaluations_total",
		"ctrader_webhook_deliveries_total",
	}
)

var (
	promQLStrings    = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promQLMatchers   = regexp.MustCompile(`\{[^{}]*\}`)
	promQLRanges     = regexp.MustCompile(`\[[^\[\]]*\]`)
	promQLGrouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promQLIdentifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promQLKeywords   = []string{
		"and", "or", "unless", "bool", "offset", "inf", "nan",
		"by", "without", "on", "ignoring", "group_left", "group_right",
	}
)

// promQLMetricNames returns the metric names a PromQL expression selects:
// identifiers left once strings, label matchers, ranges and grouping clauses
// are removed, other than function calls, keywords and numbers.
func promQLMetricNames(expr string) []string {
	expr = promQLStrings.ReplaceAllString(expr, `""`)
	expr = promQLMatchers.ReplaceAllString(expr, " ")
	expr = promQLRanges.ReplaceAllString(expr, " ")
	expr = promQLGrouping.ReplaceAllString(expr, " ")

	var names []string
	for _, loc := range promQLIdentifier.FindAllStringIndex(expr, -1) {
		start, end := loc[0], loc[1]
		if start > 0 && (expr[start-1] == '.' || (expr[start-1] >= '0' && expr[start-1] <= '9')) {
			continue // part of a number such as 1e3
		}
		if strings.HasPrefix(strings.TrimLeft(expr[end:], " \t\n"), "(") {
			continue // a function or aggregation
		}
		name := expr[start:end]
		if slices.Contains(promQLKeywords, strings.ToLower(name)) {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestPromQLMetricNames(t *testing.T) {
	t.Parallel()

	for expr, want := range map[string][]string{
		`sum(rate(ctrader_http_requests_total{status=~"5.."}[5m]))`:                                               {"ctrader_http_requests_total"},
		`histogram_quantile(0.95, sum(rate(ctrader_job_run_seconds_bucket[5m])) by (le, kind))`:                   {"ctrader_job_run_seconds_bucket"},
		`sum by (queue) (ctrader_queue_jobs) / ignoring(queue) group_left sum(up{job="api"})`:                     {"ctrader_queue_jobs", "up"},
		`rate(a_sum[1m]) / rate(a_count[1m]) > 1e3 and on (kind) b offset 5m`:                                     {"a_sum", "a_count", "b"},
		`{__name__="x"} or sum without (outcome) (rate(ctrader_jobs_total{outcome=~"retried|discarded"}[5m:1m]))`: {"ctrader_jobs_total"},
	} {
		require.Equal(t, want, promQLMetricNames(expr), expr)
	}
}

// grafanaPanel is the part of a Grafana panel the tests read.
type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()

	raw, err := os.ReadFile("monitoring/grafana/dashboards/ctrader.json")
	require.NoError(t, err)

	var dashboard struct {
		UID           string         `json:"uid"`
		Title         string         `json:"title"`
		SchemaVersion int            `json:"schemaVersion"`
		Panels        []grafanaPanel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dashboard))
	require.Equal(t, "ctrader", dashboard.UID)
	require.Equal(t, "ctrader", dashboard.Title)
	require.GreaterOrEqual(t, dashboard.SchemaVersion, 39)

	allowed := slices.Clone(ctraderSeries)
	for _, h := range ctraderHistograms {
		allowed = append(allowed, h+"_bucket", h+"_sum", h+"_count")
	}

	var panels []grafanaPanel
	for _, p := range dashboard.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}

	ids := map[int]bool{}
	used := map[string]bool{}
	var rows, charts int
	for i, p := range panels {
		require.False(t, ids[p.ID], "panel id %d is used twice", p.ID)
		ids[p.ID] = true

		g := p.GridPos
		require.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.Y >= 0 && g.X+g.W <= 24,
			"panel %q has gridPos %+v", p.Title, g)
		for _, q := range panels[:i] {
			o := q.GridPos
			overlap := g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H
			require.False(t, overlap, "panels %q and %q overlap", p.Title, q.Title)
		}

		switch p.Type {
		case "row":
			rows++
			continue
		case "timeseries":
			charts++
		}
		require.NotEmpty(t, p.Title)
		require.NotNil(t, p.Datasource, "panel %q has no datasource", p.Title)
		require.Equal(t, "prometheus", p.Datasource.UID, "panel %q", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no queries", p.Title)

		for _, target := range p.Targets {
			names := promQLMetricNames(target.Expr)
			require.NotEmpty(t, names, "panel %q query %s selects no metric: %s", p.Title, target.RefID, target.Expr)
			for _, name := range names {
				require.Contains(t, allowed, name,
					"panel %q queries %s, which ctrader does not export", p.Title, name)
				used[name] = true
			}
		}
	}
	require.GreaterOrEqual(t, rows, 4, "throughput, latency, queues and failures rows")
	require.GreaterOrEqual(t, charts, 10)

	// Every exported metric has a chart.
	for _, name := range ctraderSeries {
		require.True(t, used[name], "no panel shows %s", name)
	}
	for _, h := range ctraderHistograms {
		require.True(t, used[h+"_bucket"] || used[h+"_sum"] || used[h+"_count"], "no panel shows %s", h)
	}
}

// requireBindMount requires svc to bind-mount source (relative to the
// repository root, which must exist) read-only at target.
func requireBindMount(t *testing.T, svc types.ServiceConfig, source, target string) types.ServiceVolumeConfig {
	t.Helper()

	_, err := os.Stat(source)
	require.NoError(t, err, "service %q mounts a missing %s", svc.Name, source)
	abs, err := filepath.Abs(source)
	require.NoError(t, err)

	i := slices.IndexFunc(svc.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeBind && v.Source == abs && v.Target == target
	})
	require.GreaterOrEqual(t, i, 0, "service %q must mount ./%s at %s", svc.Name, source, target)
	require.True(t, svc.Volumes[i].ReadOnly, "service %q must mount ./%s read-only", svc.Name, source)
	return svc.Volumes[i]
}

// requireVolumeMount requires svc to mount the named volume at target.
func requireVolumeMount(t *testing.T, svc types.ServiceConfig, volume, target string) {
	t.Helper()

	mounted := slices.ContainsFunc(svc.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Type == types.VolumeTypeVolume && v.Source == volume && v.Target == target
	})
	require.True(t, mounted, "service %q must mount the %s volume at %s", svc.Name, volume, target)
}

func readYAML(t *testing.T, path string, out any) {
	t.Helper()

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, out), path)
}

func baseName(p string) string {
	return p[strings.LastIndexAny(p, `/\`)+1:]
}
