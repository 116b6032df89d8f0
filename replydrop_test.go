package redislock_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// replyDropper makes a client lose the reply of one chosen command after
// the server ran it: the connection that wrote a command containing every
// armed pattern reads the reply, discards it, and fails with io.EOF, which
// go-redis retries (unless MaxRetries says otherwise) on a new connection.
type replyDropper struct {
	mu       sync.Mutex
	patterns [][]byte // nil: disarmed
	dropped  atomic.Int32
	// onDrop, when set, runs after the server answered the command and
	// before the client learns the connection failed.
	onDrop func()
}

// arm makes the next command that contains every pattern lose its reply.
func (d *replyDropper) arm(patterns ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.patterns = nil
	for _, p := range patterns {
		d.patterns = append(d.patterns, []byte(p))
	}
}

// take reports whether b matches the armed patterns, disarming them if so.
func (d *replyDropper) take(b []byte) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.patterns == nil {
		return false
	}
	for _, p := range d.patterns {
		if !bytes.Contains(b, p) {
			return false
		}
	}
	d.patterns = nil
	return true
}

func (d *replyDropper) dialer(ctx context.Context, network, addr string) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &dropConn{Conn: c, d: d}, nil
}

type dropConn struct {
	net.Conn
	d    *replyDropper
	drop atomic.Bool
}

func (c *dropConn) Write(b []byte) (int, error) {
	if c.d.take(b) {
		c.drop.Store(true)
	}
	return c.Conn.Write(b)
}

func (c *dropConn) Read(b []byte) (int, error) {
	if c.drop.CompareAndSwap(true, false) {
		// Wait for the reply, so that the server has run the command,
		// then lose it with the connection.
		_ = c.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Conn.Read(b)
		_ = c.Conn.Close()
		c.d.dropped.Add(1)
		if c.d.onDrop != nil {
			c.d.onDrop()
		}
		return 0, io.EOF
	}
	return c.Conn.Read(b)
}

// droppingClient returns a client of addr whose replies d can drop; go-redis
// retries as it does by default.
func droppingClient(t *testing.T, addr string, d *replyDropper, opts ...func(*redis.Options)) *redis.Client {
	t.Helper()
	o := &redis.Options{Addr: addr, Dialer: d.dialer}
	for _, opt := range opts {
		opt(o)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eventHook calls fn before each command the client processes.
type eventHook struct{ fn func(redis.Cmder) }

func (h eventHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h eventHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.fn(cmd)
		return next(ctx, cmd)
	}
}
func (h eventHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
