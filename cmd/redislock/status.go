//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock"
)

const statusSynopsis = "redislock status [flags] [--json] NAME..."

// statusTimeout bounds the requests status makes for one name.
const statusTimeout = 10 * time.Second

// lockStatus is what status reports for one name; with --json, one object
// per line. The field names are stable; every field is always present.
type lockStatus struct {
	Name    string   `json:"name"`
	Key     string   `json:"key"`
	State   string   `json:"state"`    // "free", "held", or "invalid" (the key is not a lock)
	Kind    string   `json:"kind"`     // "mutex", "semaphore", "rwlock"; the Redis type if invalid; "" if free
	Owner   string   `json:"owner"`    // mutex: the holder's owner identity
	Count   int64    `json:"count"`    // mutex: reentrant levels; semaphore, rwlock: live holds
	LeaseMs int64    `json:"lease_ms"` // the key's PTTL in ms (-1: no expiry, 0: free)
	Token   int64    `json:"token"`    // mutex: the hold's fencing token
	Limit   int64    `json:"limit"`    // semaphore: the permit limit its holders set
	Waiters int64    `json:"waiters"`  // rwlock: writers waiting; -1 where Redis does not know
	Holders []holder `json:"holders"`  // semaphore, rwlock: each live hold
}

// holder is one live hold of a semaphore or RW lock.
type holder struct {
	Role    string `json:"role"` // "permit", "reader" or "writer"
	Owner   string `json:"owner"`
	Token   int64  `json:"token"`
	LeaseMs int64  `json:"lease_ms"` // until the hold expires on the server
}

// readScript reads a lock key as it is at one instant of the server:
//
//	KEYS[1] the lock key
//
// It returns the key's type, its PTTL, the server's time in ms, and for a
// hash its owner, count and token fields, for a sorted set its members and
// scores.
var readScript = redis.NewScript(`
local t = redis.call('type', KEYS[1])['ok']
local now = redis.call('time')
local body = {}
if t == 'hash' then
  body = redis.call('hmget', KEYS[1], 'owner', 'count', 'token')
elseif t == 'zset' then
  body = redis.call('zrange', KEYS[1], 0, -1, 'WITHSCORES')
end
return {t, redis.call('pttl', KEYS[1]), tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), body}
`)

// statusCommand is "redislock status".
func statusCommand(args []string, stdout, stderr io.Writer) (int, error) {
	var conn connFlags
	var prefix string
	var asJSON bool
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	conn.register(fs)
	fs.StringVar(&prefix, "prefix", redislock.DefaultKeyPrefix, "key `prefix`: the key is prefix+NAME")
	fs.BoolVar(&asJSON, "json", false, "one JSON object per line and name")
	if err := parseFlags(fs, args, statusSynopsis, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return exitUsage, err
	}
	names := fs.Args()
	if len(names) == 0 {
		return exitUsage, usagef("status: missing lock NAME")
	}
	if prefix == "" {
		return exitUsage, usagef("status: empty --prefix")
	}
	for _, n := range names {
		if n == "" {
			return exitUsage, usagef("status: empty lock NAME")
		}
	}
	client, err := conn.client()
	if err != nil {
		return exitUsage, err
	}
	defer client.Close()

	code := 0
	enc := json.NewEncoder(stdout)
	for _, name := range names {
		st, err := readStatus(client, prefix, name)
		if err != nil {
			return exitUnavailable, err
		}
		if st.State != "free" {
			code = 1
		}
		if asJSON {
			if err := enc.Encode(st); err != nil {
				return exitSoftware, err
			}
		} else {
			writeText(stdout, st)
		}
	}
	return code, nil
}

// Score offsets of the sorted-set locks: a writer's expiry is stored above
// 2^50, a waiting writer's mark above 2^51 (see the package's permits.go).
const (
	writerOffset = 1 << 50
	waitOffset   = 1 << 51
)

