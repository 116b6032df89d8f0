package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	bsmlock "github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	redsyncgoredis "github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
	"github.com/redis/rueidis/rueidislock"

	"github.com/redislock/redislock"
)

// Mutex is what every scenario needs of a lock: one goroutine's handle on
// one name. Lock waits until it holds the lock or ctx is done.
type Mutex interface {
	Lock(ctx context.Context) error
	Unlock(ctx context.Context) error
}

// keyed is a Mutex that can name the Redis keys its hold writes, and how
// many of them make a hold, so that a scenario can check on the server that
// a hold is still there.
type keyed interface {
	keys() (keys []string, quorum int)
}

// holder is a Mutex that can tell whether it believes it still holds its
// lock (a library that renews by itself knows when a hold is lost).
type holder interface {
	held() bool
}

// Factory makes Mutexes of one contender over one client connection (pool).
type Factory interface {
	NewMutex(name string) (Mutex, error)
	Close()
}

// openOpts configure a Factory.
type openOpts struct {
	addr  string
	lease time.Duration // 0: the contender's default lease
	renew time.Duration // with lease: the renewal interval (contenders that renew)
	reqs  *atomic.Int64 // requests sent, counted on the wire
	cmds  *cmdNames     // when not nil, the names of the commands sent
	limit int           // semaphore contenders: holders allowed at once
}

// A contender is one library at one setting.
type contender struct {
	name    string // lib/setting, unique
	lib     string
	setting string // what the setting is, for the report
	renews  bool   // renews held locks by itself
	extra   bool   // only when -only names it
	noHeld  bool   // left out of the held-locks scenario (its renewals are another row's)
	fair    bool   // this library's fair lock: judged on the fair targets too
	sem     bool   // a counting semaphore: runs in the semaphore scenario only
	open    func(o openOpts) (Factory, error)
}

// Settings that the adapters share.
const (
	bsmTTL          = 30 * time.Second // bsm/redislock needs a TTL per Obtain; it does not renew
	rawTTL          = 30 * time.Second
	redsyncTunedTry = 100_000 // × 1 ms: far longer than any wait here; ctx ends waits first
	rawMaxAttempts  = 1_000_000
)

