package fault_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the ctrader executable TestMain builds once for every test.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "ctrader-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "ctrader")
	// Without -race: the processes under test should run at production speed;
	// the race detector still watches the tests themselves.
	build := exec.Command("go", "build", "-o", binary, "github.com/ctrader/ctrader/cmd/ctrader")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ctrader:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// skipShort skips fault tests under -short: each runs processes for tens of
// seconds.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault suite: skipped with -short")
	}
}

// proc is one ctrader process (serve or worker) run from the built binary. It
// can be killed with SIGKILL and started again with the same settings; its
// logs from every run are kept and shown only when the test fails.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  []string
	logs *logSink

	mu          sync.Mutex
	cmd         *exec.Cmd
	exited      chan struct{}
	addr        string    // host:port the process listens on (API or health)
	startedAt   time.Time // just before exec
	listeningAt time.Time // when it logged its address
	runs        int
}

// startProc runs `ctrader <args...>` with settings on top of the defaults
// every fault test uses, and returns once the process listens.
func startProc(t *testing.T, name, databaseURL string, settings map[string]string, args ...string) *proc {
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL":     databaseURL,
		"HTTP_ADDR":        "127.0.0.1:0",
		"HEALTH_ADDR":      "127.0.0.1:0",
		"LOG_FORMAT":       "json",
		"LOG_LEVEL":        "info",
		"WRITE_RATE_LIMIT": "0",
		"VACUUM_INTERVAL":  "0",
	}
	for k, v := range settings {
		vars[k] = v
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	p := &proc{t: t, name: name, args: args, env: env, logs: &logSink{}}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- %s logs (warnings, errors and the last lines) ---\n%s", p.name, p.logs.excerpt(60))
		}
	})
	p.start()
	return p
}

// start execs the process and waits until it logs its listen address.
func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	p.runs++
	addrs := make(chan string, 1)
	p.logs.begin(fmt.Sprintf("=== %s run %d ===", p.name, p.runs), addrs)
	cmd := exec.Command(binary, p.args...)
	cmd.Env = p.env
	cmd.Stdout = p.logs
	cmd.Stderr = p.logs
	p.startedAt = time.Now()
	if err := cmd.Start(); err != nil {
		p.mu.Unlock()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()

	select {
	case addr := <-addrs:
		p.mu.Lock()
		p.addr, p.listeningAt = addr, time.Now()
		p.mu.Unlock()
	case <-exited:
		p.t.Fatalf("%s exited before listening:\n%s", p.name, p.logs.excerpt(40))
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s did not listen within 30s:\n%s", p.name, p.logs.excerpt(40))
	}
}

// Addr is the address the current run listens on.
func (p *proc) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.t.Helper()
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill %s: %v", p.name, err)
	}
	<-exited
	p.logs.note(fmt.Sprintf("=== %s killed with SIGKILL ===", p.name))
}

// stop ends the process with SIGTERM, then SIGKILL if it lingers.
func (p *proc) stop() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		p.t.Errorf("%s did not stop within 15s of SIGTERM", p.name)
	}
}

// logSink collects a process's JSON log lines across runs and hands the
// address from its "http server listening" line to the run waiting for it.
type logSink struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	addrs   chan string
	// clientID is the River client id the latest run logged at start.
	clientID string
}

func (s *logSink) begin(marker string, addrs chan string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushPartial()
	s.lines = append(s.lines, marker)
	s.addrs = addrs
	s.clientID = ""
}

func (s *logSink) note(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushPartial()
	s.lines = append(s.lines, line)
}

func (s *logSink) flushPartial() {
	if len(s.partial) > 0 {
		s.lines = append(s.lines, string(s.partial))
		s.partial = nil
	}
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data := append(s.partial, b...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := string(data[:i])
		data = data[i+1:]
		s.lines = append(s.lines, line)
		var l struct {
			Msg      string `json:"msg"`
			Addr     string `json:"addr"`
			ClientID string `json:"client_id"`
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			continue
		}
		switch l.Msg {
		case "http server listening":
			select {
			case s.addrs <- l.Addr:
			default:
			}
		case "River client started":
			s.clientID = l.ClientID
		}
	}
	s.partial = append([]byte(nil), data...)
	return len(b), nil
}

// riverClientID is the River client id of the latest run, from its log.
func (s *logSink) riverClientID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientID
}

// count reports how many lines contain substr.
func (s *logSink) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// first returns the first line containing substr, or "".
func (s *logSink) first(substr string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// excerpt returns run markers, warnings and errors (at most 100 of them) and
// the last n lines: enough to see what went wrong without every request line.
func (s *logSink) excerpt(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	notable := 0
	for _, l := range s.lines {
		if strings.HasPrefix(l, "===") || (notable < 100 && (strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`))) {
			if !strings.HasPrefix(l, "===") {
				notable++
			}
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	b.WriteString("--- last lines ---\n")
	for _, l := range s.lines[max(0, len(s.lines)-n):] {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
