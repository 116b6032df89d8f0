package redislock_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// FuzzNew checks that any name and option values either build a Lock that
// reports them back or fail with ErrInvalidArgument, and never panic; and
// that Extend on the result validates its duration the same way.
func FuzzNew(f *testing.F) {
	f.Add("n", "lock:", "", int64(time.Second), int64(0), int64(0), int64(0), int64(0), int64(0), uint8(0))
	f.Add("", "", "", int64(0), int64(0), int64(0), int64(0), int64(0), int64(0), uint8(0xff))
	f.Add("{tag}\x00", "p:", "me", int64(time.Millisecond), int64(time.Millisecond), int64(-1), int64(1), int64(2), int64(1), uint8(0b1111011))
	f.Add("n", "x", "o", int64(3*time.Millisecond), int64(time.Millisecond), int64(0), int64(1), int64(1), int64(2*time.Millisecond), uint8(0b0011011))
	f.Add("n", "x", "o", int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MinInt64), uint8(0b0111111))
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: New and a failing Extend make no call
	f.Cleanup(func() { _ = c.Close() })
	f.Fuzz(func(t *testing.T, name, prefix, owner string, ttl, hb, wait, rmin, rmax, extend int64, set uint8) {
		var opts []redislock.Option
		if set&1 != 0 {
			opts = append(opts, redislock.WithTTL(time.Duration(ttl)))
		}
		if set&2 != 0 {
			opts = append(opts, redislock.WithHeartbeat(time.Duration(hb)))
		}
		if set&4 != 0 {
			opts = append(opts, redislock.WithoutHeartbeat())
		}
		if set&8 != 0 {
			opts = append(opts, redislock.WithWaitTimeout(time.Duration(wait)))
		}
		if set&16 != 0 {
			opts = append(opts, redislock.WithRetryBackoff(time.Duration(rmin), time.Duration(rmax)))
		}
		if set&32 != 0 {
			opts = append(opts, redislock.WithKeyPrefix(prefix))
		}
		if set&64 != 0 {
			opts = append(opts, redislock.WithOwner(owner))
		}
		if set&128 != 0 {
			opts = append(opts, nil)
		}
		l, err := redislock.New(c, name, opts...)
		if err != nil {
			if !errors.Is(err, redislock.ErrInvalidArgument) {
				t.Fatalf("New failed with %v, not ErrInvalidArgument", err)
			}
			if l != nil {
				t.Fatal("New returned a Lock with an error")
			}
			return
		}
		// Some rules New must have enforced.
		switch {
		case name == "":
			t.Fatal("empty name accepted")
		case set&1 != 0 && ttl < int64(time.Millisecond):
			t.Fatalf("TTL %v accepted", time.Duration(ttl))
		case set&2 != 0 && hb <= 0:
			t.Fatalf("heartbeat %v accepted", time.Duration(hb))
		case set&6 == 6:
			t.Fatal("WithHeartbeat and WithoutHeartbeat accepted together")
		case set&16 != 0 && (rmin <= 0 || rmax <= 0 || rmin > rmax):
			t.Fatalf("backoff %v..%v accepted", rmin, rmax)
		case set&8 != 0 && wait < 0:
			t.Fatalf("wait timeout %v accepted", time.Duration(wait))
		case set&128 != 0:
			t.Fatal("nil Option accepted")
		}
		wantPrefix := redislock.DefaultKeyPrefix
		if set&32 != 0 {
			wantPrefix = prefix
		}
		if l.Key() != wantPrefix+name || l.Name() != name {
			t.Fatalf("Key %q Name %q, want %q %q", l.Key(), l.Name(), wantPrefix+name, name)
		}
		if set&64 != 0 && l.Owner() != owner || l.Owner() == "" {
			t.Fatalf("Owner %q, want %q", l.Owner(), owner)
		}
		if l.Held() || l.Count() != 0 {
			t.Fatal("a new Lock holds")
		}
		err = l.Extend(context.Background(), time.Duration(extend))
		if !errors.Is(err, redislock.ErrInvalidArgument) && !errors.Is(err, redislock.ErrNotHeld) {
			t.Fatalf("Extend(%v) on a Lock never acquired: %v", time.Duration(extend), err)
		}
		if extend < 0 && !errors.Is(err, redislock.ErrInvalidArgument) {
			t.Fatalf("Extend(%v) accepted", time.Duration(extend))
		}
	})
}

// opsOwners is how many Locks (owners) an operation sequence uses.
const opsOwners = 3

