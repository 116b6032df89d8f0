package redislock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// grant is the answer to an acquire request.
type grant struct {
	ok       bool
	token    int64         // the hold's fencing token, when ok
	pttl     time.Duration // the other holder's remaining lease, when not ok
	replicas int64         // replicas that acknowledged it, with WithMinReplicas
}

// runAcquire sends an acquire request: a fresh one when token is "0", else
// a re-entry of the hold with that token. A fair lock queues a refused
// caller only when it will wait.
func (l *Lock) runAcquire(ctx context.Context, token any, waiting bool) (grant, error) {
	var g grant
	fresh := token == "0"
	buf := acquireCmds.Get().(*[acquireArgs]any)
	defer func() {
		clear(buf[:]) // let go of the Lock it points to
		acquireCmds.Put(buf)
	}()
	keys := l.acquireKeys
	cmd := append(buf[:0], "evalsha", l.prim.acquireSHA, len(keys))
	for i := range keys {
		cmd = append(cmd, &keys[i])
	}
	cmd = append(append(cmd, &l.owner, token, &l.opts.ttlMs), l.extra...) // op is held
	if l.prim.waitArg && !waiting {
		cmd[len(cmd)-1] = noWait
	}
	var v any
	var err error
	if l.opts.minReplicas > 0 && fresh {
		v, g.replicas, err = l.evalReplicated(ctx, l.prim.acquire, keys, cmd[3+len(keys):])
	} else {
		v, err = evalsha(ctx, l.client, l.prim.acquire, keys, cmd).Result()
	}
	if err != nil {
		return g, l.wrapRedisErr("acquire", err)
	}
	n, ok := v.(int64)
	if !ok {
		return g, fmt.Errorf("redislock: acquire %q: unexpected reply %v", l.key, v)
	}
	if n > 0 {
		g.ok, g.token = true, n
	} else {
		g.pttl = time.Duration(-n) * time.Millisecond
	}
	return g, nil
}

// acquireCmds are the buffers acquire commands are built in: a Lock does
// not keep one, since most send their acquire once per hold.
var acquireCmds = sync.Pool{New: func() any { return new([acquireArgs]any) }}

// acquireArgs is the length of the longest acquire command: four keys (a
// fair lock's) and maxExtra arguments of the primitive's own.
const acquireArgs = 10 + maxExtra

// evalsha sends cmd, a whole EVALSHA command for s on keys, and if the server
// does not have s, runs s with EVAL, which also loads it there; keys nil
// means the command's own (its arguments after the key count). Unlike
// Script.Run, it sends a command built without allocating, so that a
// request allocates only inside go-redis. go-redis only reads the slice,
// but a client hook that keeps cmd.Args() sees it change later.
func evalsha(ctx context.Context, c redis.UniversalClient, s *redis.Script, keys []string, cmd []any) *redis.Cmd {
	r := c.Do(ctx, cmd...)
	if err := r.Err(); err != nil && isNoScript(err) {
		n := cmd[2].(int)
		if keys == nil {
			keys = make([]string, n)
			for i, k := range cmd[3 : 3+n] {
				keys[i] = *k.(*string)
			}
		}
		r = s.Eval(ctx, c, keys, cmd[3+n:]...)
	}
	return r
}

// evalReplicated runs script s, then WAIT, in one pipeline on the connection
// that holds the lock's key, so that WAIT counts the replicas that have this
// request's writes. It returns the script's reply and the number of replicas
// that acknowledged in time (0 if WAIT failed).
func (l *Lock) evalReplicated(ctx context.Context, s *redis.Script, keys []string, args []any) (any, int64, error) {
	node, err := nodeFor(ctx, l.client, l.key)
	if err != nil {
		return nil, 0, err
	}
	for withSource := false; ; withSource = true {
		pipe := node.Pipeline()
		var cmd *redis.Cmd
		if withSource {
			cmd = s.Eval(ctx, pipe, keys, args...)
		} else {
			cmd = s.EvalSha(ctx, pipe, keys, args...)
		}
		wait := pipe.Do(ctx, "wait", l.opts.minReplicas, l.opts.replicaTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx)
		if err := cmd.Err(); err != nil {
			if !withSource && isNoScript(err) {
				continue
			}
			if cc, ok := l.client.(*redis.ClusterClient); ok && isRedirect(err) {
				cc.ReloadState(ctx) // for the next attempt, which Acquire makes
			}
			return nil, 0, err
		}
		acked, _ := wait.Int64()
		return cmd.Val(), acked, nil
	}
}

// nodeFor returns the client whose pipelines reach the server holding key:
// on a cluster, the key's master; otherwise client itself.
func nodeFor(ctx context.Context, client redis.UniversalClient, key string) (redis.UniversalClient, error) {
	if cc, ok := client.(*redis.ClusterClient); ok {
		return cc.MasterForKey(ctx, key)
	}
	return client, nil
}

// wrapRedisErr names the operation and key, and maps a key of the wrong
// type to ErrWrongType (the scripts' own errors name the key that is wrong).
func (l *Lock) wrapRedisErr(op string, err error) error {
	var rerr redis.Error
	if errors.As(err, &rerr) && isWrongType(rerr.Error()) {
		return fmt.Errorf("redislock: %s %q: %w: %w", op, l.key, ErrWrongType, err)
	}
	if isLimitMismatch(err) {
		return fmt.Errorf("redislock: %s %q: %w: %w", op, l.key, ErrLimitMismatch, err)
	}
	return fmt.Errorf("redislock: %s %q: %w", op, l.key, err)
}

func isWrongType(msg string) bool {
	const p = "WRONGTYPE"
	return len(msg) >= len(p) && msg[:len(p)] == p
}

// isServerError reports whether err is an error reply from Redis, which
// means the request was answered and the script changed nothing.
func isServerError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr)
}
