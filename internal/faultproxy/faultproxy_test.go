package faultproxy_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/faultproxy"
	"github.com/redislock/redislock/internal/redistest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(sharedServerM{m}) }

// sharedServerM runs the tests through redistest.Main, which stops the
// shared server before goleak looks for goroutines left running.
type sharedServerM struct{ m *testing.M }

func (s sharedServerM) Run() int { return redistest.Main(s.m) }

func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(target)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	return p
}

// newClient returns a client that does not retry and whose commands time
// out with their ctx.
func newClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ping(c *redis.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Ping(ctx).Err()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// echoServer returns the address of a server that echoes each connection
// until EOF and then closes it. t.Cleanup stops it and waits for it.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) *net.TCPConn {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip writes msg to c and reads the echo back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := io.WriteString(c, msg)
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, msg, string(buf))
}

func TestForwardsRedis(t *testing.T) {
	t.Parallel()
	p := newProxy(t, redistest.Addr(t))
	assert.True(t, strings.HasPrefix(p.Addr(), "127.0.0.1:"), p.Addr())
	c := newClient(t, p.Addr())
	require.NoError(t, ping(c, 5*time.Second))

	key := redistest.Key(t)
	require.NoError(t, c.Set(t.Context(), key, "v", time.Minute).Err())
	got, err := redistest.Client(t).Get(t.Context(), key).Result()
	require.NoError(t, err)
	assert.Equal(t, "v", got, "the write must reach the target")
}

func TestLatency(t *testing.T) {
	t.Parallel()
	const latency = 100 * time.Millisecond
	p := newProxy(t, redistest.Addr(t))
	c := newClient(t, p.Addr())
	require.NoError(t, ping(c, 5*time.Second)) // connect first

	p.SetLatency(latency)
	start := time.Now()
	require.NoError(t, ping(c, 5*time.Second))
	assert.GreaterOrEqual(t, time.Since(start), 2*latency, "a round trip crosses the proxy twice")

	p.SetLatency(0)
	require.NoError(t, ping(c, 5*time.Second))
}

func TestLatencyKeepsOrder(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, "0")

	p.SetLatency(200 * time.Millisecond)
	_, err := io.WriteString(c, "a")
	require.NoError(t, err)
	p.SetLatency(0)
	_, err = io.WriteString(c, "b")
	require.NoError(t, err)

	got := make([]byte, 2)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, "ab", string(got), "a chunk with less delay must not overtake an earlier one")
}

func TestLatencyIgnoredWhenNegative(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	p.SetLatency(-time.Hour)
	roundTrip(t, dial(t, p.Addr()), "x")
}

func TestHalfClose(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	p.SetLatency(10 * time.Millisecond)
	c := dial(t, p.Addr())
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := io.WriteString(c, "hello")
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())

	got, err := io.ReadAll(c) // the echo server closes after our FIN reaches it
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got), "data before a FIN must be delivered")
}

func TestBlackholeDropsData(t *testing.T) {
	t.Parallel()
	p := newProxy(t, echoServer(t))
	c := dial(t, p.Addr())
	roundTrip(t, c, "0")

	p.Blackhole()
	_, err := io.WriteString(c, "x")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	_, err = c.Read(make([]byte, 1))
	require.True(t, isTimeout(err), "nothing may be delivered while blackholed; got %v", err)

	c2 := dial(t, p.Addr()) // new connections are accepted but get nothing
	_, err = io.WriteString(c2, "z")
	require.NoError(t, err)
	require.NoError(t, c2.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
	_, err = c2.Read(make([]byte, 1))
	require.True(t, isTimeout(err), "nothing may be delivered while blackholed; got %v", err)

	p.Heal()
	roundTrip(t, c, "y") // "x" was dropped, not buffered
	roundTrip(t, c2, "w")
}

func TestBlackholeRedis(t *testing.T) {
	t.Parallel()
	p := newProxy(t, redistest.Addr(t))
	c := newClient(t, p.Addr())
	require.NoError(t, ping(c, 5*time.Second))

	p.Blackhole()
	err := ping(c, 200*time.Millisecond)
	assert.True(t, isTimeout(err), "PING must time out while blackholed; got %v", err)
	err = ping(newClient(t, p.Addr()), 200*time.Millisecond)
	assert.Error(t, err, "a new connection must not work while blackholed")

	p.Heal()
	require.NoError(t, ping(c, 5*time.Second), "the client must recover after Heal")
}

func TestDropConnections(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	p := newProxy(t, srv.Addr())
	c := newClient(t, p.Addr())
	require.NoError(t, ping(c, 5*time.Second))

	done := make(chan error, 1)
	go func() { done <- c.BLPop(context.Background(), 10*time.Second, "list").Err() }()
	t.Cleanup(func() { <-done }) // BLPOP ends by the drop, or by its 10 s timeout on failure

	admin := srv.Client(t)
	require.Eventually(t, func() bool {
		list, err := admin.ClientList(t.Context()).Result()
		return err == nil && strings.Contains(list, "cmd=blpop")
	}, 5*time.Second, 10*time.Millisecond, "BLPOP never reached the server")

	p.DropConnections()
	err := <-done
	done <- err // for the cleanup
	require.Error(t, err)
	assert.NotErrorIs(t, err, redis.Nil, "BLPOP must fail on the dropped connection, not time out")

	require.NoError(t, ping(c, 5*time.Second), "the client must reconnect")
}

func TestUnreachableTarget(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	target := ln.Addr().String()
	require.NoError(t, ln.Close())

	p := newProxy(t, target)
	c := dial(t, p.Addr())
	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err, "the proxy must close a connection it cannot forward")
	assert.False(t, isTimeout(err), "closed, not hung: %v", err)
}

func TestClose(t *testing.T) {
	t.Parallel()
	p, err := faultproxy.New(echoServer(t))
	require.NoError(t, err)
	c := dial(t, p.Addr())
	roundTrip(t, c, "0")
	p.SetLatency(time.Hour) // a chunk waiting in a delay queue must not hold up Close
	_, err = io.WriteString(c, "stuck")
	require.NoError(t, err)

	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close is idempotent")

	require.NoError(t, c.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = c.Read(make([]byte, 1))
	assert.Error(t, err)
	assert.False(t, isTimeout(err), "Close must close connections: %v", err)

	_, err = net.DialTimeout("tcp", p.Addr(), time.Second)
	assert.Error(t, err, "Close must stop the listener")
}