func allContenders() []contender {
	return []contender{
		{
			name: "redislock/default", lib: "redislock", renews: true,
			setting: fmt.Sprintf("defaults: TTL %v, heartbeat on (TTL/3), backoff %v…%v", redislock.DefaultTTL, redislock.DefaultRetryMin, redislock.DefaultRetryMax),
			open:    openRedislock(),
		},
		{
			name: "redislock/tuned", lib: "redislock", renews: true,
			setting: "WithRetryBackoff(1ms, 1ms); heartbeat on",
			open:    openRedislock(redislock.WithRetryBackoff(time.Millisecond, time.Millisecond)),
		},
		{
			name: "redislock/fair", lib: "redislock", renews: true, noHeld: true, fair: true,
			setting: "WithFair(); the rest default (its holds renew as redislock/default's, so it is left out of the held-locks scenario)",
			open:    openRedislock(redislock.WithFair()),
		},
		{
			name: "bsm/docs", lib: "bsm",
			setting: "RetryStrategy LinearBackoff(500ms), as its godoc example for waiting until a deadline (its default, NoRetry, makes one attempt and cannot wait); TTL 30s (Obtain has no default TTL)",
			open:    openBsm(func() bsmlock.RetryStrategy { return bsmlock.LinearBackoff(500 * time.Millisecond) }),
		},
		{
			name: "bsm/tuned", lib: "bsm",
			setting: "RetryStrategy LinearBackoff(1ms); TTL 30s",
			open:    openBsm(func() bsmlock.RetryStrategy { return bsmlock.LinearBackoff(time.Millisecond) }),
		},
		{
			name: "redsync/default", lib: "redsync",
			setting: "defaults, as its README uses it (one pool): expiry 8s, 32 tries, delay rand 50–250ms",
			open:    openRedsync(),
		},
		{
			name: "redsync/tuned", lib: "redsync",
			setting: fmt.Sprintf("WithRetryDelay(1ms), WithTries(%d)", redsyncTunedTry),
			open:    openRedsync(redsync.WithRetryDelay(time.Millisecond), redsync.WithTries(redsyncTunedTry)),
		},
		{
			name: "rueidislock/docs", lib: "rueidislock", renews: true,
			setting: "as its README advises for one Redis ≥ 7.0.5: KeyMajority 1 (1 key), NoLoopTracking; the rest default (validity 5s, extend every 2.5s, TryNextAfter 20ms); waits on client-side-cache invalidations",
			open:    openRueidis(rueidislock.LockerOption{KeyMajority: 1, NoLoopTracking: true}),
		},
		{
			name: "rueidislock/default", lib: "rueidislock", renews: true,
			setting: "defaults, which its README advises against on one instance: KeyMajority 2 (3 keys), no NOLOOP (its own PEXPIREATs invalidate the keys it tracks), validity 5s, extend every 2.5s, TryNextAfter 20ms",
			open:    openRueidis(rueidislock.LockerOption{}),
		},
		{
			name: "rueidislock/poll1ms", lib: "rueidislock", renews: true, extra: true,
			setting: "ClientOption.DisableCache (then it polls every TryNextAfter), TryNextAfter 1ms (also its per-request timeout), KeyMajority 1",
			open: openRueidis(rueidislock.LockerOption{KeyMajority: 1, TryNextAfter: time.Millisecond},
				func(o *rueidis.ClientOption) { o.DisableCache = true }),
		},
		{
			name: "raw/tuned", lib: "raw",
			setting: "SET key val NX PX 30000 + DEL via go-redis; sleep 1ms between attempts",
			open:    openRaw,
		},
		{
			name: "redislock/semaphore", lib: "redislock", renews: true, sem: true,
			setting: "NewSemaphore(client, name, limit); defaults (TTL 30s, heartbeat on, backoff 2ms…250ms, a release wakes one waiter per permit)",
			open:    openRedislockSemaphore(),
		},
		{
			name: "raw/zset-semaphore", lib: "raw", sem: true,
			setting: "one Lua script: ZREMRANGEBYSCORE of expired members, ZCARD, ZADD member with expiry score (TTL 30s); sleep 1ms between attempts; release ZREM",
			open:    openRawSemaphore,
		},
	}
}

// selectContenders keeps the contenders whose name or library is in only
// (comma-separated); an empty list keeps all but the extras, which run only
// when named in full.
func selectContenders(only string) ([]contender, error) {
	all := allContenders()
	if strings.TrimSpace(only) == "" {
		var out []contender
		for _, c := range all {
			if !c.extra {
				out = append(out, c)
			}
		}
		return out, nil
	}
	var out []contender
	seen := map[string]bool{}
	for _, want := range strings.Split(only, ",") {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		found := false
		for _, c := range all {
			match := c.name == want || (c.lib == want && !c.extra)
			if match && !seen[c.name] {
				out = append(out, c)
				seen[c.name] = true
			}
			found = found || match
		}
		if !found {
			var names []string
			for _, c := range all {
				names = append(names, c.name)
			}
			return nil, fmt.Errorf("-only: no contender %q (have %s, or a library name)", want, strings.Join(names, ", "))
		}
	}
	return out, nil
}

func contenderByName(name string) (contender, bool) {
	for _, c := range allContenders() {
		if c.name == name {
			return c, true
		}
	}
	return contender{}, false
}

// newGoRedis returns a go-redis client with default options whose
// connections count requests.
func newGoRedis(o openOpts) *redis.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 5 * time.Minute}
	return redis.NewClient(&redis.Options{
		Addr: o.addr,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialCounting(ctx, d, network, addr, o.reqs, o.cmds)
		},
	})
}

// --- this library ---

type redislockFactory struct {
	c     *redis.Client
	opts  []redislock.Option
	renew time.Duration // heartbeat interval when the scenario set one
}

