package redislock

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Error texts of Valkey 8 where they differ from Redis's (Redis: "NOSCRIPT
// No matching script. Please use EVAL.", "BUSY Redis is busy …", "LOADING
// Redis is loading …").
const (
	valkeyNoScript = "NOSCRIPT No matching script."
	valkeyBusy     = "BUSY Valkey is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
	valkeyLoading  = "LOADING Valkey is loading the dataset in memory"
)

// closeConn, as an answer of a fakeServer, makes it hang up instead.
const closeConn = ""

// fakeServer speaks just enough RESP2 on loopback for go-redis and this
// package: it refuses HELLO (so go-redis stays on RESP2), and answers
// every EVALSHA with Valkey's NOSCRIPT, as a server that has lost its
// scripts would, so that every script call must fall back to EVAL. Other
// commands get answer's raw reply; answer sees the command name in upper
// case, and EVAL as "EVAL <script name>" followed by its numkeys, keys and
// arguments.
type fakeServer struct {
	ln     net.Listener
	answer func(cmd []string) string // run on connection goroutines
	names  map[string]string         // script SHA1 → name, for the log

	mu    sync.Mutex
	log   []string // "EVALSHA acquire", "EVAL release", "WAIT", …
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// startFake starts a fakeServer; t.Cleanup stops it and waits for its
// goroutines. The scripts named are this package's.
func startFake(t *testing.T, answer func(cmd []string) string) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f := &fakeServer{
		ln:     ln,
		answer: answer,
		names: map[string]string{
			acquireScript.Hash(): "acquire",
			releaseScript.Hash(): "release",
			(&hold{lock: &Lock{prim: mutex}}).renewScript().Hash(): "renew",
		},
		conns: map[net.Conn]struct{}{},
	}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *fakeServer) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns[c] = struct{}{}
		f.wg.Add(1)
		f.mu.Unlock()
		go f.serve(c)
	}
}

func (f *fakeServer) close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeServer) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	r := bufio.NewReader(c)
	for range 10_000 {
		cmd, err := readCommand(r)
		if err != nil {
			return
		}
		reply := f.reply(cmd)
		if reply == closeConn {
			return
		}
		if _, err := io.WriteString(c, reply+"\r\n"); err != nil {
			return
		}
	}
}

func (f *fakeServer) reply(cmd []string) string {
	name := strings.ToUpper(cmd[0])
	entry := name
	if (name == "EVAL" || name == "EVALSHA") && len(cmd) > 1 {
		sha := strings.ToLower(cmd[1])
		if name == "EVAL" {
			sum := sha1.Sum([]byte(cmd[1]))
			sha = hex.EncodeToString(sum[:])
		}
		entry += " " + f.names[sha]
		cmd = append([]string{entry}, cmd[2:]...)
	} else {
		cmd = append([]string{name}, cmd[1:]...)
	}
	switch name {
	case "HELLO": // connection set-up, not logged
		return "-ERR unknown command 'HELLO'"
	case "CLIENT", "SELECT":
		return "+OK"
	}
	f.mu.Lock()
	f.log = append(f.log, entry)
	f.mu.Unlock()
	if name == "EVALSHA" {
		return "-" + valkeyNoScript
	}
	return f.answer(cmd)
}

// calls returns the commands received so far.
func (f *fakeServer) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

// count returns how many of the commands received so far were entry.
func (f *fakeServer) count(entry string) int {
	n := 0
	for _, e := range f.calls() {
		if e == entry {
			n++
		}
	}
	return n
}

// readCommand reads one request: an array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	n, err := readHeader(r, '*')
	if err != nil {
		return nil, err
	}
	if n < 1 || n > 1024 {
		return nil, fmt.Errorf("fake: array of %d", n)
	}
	cmd := make([]string, n)
	for i := range cmd {
		size, err := readHeader(r, '$')
		if err != nil {
			return nil, err
		}
		if size < 0 || size > 1<<20 {
			return nil, fmt.Errorf("fake: bulk of %d", size)
		}
		b := make([]byte, size+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		cmd[i] = string(b[:size])
	}
	return cmd, nil
}

