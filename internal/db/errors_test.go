package db_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/dbtest"
)

// cutter is a TCP proxy in front of Postgres whose connections can be cut
// mid-conversation, as a network or a crashing server cuts them.
type cutter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutter(t *testing.T, target string) *cutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c := &cutter{ln: ln}
	t.Cleanup(func() { ln.Close(); c.cut() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, client, server)
			c.mu.Unlock()
			go func() { _, _ = io.Copy(server, client) }()
			go func() { _, _ = io.Copy(client, server) }()
		}
	}()
	return c
}

// cut closes every connection through the proxy at once.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func requireUnavailable(t *testing.T, err error, what string) {
	t.Helper()
	require.Error(t, err, what)
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(db.Translate(err)), "%s: %v", what, err)
}

// A connection lost in the middle of a statement or a commit is the
// database being unavailable (503, retry with the Idempotency-Key), never an
// internal error.
func TestTranslateLostConnections(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(dbtest.URL(t))
	require.NoError(t, err)
	proxy := newCutter(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	pool := dbtest.Pool(t, u.String())
	ctx := context.Background()

	// Mid-statement: the server's answer never comes.
	done := make(chan error, 1)
	go func() {
		_, err := pool.Exec(ctx, `SELECT pg_sleep(5)`)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	proxy.cut()
	requireUnavailable(t, <-done, "statement cut")

	// Mid-transaction: the commit cannot be sent.
	err = db.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
			return err
		}
		proxy.cut()
		return nil
	})
	requireUnavailable(t, err, "commit cut")

	// The pool recovers on the next statement.
	var one int
	require.NoError(t, pool.QueryRow(ctx, `SELECT 1`).Scan(&one))
}

// A statement cut short by its own context's deadline, as a job's timeout
// does, is that deadline, not an unavailable database.
func TestTranslateOwnDeadlineIsNotUnavailable(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.EmptyURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := pool.Exec(ctx, `SELECT pg_sleep(5)`)
	require.Error(t, err)
	err = db.Translate(err)
	require.NotEqual(t, apperr.Unavailable, apperr.CodeOf(err), "%v", err)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
}