// FuzzLockOps runs a sequence of operations by three owners on one lock,
// plus a meddler that deletes or takes the key behind their backs, against
// miniredis, and checks after every step that the Locks and the stored hash
// agree with a small reference model. Each byte is one step: the low three
// bits choose the operation, the rest the owner.
func FuzzLockOps(f *testing.F) {
	for _, seed := range opsSeeds {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			t.Fatal(err)
		}
		defer mr.Close()
		c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		defer c.Close()
		runOps(t, c, "fuzz", ops)
	})
}

// TestLockOpsRealRedis runs the seed sequences of FuzzLockOps and random ones
// against a real Redis.
func TestLockOpsRealRedis(t *testing.T) {
	c := redistest.Client(t)
	seqs := append([][]byte(nil), opsSeeds...)
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for range sized(100, 2000) {
		seq := make([]byte, 40)
		for i := range seq {
			seq[i] = byte(rng.IntN(256))
		}
		seqs = append(seqs, seq)
	}
	for _, seq := range seqs {
		runOps(t, c, redistest.Key(t), seq)
	}
}

// opsSeeds are sequences that reach each branch of the model.
var opsSeeds = [][]byte{
	{0, 0, 2, 2},                        // owner 0: acquire twice, release twice
	{0, 8, 9, 2, 9, 10},                 // owner 1 blocked until owner 0 releases
	{0, 5, 1, 2, 0, 2},                  // key deleted under a hold: re-entry finds it gone
	{0, 0, 5, 2, 2},                     // key deleted: inner release reports the loss
	{0, 6, 3, 2, 8},                     // key taken: extend reports the loss
	{0, 6, 4, 0},                        // key taken: TTL reports the loss
	{0, 5, 2, 0, 2},                     // last release of a deleted key
	{0, 5, 8, 2, 10, 0, 2},              // rival takes the deleted key
	{2, 3, 4, 7, 1, 1, 2, 2, 2},         // calls without a hold
	{0, 8, 16, 1, 9, 17, 2, 10, 18, 7},  // three owners in turn
	{6, 0, 1, 5, 1, 3, 4, 2, 7},         // the meddler holds first
	{0, 0, 0, 6, 2, 2, 2, 0, 2},         // loss at depth three
	{8, 8, 5, 8, 10, 10, 16, 18, 3, 11}, // re-entry after a delete by owner 1
}

// opsModel is the reference: what each Lock believes and what the hash
// holds.
type opsModel struct {
	count  [opsOwners]int   // levels each Lock holds
	lost   [opsOwners]bool  // its last hold was lost and it has not acquired since
	holder int              // owner index holding the key, -1 free, opsOwners the meddler
	stored int              // the stored count
	token  [opsOwners]int64 // the fencing token of each Lock's hold
	tokens int64            // the largest token handed out so far
}

