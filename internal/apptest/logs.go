// Package apptest helps tests that run the ctrader binary's commands in
// process (app.Run): it watches their logs for what they report.
package apptest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"sync"
)

// Logs collects a process's JSON log lines, to show when a test fails, and
// reports the address its HTTP server listens on once it logs it. It is the
// io.Writer to give the process as its log output.
type Logs struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	addrs chan string
}

// NewLogs returns an empty Logs.
func NewLogs() *Logs { return &Logs{addrs: make(chan string, 1)} }

// Write takes log lines, and notes a "http server listening" line's address.
func (w *Logs) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "http server listening" {
			select {
			case w.addrs <- line.Addr:
			default:
			}
		}
	}
	return len(p), nil
}

// Addr receives the address the HTTP server listens on, once it is logged.
func (w *Logs) Addr() <-chan string { return w.addrs }

// String is everything logged so far.
func (w *Logs) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
