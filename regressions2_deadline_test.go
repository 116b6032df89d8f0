package redislock_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// slowHandler is a slog handler that takes d to write a record, as one
// writing to a slow file or a network sink does.
type slowHandler struct{ d time.Duration }

func (h slowHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h slowHandler) Handle(context.Context, slog.Record) error { time.Sleep(h.d); return nil }
func (h slowHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h slowHandler) WithGroup(string) slog.Handler             { return h }

// Promise (README, reliability: a hold lost at its validity deadline is
// told, Lost closed, before the server's expiry lets a rival in). Was broken:
// every Lock's deadline fires from one timer, and the holds due at one
// firing are handed to their Locks one after the other on that firing's
// goroutine, each running its loss report (logger, observer)
// synchronously. Locks acquired in a quick loop, as the one-Lock-per-entity
// pattern does, fall due together; with an application logger that takes
// 100 ms a record (WithLogger sets no rule against blocking), the later
// holds of the batch are told after their keys expired on the server.
func TestRegressionDeadlinesOfABatchToldInTime(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := srv.Client(t)
	const ttl = time.Second
	const n = 6
	logger := slog.New(slowHandler{100 * time.Millisecond})

	locks := make([]*redislock.Lock, n)
	expireAt := make([]int64, n) // server's PEXPIRETIME, Unix ms
	lostAt := make([]int64, n)
	var wg sync.WaitGroup
	for i := range locks {
		l, err := redislock.New(c, "batch"+strconv.Itoa(i), redislock.WithTTL(ttl), redislock.WithoutHeartbeat(),
			redislock.WithLogger(logger))
		require.NoError(t, err)
		require.NoError(t, l.Acquire(ctx))
		locks[i] = l
	}
	for i, l := range locks {
		expireAt[i] = c.Do(ctx, "pexpiretime", l.Key()).Val().(int64)
		lost := l.Lost()
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-lost:
				lostAt[i] = time.Now().UnixMilli()
			case <-time.After(5 * time.Second):
			}
		}()
	}
	wg.Wait()
	for i := range locks {
		require.NotZero(t, lostAt[i], "lock %d never told", i)
		assert.Less(t, lostAt[i], expireAt[i], "lock %d told %d ms after its key expired on the server", i, lostAt[i]-expireAt[i])
		_ = locks[i].Release(ctx)
	}
}