func runOps(t *testing.T, c redis.UniversalClient, name string, ops []byte) {
	t.Helper()
	ctx := context.Background()
	locks := make([]*redislock.Lock, opsOwners)
	for i := range locks {
		locks[i] = newLock(t, c, name, redislock.WithOwner(fmt.Sprintf("owner-%d", i)), redislock.WithWaitTimeout(0))
	}
	key := locks[0].Key()
	defer func() {
		for _, l := range locks {
			for l.Count() > 0 {
				_ = l.Release(ctx)
			}
		}
		_ = c.Del(ctx, key)
	}()
	m := opsModel{holder: -1}
	for step, b := range ops {
		i := int(b>>3) % opsOwners
		l := locks[i]
		desc := fmt.Sprintf("step %d of %v: ", step, ops)
		// lose is the model's loss of i's hold, detected by a request.
		lose := func() { m.count[i], m.lost[i] = 0, true }
		wantLost := func(err error, what string) {
			t.Helper()
			if !errors.Is(err, redislock.ErrLockLost) {
				t.Fatalf(desc+"owner %d %s: %v, want it to match ErrLockLost", i, what, err)
			}
		}
		switch op := b & 7; op {
		case 0, 1: // Acquire, TryAcquire
			var ok bool
			var err error
			if op == 0 {
				err = l.Acquire(ctx)
				ok = err == nil
			} else {
				ok, err = l.TryAcquire(ctx)
			}
			switch {
			case m.count[i] > 0 && m.holder == i:
				m.count[i]++
				m.stored++
				if !ok || err != nil {
					t.Fatalf(desc+"owner %d re-entry: %v %v", i, ok, err)
				}
			case m.count[i] > 0:
				lose()
				if ok || !errors.Is(err, redislock.ErrNotAcquired) {
					t.Fatalf(desc+"owner %d re-entry of a lost hold: %v %v, want ErrNotAcquired", i, ok, err)
				}
				wantLost(err, "re-entry of a lost hold")
			case m.holder == -1:
				m.count[i], m.lost[i], m.holder, m.stored = 1, false, i, 1
				if !ok || err != nil {
					t.Fatalf(desc+"owner %d acquire of a free lock: %v %v", i, ok, err)
				}
				if tok := l.Token(); tok <= m.tokens {
					t.Fatalf(desc+"owner %d fresh acquire got token %d, not above %d", i, tok, m.tokens)
				}
				m.token[i] = l.Token()
				m.tokens = m.token[i]
			default:
				if ok {
					t.Fatalf(desc+"owner %d acquired a lock held by %d", i, m.holder)
				}
				if op == 0 && !errors.Is(err, redislock.ErrNotAcquired) || op == 1 && err != nil {
					t.Fatalf(desc+"owner %d acquire of a held lock: %v", i, err)
				}
			}
		case 2: // Release
			err := l.Release(ctx)
			switch {
			case m.count[i] == 0:
				if !errors.Is(err, redislock.ErrNotHeld) {
					t.Fatalf(desc+"owner %d release without a hold: %v, want ErrNotHeld", i, err)
				}
				if m.lost[i] {
					wantLost(err, "release after a loss")
				}
			case m.holder != i:
				lose()
				if !errors.Is(err, redislock.ErrNotHeld) {
					t.Fatalf(desc+"owner %d release of a lost hold: %v, want ErrNotHeld", i, err)
				}
				wantLost(err, "release of a lost hold")
			default:
				m.count[i]--
				m.stored--
				if m.count[i] == 0 {
					m.holder, m.stored = -1, 0
				}
				if err != nil {
					t.Fatalf(desc+"owner %d release: %v", i, err)
				}
			}
		case 3, 4: // Extend, TTL
			var err error
			var ttl time.Duration
			if op == 3 {
				err = l.Extend(ctx, 0)
			} else {
				ttl, err = l.TTL(ctx)
			}
			switch {
			case m.count[i] == 0:
				if !errors.Is(err, redislock.ErrNotHeld) {
					t.Fatalf(desc+"owner %d extend/TTL without a hold: %v, want ErrNotHeld", i, err)
				}
			case m.holder != i:
				lose()
				if !errors.Is(err, redislock.ErrNotHeld) {
					t.Fatalf(desc+"owner %d extend/TTL of a lost hold: %v, want ErrNotHeld", i, err)
				}
				wantLost(err, "extend/TTL of a lost hold")
			default:
				if err != nil || op == 4 && ttl <= 0 {
					t.Fatalf(desc+"owner %d extend/TTL: %v %v", i, ttl, err)
				}
			}
		case 5: // the meddler deletes the key
			if err := c.Del(ctx, key).Err(); err != nil {
				t.Fatal(err)
			}
			m.holder, m.stored = -1, 0
		case 6: // the meddler takes the key
			if err := c.HSet(ctx, key, "owner", "meddler", "count", 1).Err(); err != nil {
				t.Fatal(err)
			}
			m.holder, m.stored = opsOwners, 1
		case 7: // only look
		}
		checkOps(t, c, desc, key, locks, &m)
	}
}

// checkOps compares the Locks and the stored hash with the model.
func checkOps(t *testing.T, c redis.UniversalClient, desc, key string, locks []*redislock.Lock, m *opsModel) {
	t.Helper()
	h, err := c.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case m.holder == -1 && len(h) != 0:
		t.Fatalf(desc+"key %v, want none", h)
	case m.holder == opsOwners && h["owner"] != "meddler":
		t.Fatalf(desc+"key %v, want the meddler's", h)
	case m.holder >= 0 && m.holder < opsOwners && (h["owner"] != locks[m.holder].Owner() || h["count"] != strconv.Itoa(m.stored)):
		t.Fatalf(desc+"key %v, want owner %q count %d", h, locks[m.holder].Owner(), m.stored)
	}
	for i, l := range locks {
		if got := l.Count(); got != m.count[i] {
			t.Fatalf(desc+"owner %d Count %d, want %d", i, got, m.count[i])
		}
		if want := m.token[i]; m.count[i] == 0 && l.Token() != 0 || m.count[i] > 0 && l.Token() != want {
			t.Fatalf(desc+"owner %d Token %d, want %d at depth %d", i, l.Token(), want, m.count[i])
		}
		if got := l.Held(); got != (m.count[i] > 0) {
			t.Fatalf(desc+"owner %d Held %v, want %v", i, got, m.count[i] > 0)
		}
		closed := false
		select {
		case <-l.Lost():
			closed = true
		default:
		}
		if want := m.count[i] == 0 && m.lost[i]; closed != want {
			t.Fatalf(desc+"owner %d Lost closed %v, want %v", i, closed, want)
		}
	}
}
