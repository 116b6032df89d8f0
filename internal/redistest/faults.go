package redistest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// adminTimeout bounds an administrative command of the helpers below.
const adminTimeout = 10 * time.Second

// Do sends one command on a connection of its own, which it then closes,
// and fails tb if the command fails. It is for administration: FLUSHALL,
// SCRIPT FLUSH, CONFIG SET.
func (s *Server) Do(tb testing.TB, args ...any) *redis.Cmd {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	cmd := c.Do(ctx, args...)
	if err := cmd.Err(); err != nil {
		tb.Fatalf("redistest: %v: %v", args, err)
	}
	return cmd
}

// DebugSleep makes the server run DEBUG SLEEP for d: it serves nothing,
// and accepts no connection, until d has passed. DebugSleep returns once
// the command is sent, on a connection already open, so the sleep starts
// as soon as the server reads it. wait blocks until the server answered
// it, that is, until the server is serving again; tb.Cleanup waits too.
func (s *Server) DebugSleep(tb testing.TB, d time.Duration) (wait func()) {
	tb.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:        s.addr,
		MaxRetries:  -1,
		ReadTimeout: d + adminTimeout,
	})
	// Send on a connection that is already open, so the sleep starts when
	// the command is written, not after a dial.
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		tb.Fatalf("redistest: DebugSleep: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- c.Do(context.Background(), "DEBUG", "SLEEP", strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).Err()
	}()
	var err error
	finished := false
	wait = func() {
		tb.Helper()
		if !finished {
			err, finished = <-done, true
			_ = c.Close()
		}
		if err != nil {
			tb.Errorf("redistest: DEBUG SLEEP: %v", err)
			err = nil
		}
	}
	tb.Cleanup(wait)
	return wait
}

// PauseMode selects the commands that [Server.ClientPause] holds back.
type PauseMode string

// The modes of CLIENT PAUSE.
const (
	PauseAll   PauseMode = "ALL"   // every command
	PauseWrite PauseMode = "WRITE" // commands and scripts that may write
)

// ClientPause runs CLIENT PAUSE for d in mode: the server holds back the
// commands of every client, new connections included, until d has passed.
// In mode PauseAll that includes CLIENT UNPAUSE, so a pause cannot be cut
// short. Keys do not expire meanwhile; those whose time has come expire
// right after. It returns once the pause is in force.
func (s *Server) ClientPause(tb testing.TB, d time.Duration, mode PauseMode) {
	tb.Helper()
	s.Do(tb, "CLIENT", "PAUSE", d.Milliseconds(), string(mode))
}

// ClientCount returns how many client connections the server has, not
// counting the ones it asks on.
func (s *Server) ClientCount(tb testing.TB) int {
	tb.Helper()
	list, err := s.Do(tb, "CLIENT", "LIST", "TYPE", "normal").Text()
	if err != nil {
		tb.Fatalf("redistest: CLIENT LIST: %v", err)
	}
	// Each call asks on a connection of its own, and the server may not
	// have seen an earlier one close yet: count neither.
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
		if !strings.Contains(line, " cmd=client|list ") {
			n++
		}
	}
	return n
}

// ClientList returns the server's CLIENT LIST for normal clients.
func (s *Server) ClientList(tb testing.TB) string {
	tb.Helper()
	list, err := s.Do(tb, "CLIENT", "LIST", "TYPE", "normal").Text()
	if err != nil {
		tb.Fatalf("redistest: CLIENT LIST: %v", err)
	}
	return list
}