func readStatus(client redis.UniversalClient, prefix, name string) (lockStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	st := lockStatus{Name: name, Key: prefix + name, State: "free", Waiters: -1, Holders: []holder{}}
	v, err := readScript.Run(ctx, client, []string{st.Key}).Slice()
	if err != nil {
		return st, fmt.Errorf("status %s: %w", st.Key, err)
	}
	if len(v) != 4 {
		return st, fmt.Errorf("status %s: unexpected reply %v", st.Key, v)
	}
	typ, _ := v[0].(string)
	pttl, _ := v[1].(int64)
	now, _ := v[2].(int64)
	body, _ := v[3].([]any)
	switch typ {
	case "none":
		return st, nil
	case "hash":
		st.State, st.Kind, st.LeaseMs = "held", "mutex", pttl
		if len(body) == 3 {
			st.Owner, _ = body[0].(string)
			st.Count = atoi(body[1])
			st.Token = atoi(body[2])
		}
		return st, nil
	case "zset":
		readSorted(ctx, client, &st, body, now, pttl, prefix)
		return st, nil
	}
	st.State, st.Kind, st.LeaseMs = "invalid", typ, pttl
	return st, nil
}

// readSorted fills st from the members and scores of a semaphore's or RW
// lock's sorted set, read at the server's time now.
func readSorted(ctx context.Context, client redis.UniversalClient, st *lockStatus, body []any, now, pttl int64, prefix string) {
	st.Kind = "rwlock"
	for i := 0; i+1 < len(body); i += 2 {
		m, _ := body[i].(string)
		score, err := strconv.ParseFloat(fmt.Sprint(body[i+1]), 64)
		if err != nil {
			continue
		}
		if m == "\x00limit" {
			st.Kind, st.Limit = "semaphore", int64(-score)
			continue
		}
		exp := int64(score)
		role := "reader"
		switch {
		case exp > waitOffset:
			if exp-waitOffset > now {
				st.Waiters = max(st.Waiters, 0) + 1
			}
			continue
		case exp > writerOffset:
			role, exp = "writer", exp-writerOffset
		}
		if exp <= now {
			continue // expired, not yet purged
		}
		owner, token := m, int64(0)
		if j := strings.LastIndexByte(m, '|'); j >= 0 {
			owner, token = m[:j], atoi(m[j+1:])
		}
		st.Holders = append(st.Holders, holder{Role: role, Owner: owner, Token: token, LeaseMs: exp - now})
	}
	if st.Kind == "semaphore" {
		for i := range st.Holders {
			st.Holders[i].Role = "permit"
		}
		st.Waiters = -1
		// The library's own count of live permits; it agrees with the
		// holders listed unless a permit expired between the two reads.
		if n, err := redislock.SemaphoreHolders(ctx, client, st.Name, redislock.WithKeyPrefix(prefix)); err == nil {
			st.Count = int64(n)
		} else {
			st.Count = int64(len(st.Holders))
		}
	} else {
		st.Count = int64(len(st.Holders))
		st.Waiters = max(st.Waiters, 0)
	}
	if st.Count > 0 {
		st.State, st.LeaseMs = "held", pttl
	}
}

func atoi(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func writeText(w io.Writer, st lockStatus) {
	lease := func(ms int64) string {
		if ms < 0 {
			return "no expiry"
		}
		return (time.Duration(ms) * time.Millisecond).String() + " left"
	}
	switch {
	case st.State == "free":
		fmt.Fprintf(w, "%s: free\n", st.Name)
	case st.State == "invalid":
		fmt.Fprintf(w, "%s: not a lock: key %s holds a %s\n", st.Name, st.Key, st.Kind)
	case st.Kind == "mutex":
		fmt.Fprintf(w, "%s: held by %s (count %d, lease %s, token %d)\n", st.Name, st.Owner, st.Count, lease(st.LeaseMs), st.Token)
	default:
		what := fmt.Sprintf("%d holders", st.Count)
		if st.Kind == "semaphore" {
			what = fmt.Sprintf("%d of %d permits held", st.Count, st.Limit)
		} else if st.Waiters > 0 {
			what += fmt.Sprintf(", %d writers waiting", st.Waiters)
		}
		fmt.Fprintf(w, "%s: %s, %s\n", st.Name, st.Kind, what)
		for _, h := range st.Holders {
			fmt.Fprintf(w, "  %s %s (lease %s, token %d)\n", h.Role, h.Owner, lease(h.LeaseMs), h.Token)
		}
	}
}
