package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSampler follows the server's resident set size.
type memSampler struct {
	source string
	reason string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	start   float64
	peak    float64
	samples int
}

// startMemory samples /proc/PID/status with --server-pid, else the server's
// /metrics. When neither answers, the report says n/a.
func (r *runner) startMemory(ctx context.Context) *memSampler {
	m := &memSampler{done: make(chan struct{})}
	var (
		read     func(context.Context) (float64, error)
		interval time.Duration
		reasons  []string
	)
	if pid := r.o.ServerPID; pid > 0 {
		path := fmt.Sprintf("/proc/%d/status", pid)
		probe := func(context.Context) (float64, error) { return readVmRSS(path) }
		if _, err := probe(ctx); err == nil {
			read, interval, m.source = probe, 100*time.Millisecond, path
		} else {
			reasons = append(reasons, "--server-pid: "+err.Error())
		}
	}
	if read == nil {
		if _, err := r.scrapeRSS(ctx); err == nil {
			read, interval, m.source = r.scrapeRSS, 250*time.Millisecond, r.base+"/metrics"
		} else {
			reasons = append(reasons, "/metrics: "+err.Error())
		}
	}
	if read == nil {
		m.reason = strings.Join(reasons, "; ")
		close(m.done)
		m.cancel = func() {}
		return m
	}
	ctx, m.cancel = context.WithCancel(ctx)
	go func() {
		defer close(m.done)
		_, _ = poll(ctx, interval, func() (bool, error) {
			if v, err := read(ctx); err == nil {
				m.mu.Lock()
				if m.samples == 0 {
					m.start = v
				}
				m.samples++
				m.peak = max(m.peak, v)
				m.mu.Unlock()
			}
			return false, nil
		})
	}()
	return m
}

func (m *memSampler) stop() {
	m.cancel()
	<-m.done
}

func (m *memSampler) report() Memory {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.source == "" || m.samples == 0 {
		reason := m.reason
		if reason == "" {
			reason = "no sample taken"
		}
		return Memory{Reason: reason}
	}
	const mb = 1 << 20
	return Memory{Available: true, Source: m.source, StartMB: m.start / mb, PeakMB: m.peak / mb, Samples: m.samples}
}

// readVmRSS reads a process's resident set size, in bytes, from
// /proc/PID/status.
func readVmRSS(path string) (float64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, err
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmRSS line (is it a kernel thread?)")
}

// scrapeRSS reads process_resident_memory_bytes from the server's /metrics.
func (r *runner) scrapeRSS(ctx context.Context) (float64, error) {
	req, err := r.newRequest(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answered %s", resp.Status)
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes ")
		if !ok {
			continue
		}
		return strconv.ParseFloat(strings.TrimSpace(rest), 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no process_resident_memory_bytes metric")
}