func openRedislock(opts ...redislock.Option) func(openOpts) (Factory, error) {
	return func(o openOpts) (Factory, error) {
		all := append([]redislock.Option(nil), opts...)
		var renew time.Duration
		if o.lease > 0 {
			all = append(all, redislock.WithTTL(o.lease))
			if o.renew > 0 && o.renew != o.lease/3 {
				renew = longestHeartbeat(all, o.renew)
				all = append(all, redislock.WithHeartbeat(renew))
			}
		}
		return &redislockFactory{c: newGoRedis(o), opts: all, renew: renew}, nil
	}
}

// longestHeartbeat returns want, or the longest whole-millisecond interval
// below it that New accepts with opts: the library refuses a heartbeat
// longer than half the lease less its safety margin. New makes no Redis
// call, so this probes it.
func longestHeartbeat(opts []redislock.Option, want time.Duration) time.Duration {
	probe := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"}) // never dialled
	defer probe.Close()
	ok := func(d time.Duration) bool {
		_, err := redislock.New(probe, "probe", append(opts[:len(opts):len(opts)], redislock.WithHeartbeat(d))...)
		return err == nil
	}
	if ok(want) {
		return want
	}
	lo, hi := int64(1), want.Milliseconds() // ok(lo ms) assumed; hi fails
	for lo+1 < hi {
		mid := (lo + hi) / 2
		if ok(time.Duration(mid) * time.Millisecond) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return time.Duration(lo) * time.Millisecond
}

// renewInterval is the heartbeat the held-locks scenario got, or 0 for the
// one it asked for.
func (f *redislockFactory) renewInterval() time.Duration { return f.renew }

func (f *redislockFactory) NewMutex(name string) (Mutex, error) {
	l, err := redislock.New(f.c, name, f.opts...)
	if err != nil {
		return nil, err
	}
	return redislockMutex{l}, nil
}

func (f *redislockFactory) Close() { _ = f.c.Close() }

type redislockMutex struct{ l *redislock.Lock }

func (m redislockMutex) Lock(ctx context.Context) error   { return m.l.Acquire(ctx) }
func (m redislockMutex) Unlock(ctx context.Context) error { return m.l.Release(ctx) }
func (m redislockMutex) keys() ([]string, int)            { return []string{m.l.Key()}, 1 }
func (m redislockMutex) held() bool                       { return m.l.Held() }

// --- github.com/bsm/redislock ---

type bsmFactory struct {
	c     *redis.Client
	l     *bsmlock.Client
	ttl   time.Duration
	retry func() bsmlock.RetryStrategy
}

func openBsm(retry func() bsmlock.RetryStrategy) func(openOpts) (Factory, error) {
	return func(o openOpts) (Factory, error) {
		c := newGoRedis(o)
		ttl := bsmTTL
		if o.lease > 0 {
			ttl = o.lease
		}
		return &bsmFactory{c: c, l: bsmlock.New(c), ttl: ttl, retry: retry}, nil
	}
}

func (f *bsmFactory) NewMutex(name string) (Mutex, error) { return &bsmMutex{f: f, key: name}, nil }
func (f *bsmFactory) Close()                              { _ = f.c.Close() }

type bsmMutex struct {
	f    *bsmFactory
	key  string
	lock *bsmlock.Lock
}

func (m *bsmMutex) keys() ([]string, int) { return []string{m.key}, 1 }

func (m *bsmMutex) Lock(ctx context.Context) error {
	l, err := m.f.l.Obtain(ctx, m.key, m.f.ttl, &bsmlock.Options{RetryStrategy: m.f.retry()})
	if err != nil {
		return err
	}
	m.lock = l
	return nil
}

func (m *bsmMutex) Unlock(ctx context.Context) error {
	if m.lock == nil {
		return errors.New("bsm: not locked")
	}
	err := m.lock.Release(ctx)
	m.lock = nil
	return err
}

// --- github.com/go-redsync/redsync/v4 ---

type redsyncFactory struct {
	c    *redis.Client
	rs   *redsync.Redsync
	opts []redsync.Option
}

func openRedsync(opts ...redsync.Option) func(openOpts) (Factory, error) {
	return func(o openOpts) (Factory, error) {
		c := newGoRedis(o)
		all := append([]redsync.Option(nil), opts...)
		if o.lease > 0 {
			all = append(all, redsync.WithExpiry(o.lease))
		}
		return &redsyncFactory{c: c, rs: redsync.New(redsyncgoredis.NewPool(c)), opts: all}, nil
	}
}

func (f *redsyncFactory) NewMutex(name string) (Mutex, error) {
	return redsyncMutex{f.rs.NewMutex(name, f.opts...)}, nil
}
func (f *redsyncFactory) Close() { _ = f.c.Close() }

type redsyncMutex struct{ m *redsync.Mutex }

func (m redsyncMutex) Lock(ctx context.Context) error { return m.m.LockContext(ctx) }
func (m redsyncMutex) Unlock(ctx context.Context) error {
	ok, err := m.m.UnlockContext(ctx)
	if err == nil && !ok {
		err = errors.New("redsync: unlock not confirmed")
	}
	return err
}

// --- github.com/redis/rueidis/rueidislock ---

type rueidisFactory struct {
	l      rueidislock.Locker
	prefix string
	nkeys  int32 // keys per lock: 2 × KeyMajority − 1
}

func openRueidis(opt rueidislock.LockerOption, client ...func(*rueidis.ClientOption)) func(openOpts) (Factory, error) {
	return func(o openOpts) (Factory, error) {
		opt := opt
		opt.ClientOption = rueidis.ClientOption{
			InitAddress: []string{o.addr},
			DialCtxFn: func(ctx context.Context, dst string, d *net.Dialer, _ *tls.Config) (net.Conn, error) {
				return dialCounting(ctx, d, "tcp", dst, o.reqs, o.cmds)
			},
		}
		for _, f := range client {
			f(&opt.ClientOption)
		}
		if o.lease > 0 {
			opt.KeyValidity = o.lease
			if o.renew > 0 {
				opt.ExtendInterval = o.renew
			}
		}
		l, err := rueidislock.NewLocker(opt)
		if err != nil {
			return nil, err
		}
		majority := opt.KeyMajority
		if majority <= 0 {
			majority = 2 // its default
		}
		return &rueidisFactory{l: l, prefix: "rueidislock", nkeys: 2*majority - 1}, nil
	}
}

func (f *rueidisFactory) NewMutex(name string) (Mutex, error) {
	return &rueidisMutex{l: f.l, name: name, f: f}, nil
}
func (f *rueidisFactory) Close() { f.l.Close() }

// rueidisMutex holds through the context WithContext returns: the hold ends
// when that context ends, which is when the ctx given to Lock ends or Unlock
// cancels it.
type rueidisMutex struct {
	l      rueidislock.Locker
	f      *rueidisFactory
	name   string
	hold   context.Context // done when the hold ends
	cancel context.CancelFunc
}

func (m *rueidisMutex) Lock(ctx context.Context) error {
	hold, cancel, err := m.l.WithContext(ctx, m.name)
	if err != nil {
		return err
	}
	m.hold, m.cancel = hold, cancel
	return nil
}

func (m *rueidisMutex) held() bool { return m.hold != nil && m.hold.Err() == nil }

// keys are the keys rueidislock writes for one lock: <prefix>:<i>:<name>
// for each of its 2 × KeyMajority − 1 keys, of which a hold needs
// KeyMajority.
func (m *rueidisMutex) keys() ([]string, int) {
	ks := make([]string, m.f.nkeys)
	for i := range ks {
		ks[i] = fmt.Sprintf("%s:%d:%s", m.f.prefix, i, m.name)
	}
	return ks, int(m.f.nkeys/2 + 1)
}

func (m *rueidisMutex) Unlock(context.Context) error {
	if m.cancel == nil {
		return errors.New("rueidislock: not locked")
	}
	m.cancel() // releases the keys and waits for that
	m.cancel = nil
	return nil
}

// --- raw baseline: SET NX PX + DEL ---

type rawFactory struct{ c *redis.Client }

func openRaw(o openOpts) (Factory, error) { return &rawFactory{c: newGoRedis(o)}, nil }

func (f *rawFactory) NewMutex(name string) (Mutex, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &rawMutex{c: f.c, key: name, val: base64.RawURLEncoding.EncodeToString(b[:]), ttlMs: rawTTL.Milliseconds()}, nil
}
func (f *rawFactory) Close() { _ = f.c.Close() }

type rawMutex struct {
	c     *redis.Client
	key   string
	val   string
	ttlMs int64
	timer *time.Timer
}

func (m *rawMutex) Lock(ctx context.Context) error {
	for range rawMaxAttempts {
		err := m.c.Do(ctx, "set", m.key, m.val, "nx", "px", m.ttlMs).Err()
		if err == nil {
			return nil
		}
		if !errors.Is(err, redis.Nil) {
			return err
		}
		if m.timer == nil {
			m.timer = time.NewTimer(time.Millisecond)
		} else {
			m.timer.Reset(time.Millisecond)
		}
		select {
		case <-ctx.Done():
			m.timer.Stop()
			return ctx.Err()
		case <-m.timer.C:
		}
	}
	return fmt.Errorf("raw: not acquired after %d attempts", rawMaxAttempts)
}

func (m *rawMutex) Unlock(ctx context.Context) error { return m.c.Del(ctx, m.key).Err() }
func (m *rawMutex) keys() ([]string, int)            { return []string{m.key}, 1 }

// --- this library's semaphore ---

type redislockSemFactory struct {
	c     *redis.Client
	limit int
}

func openRedislockSemaphore() func(openOpts) (Factory, error) {
	return func(o openOpts) (Factory, error) {
		if o.limit < 1 {
			return nil, fmt.Errorf("semaphore limit %d", o.limit)
		}
		return &redislockSemFactory{c: newGoRedis(o), limit: o.limit}, nil
	}
}

func (f *redislockSemFactory) NewMutex(name string) (Mutex, error) {
	l, err := redislock.NewSemaphore(f.c, name, f.limit)
	if err != nil {
		return nil, err
	}
	return redislockMutex{l}, nil
}

func (f *redislockSemFactory) Close() { _ = f.c.Close() }

// --- raw baseline semaphore: a sorted set of holders scored by expiry ---

// rawSemAcquire drops the expired holders and adds ARGV[1] when fewer than
// the limit are left: KEYS[1] the set; ARGV[1] member, ARGV[2] limit,
// ARGV[3] TTL in ms. Expiries are on the server's clock. Returns 1 when
// added, 0 when full.
var rawSemAcquire = redis.NewScript(`
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('zadd', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
`)

type rawSemFactory struct {
	c     *redis.Client
	limit int
}

func openRawSemaphore(o openOpts) (Factory, error) {
	if o.limit < 1 {
		return nil, fmt.Errorf("semaphore limit %d", o.limit)
	}
	return &rawSemFactory{c: newGoRedis(o), limit: o.limit}, nil
}

func (f *rawSemFactory) NewMutex(name string) (Mutex, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &rawSem{f: f, key: name, member: base64.RawURLEncoding.EncodeToString(b[:])}, nil
}
func (f *rawSemFactory) Close() { _ = f.c.Close() }

type rawSem struct {
	f      *rawSemFactory
	key    string
	member string
	timer  *time.Timer
}

func (m *rawSem) Lock(ctx context.Context) error {
	for range rawMaxAttempts {
		n, err := rawSemAcquire.Run(ctx, m.f.c, []string{m.key}, m.member, m.f.limit, rawTTL.Milliseconds()).Int()
		if err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		if m.timer == nil {
			m.timer = time.NewTimer(time.Millisecond)
		} else {
			m.timer.Reset(time.Millisecond)
		}
		select {
		case <-ctx.Done():
			m.timer.Stop()
			return ctx.Err()
		case <-m.timer.C:
		}
	}
	return fmt.Errorf("raw semaphore: not acquired after %d attempts", rawMaxAttempts)
}

func (m *rawSem) Unlock(ctx context.Context) error { return m.f.c.ZRem(ctx, m.key, m.member).Err() }