func readHeader(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	line = strings.TrimRight(line, "\r\n")
	if len(line) < 2 || line[0] != kind {
		return 0, fmt.Errorf("fake: got %q, want %q", line, kind)
	}
	return strconv.Atoi(line[1:])
}

// fakeClient returns a client of f that does not retry.
func fakeClient(t *testing.T, f *fakeServer) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: f.ln.Addr().String(), MaxRetries: -1, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestErrorPredicatesMatchPrefixes feeds the error matching error replies
// as go-redis parses them off the wire, in Redis's and in Valkey's words.
func TestErrorPredicatesMatchPrefixes(t *testing.T) {
	f := startFake(t, func(cmd []string) string {
		if cmd[0] == "ECHOERR" {
			return "-" + cmd[1]
		}
		return closeConn
	})
	c := fakeClient(t, f)
	for _, tc := range []struct {
		reply                         string
		noScript, wrongType, redirect bool
	}{
		{reply: "NOSCRIPT No matching script. Please use EVAL.", noScript: true},
		{reply: valkeyNoScript, noScript: true},
		{reply: "NOSCRIPT", noScript: true},
		{reply: "WRONGTYPE Operation against a key holding the wrong kind of value", wrongType: true},
		{reply: "WRONGTYPE lock count is not a positive integer", wrongType: true},
		{reply: "MOVED 3999 127.0.0.1:6381", redirect: true},
		{reply: "ASK 3999 127.0.0.1:6381", redirect: true},
		{reply: valkeyBusy},
		{reply: valkeyLoading},
		{reply: "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."},
		// Prefixes only: the same words later in the text do not count.
		{reply: "ERR Error running script: @user_script:1: NOSCRIPT No matching script."},
		{reply: "ERR WRONGTYPE"},
		{reply: "ERR MOVED 3999 127.0.0.1:6381"},
	} {
		err := c.Do(context.Background(), "ECHOERR", tc.reply).Err()
		require.Error(t, err, tc.reply)
		assert.Equal(t, tc.reply, err.Error())
		assert.Equal(t, tc.noScript, isNoScript(err), "isNoScript(%q)", tc.reply)
		assert.Equal(t, tc.wrongType, isWrongType(err.Error()), "isWrongType(%q)", tc.reply)
		assert.Equal(t, tc.redirect, isRedirect(err), "isRedirect(%q)", tc.reply)
		assert.True(t, isServerError(err), "isServerError(%q)", tc.reply)
	}

	// A hang-up is no answer from the server.
	err := c.Do(context.Background(), "HANGUP").Err()
	require.Error(t, err)
	assert.False(t, isServerError(err), "isServerError(%v)", err)
}

// TestValkeyNoScriptFallsBackToEval runs acquire, reentry, release and the
// WithMinReplicas pipeline against a server that answers EVALSHA with
// Valkey's NOSCRIPT: each must fall back to EVAL.
func TestValkeyNoScriptFallsBackToEval(t *testing.T) {
	f := startFake(t, func(cmd []string) string {
		switch cmd[0] {
		case "EVAL acquire":
			return ":7" // a fresh hold with token 7, or a re-entry keeping it
		case "EVAL release":
			if keys, _ := strconv.Atoi(cmd[1]); cmd[2+keys+1] == "1" { // ARGV[2]: the last level
				return ":0" // deleted
			}
			return ":1" // one level left
		case "WAIT":
			return ":1"
		}
		return "-ERR unexpected " + cmd[0]
	})
	ctx := context.Background()
	c := fakeClient(t, f)

	l, err := New(c, "plain", WithoutHeartbeat())
	require.NoError(t, err)
	ok, err := l.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, int64(7), l.Token())
	require.NoError(t, l.Acquire(ctx))
	require.NoError(t, l.Release(ctx))
	require.NoError(t, l.Release(ctx))
	assert.False(t, l.Held())
	assert.Equal(t, []string{
		"EVALSHA acquire", "EVAL acquire",
		"EVALSHA acquire", "EVAL acquire",
		"EVALSHA release", "EVAL release",
		"EVALSHA release", "EVAL release",
	}, f.calls())

	replicated, err := New(c, "replicated", WithoutHeartbeat(), WithMinReplicas(1, 100*time.Millisecond))
	require.NoError(t, err)
	before := len(f.calls())
	ok, err = replicated.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, []string{"EVALSHA acquire", "WAIT", "EVAL acquire", "WAIT"}, f.calls()[before:before+4])
	require.NoError(t, replicated.Release(ctx))
}

// TestValkeyNoScriptHeartbeat holds a lock for several TTLs on a server that
// answers every renewal's EVALSHA with Valkey's NOSCRIPT: the heartbeat must
// renew through EVAL, or the hold is lost after one TTL.
func TestValkeyNoScriptHeartbeat(t *testing.T) {
	f := startFake(t, func(cmd []string) string {
		switch cmd[0] {
		case "EVAL acquire":
			return ":7"
		case "EVAL renew":
			return "*1\r\n:1" // one hold, still held
		case "EVAL release":
			return ":0"
		}
		return "-ERR unexpected " + cmd[0]
	})
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	l, err := New(fakeClient(t, f), "renewed", WithTTL(ttl), WithHeartbeat(30*time.Millisecond))
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, l.Acquire(ctx))
	const renewals = 5
	for end := time.Now().Add(10 * time.Second); f.count("EVAL renew") < renewals || time.Since(start) < 2*ttl; {
		require.True(t, time.Now().Before(end), "%d renewals within 10 s: %v", renewals, f.calls())
		time.Sleep(5 * time.Millisecond)
	}
	assert.True(t, l.Held(), "the hold must outlive its first TTL through renewals by EVAL")
	select {
	case <-l.Lost():
		t.Fatal("hold lost")
	default:
	}
	require.NoError(t, l.Release(ctx))
}

// TestValkeyBusyLoadingAreServerErrors checks that an acquire refused with
// Valkey's BUSY or LOADING is returned as the server's answer, so that no
// release follows it, while a hang-up, after which the acquire may have
// been applied, is followed by one.
func TestValkeyBusyLoadingAreServerErrors(t *testing.T) {
	for _, reply := range []string{valkeyBusy, valkeyLoading, "WRONGTYPE Operation against a key holding the wrong kind of value", closeConn} {
		t.Run(strings.Fields(reply + " HANGUP")[0], func(t *testing.T) {
			f := startFake(t, func(cmd []string) string {
				switch cmd[0] {
				case "EVAL acquire":
					if reply == closeConn {
						return closeConn
					}
					return "-" + reply
				case "EVAL release":
					return ":-1"
				}
				return "-ERR unexpected " + cmd[0]
			})
			l, err := New(fakeClient(t, f), "refused", WithoutHeartbeat())
			require.NoError(t, err)
			ok, err := l.TryAcquire(context.Background())
			require.Error(t, err)
			assert.False(t, ok)
			var rerr redis.Error
			if reply == closeConn {
				assert.False(t, errors.As(err, &rerr), "%v", err)
				assert.Equal(t, 1, f.count("EVAL release"), "a hang-up must be followed by a release: %v", f.calls())
				return
			}
			require.ErrorAs(t, err, &rerr)
			assert.Contains(t, err.Error(), reply)
			assert.Equal(t, strings.HasPrefix(reply, "WRONGTYPE"), errors.Is(err, ErrWrongType), "%v", err)
			assert.Zero(t, f.count("EVAL release")+f.count("EVALSHA release"), "no release after a server's answer: %v", f.calls())
		})
	}
}
