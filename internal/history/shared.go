package history

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// Mode is the kind of hold an operation on a shared lock takes or gives
// back: a semaphore permit, or a read or write level of a readers-writer
// lock.
type Mode uint8

// The modes of a [SharedOp] and a [SharedHold].
const (
	Permit Mode = iota
	Read
	Write
)

func (m Mode) String() string {
	switch m {
	case Permit:
		return "permit"
	case Read:
		return "read"
	case Write:
		return "write"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// A SharedOp is one call on a lock that several clients may hold at once.
// Client identifies the owner: the reader and the writer of one RW lock
// handle share it, so that a downgrade is one client holding both.
type SharedOp struct {
	Client int    `json:"c"`
	Key    string `json:"k"`
	Kind   Kind   `json:"o"`
	Mode   Mode   `json:"m"`
	OK     bool   `json:"ok"`
	Fresh  bool   `json:"f,omitempty"` // an acquire by a Lock that held nothing before the call
	Token  int64  `json:"t,omitempty"` // the hold's fencing token, after a successful acquire
	Call   int64  `json:"t0"`
	Return int64  `json:"t1"`
}

// A SharedHold is one tenure of a shared lock by one client in one mode,
// stamped as [Hold] is: inside its live interval.
type SharedHold struct {
	Hold
	Mode Mode `json:"m"`
}

// A SharedRecorder collects shared holds and operations from many
// goroutines, and hands them between processes as JSON lines.
type SharedRecorder = Log[SharedHold, SharedOp]

// An Excess is a moment when more holds of a key were live than allowed:
// Holds are the live ones (different clients; for an RW lock, the write
// hold first).
type Excess struct {
	At    int64
	Holds []SharedHold
}

func (e Excess) String() string {
	s := fmt.Sprintf("key %q at %d:", e.Holds[0].Key, e.At)
	for _, h := range e.Holds {
		s += fmt.Sprintf(" client %d %v [%d, %d]", h.Client, h.Mode, h.Start, h.End)
	}
	return s
}

// ExcessPermits returns every moment a hold started while limit or more
// holds of other clients on its key were live: more than limit permits at
// once. Holds that touch do not overlap.
func ExcessPermits(holds []SharedHold, limit int) []Excess {
	var out []Excess
	sweep(holds, func(h SharedHold, live []SharedHold) {
		var others []SharedHold
		for _, o := range live {
			if o.Client != h.Client {
				others = append(others, o)
			}
		}
		if len(others) >= limit {
			out = append(out, Excess{At: h.Start, Holds: append(others, h)})
		}
	})
	return out
}

// RWConflicts returns every pair of live holds of one key by different
// clients of which at least one is a write hold: a reader with a writer, or
// two writers. One client's read and write holds may overlap (a downgrade).
func RWConflicts(holds []SharedHold) []Excess {
	var out []Excess
	sweep(holds, func(h SharedHold, live []SharedHold) {
		for _, o := range live {
			if o.Client != h.Client && (o.Mode == Write || h.Mode == Write) {
				out = append(out, Excess{At: h.Start, Holds: []SharedHold{o, h}})
			}
		}
	})
	return out
}

// sweep calls f for each hold, by key and start, with the holds of its key
// still live when it starts.
func sweep(holds []SharedHold, f func(h SharedHold, live []SharedHold)) {
	byKey := make(map[string][]SharedHold)
	for _, h := range holds {
		byKey[h.Key] = append(byKey[h.Key], h)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		hs := byKey[k]
		slices.SortFunc(hs, func(a, b SharedHold) int {
			return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
		})
		var live []SharedHold
		for _, h := range hs {
			live = slices.DeleteFunc(live, func(o SharedHold) bool { return o.End <= h.Start })
			f(h, live)
			live = append(live, h)
		}
	}
}

// A TokenDisorder is two fresh acquisitions of one key, the first of which
// returned before the second was called, whose tokens do not increase.
type TokenDisorder struct {
	A, B SharedOp
}

func (d TokenDisorder) String() string {
	return fmt.Sprintf("key %q: client %d got token %d (returned %d), then client %d got token %d (called %d)",
		d.A.Key, d.A.Client, d.A.Token, d.A.Return, d.B.Client, d.B.Token, d.B.Call)
}

// TokenOrder checks fencing tokens in real time, across the pieces that
// [CheckSemaphore] and [CheckRWLock] check apart: every fresh acquisition
// must get a larger token than every fresh acquisition of its key that
// returned before it was called.
func TokenOrder(ops []SharedOp) []TokenDisorder {
	byKey := make(map[string][]SharedOp)
	for _, op := range ops {
		if op.OK && op.Fresh && op.Kind != Release {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	var out []TokenDisorder
	for _, fresh := range byKey {
		byCall := slices.Clone(fresh)
		slices.SortFunc(byCall, func(a, b SharedOp) int { return cmp.Compare(a.Call, b.Call) })
		byReturn := fresh
		slices.SortFunc(byReturn, func(a, b SharedOp) int { return cmp.Compare(a.Return, b.Return) })
		// Sweep the calls in order, keeping the returned acquisition with
		// the largest token.
		var best SharedOp
		have := false
		i := 0
		for _, b := range byCall {
			for ; i < len(byReturn) && byReturn[i].Return < b.Call; i++ {
				if !have || byReturn[i].Token > best.Token {
					best, have = byReturn[i], true
				}
			}
			if have && b.Token <= best.Token {
				out = append(out, TokenDisorder{A: best, B: b})
			}
		}
	}
	return out
}

// sharedHolder is one client's hold in a model state.
type sharedHolder struct {
	client int
	count  int
	token  int64
}

// sharedState is the state of one key: the read holds or permits, sorted by
// client, the write hold (client+1, 0 when none), and the largest token
// issued so far. Step functions never change a state in place.
type sharedState struct {
	holders []sharedHolder
	writer  sharedHolder
	last    int64
}

func (s sharedState) find(client int) int {
	for i, h := range s.holders {
		if h.client == client {
			return i
		}
	}
	return -1
}

// with returns s with holder i's count changed by d (removed at 0), or a
// new holder added when i is -1.
func (s sharedState) with(i int, d int, add sharedHolder) sharedState {
	hs := slices.Clone(s.holders)
	switch {
	case i < 0:
		hs = append(hs, add)
		slices.SortFunc(hs, func(a, b sharedHolder) int { return cmp.Compare(a.client, b.client) })
	case hs[i].count+d == 0:
		hs = slices.Delete(hs, i, i+1)
	default:
		hs[i].count += d
	}
	s.holders = hs
	return s
}

type sharedInput struct {
	client int
	kind   Kind
	mode   Mode
	fresh  bool
}

type sharedOutput struct {
	ok    bool
	token int64
}

func equalShared(a, b any) bool {
	x, y := a.(sharedState), b.(sharedState)
	return x.writer == y.writer && x.last == y.last && slices.Equal(x.holders, y.holders)
}

func hashShared(a any) uint64 {
	s := a.(sharedState)
	h := uint64(s.last)*31 + uint64(s.writer.client)*7 + uint64(s.writer.count)
	for _, x := range s.holders {
		h = h*1000003 + uint64(x.client)*17 + uint64(x.count)
	}
	return h
}

func describeShared(state any) string {
	s := state.(sharedState)
	out := fmt.Sprintf("last token %d;", s.last)
	if s.writer.client != 0 {
		out += fmt.Sprintf(" writer client %d ×%d (token %d);", s.writer.client-1, s.writer.count, s.writer.token)
	}
	for _, h := range s.holders {
		out += fmt.Sprintf(" client %d ×%d (token %d)", h.client, h.count, h.token)
	}
	return out
}

func describeSharedOp(input, output any) string {
	in, out := input.(sharedInput), output.(sharedOutput)
	fresh := ""
	if in.fresh {
		fresh = " fresh"
	}
	return fmt.Sprintf("%v %v%s (client %d) -> %v token %d", in.kind, in.mode, fresh, in.client, out.ok, out.token)
}

// stepAcquired checks a successful acquire of a read hold or permit by
// in.client: a re-entry keeps the token, a fresh one needs room (admit) and
// a token above every earlier one.
func stepAcquired(s sharedState, in sharedInput, out sharedOutput, admit bool) (bool, any) {
	if i := s.find(in.client); i >= 0 {
		return !in.fresh && out.token == s.holders[i].token, s.with(i, 1, sharedHolder{})
	}
	if !in.fresh || !admit || out.token <= s.last {
		return false, s
	}
	s = s.with(-1, 0, sharedHolder{client: in.client, count: 1, token: out.token})
	s.last = out.token
	return true, s
}

// SemaphoreModel is a counting semaphore of limit permits per key, each
// client holding at most one (reentrant), as a porcupine model over
// operations from [CheckSemaphore].
//
//   - Acquire or TryAcquire that returned OK: a re-entry of the client's
//     permit keeps its token; a fresh permit needs fewer than limit held and
//     gets a token above every token issued before on the key.
//   - Acquire that gave up: no change, legal in any state.
//   - TryAcquire not OK: legal only when the client holds no permit and
//     limit are held.
//   - Release OK: legal only while the client holds a permit; one level
//     less. A failed Release is never legal.
func SemaphoreModel(limit int) porcupine.Model {
	return porcupine.Model{
		Partition: partitionShared,
		Init:      func() any { return sharedState{} },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(sharedState), input.(sharedInput), output.(sharedOutput)
			i := s.find(in.client)
			switch {
			case in.kind == Acquire && !out.ok:
				return true, s
			case in.kind != Release && out.ok:
				return stepAcquired(s, in, out, len(s.holders) < limit)
			case in.kind == TryAcquire:
				return i < 0 && len(s.holders) >= limit, s
			case in.kind == Release && out.ok && i >= 0:
				return true, s.with(i, -1, sharedHolder{})
			}
			return false, s
		},
		Equal:             equalShared,
		Hash:              hashShared,
		DescribeOperation: describeSharedOp,
		DescribeState:     describeShared,
	}
}

// RWLockModel is a readers-writer lock per key, as a porcupine model over
// operations from [CheckRWLock]. Each client is one RW lock handle: a
// reentrant read hold and a reentrant write hold.
//
//   - A write acquire that returned OK: a re-entry keeps the token; a fresh
//     one needs no read or write hold at all and gets a new, larger token.
//   - A read acquire that returned OK: a re-entry keeps the token; a fresh
//     one needs no write hold of another client (its own is a downgrade) and
//     gets a new, larger token.
//   - An Acquire that gave up: legal in any state.
//   - A write TryAcquire not OK: legal only when another client holds (read
//     or write) and this client holds no write level.
//   - A read TryAcquire not OK: legal whenever this client holds neither
//     level, since a waiting writer, which the model does not see, keeps new
//     readers out.
//   - Release OK: legal only while the client holds that mode.
func RWLockModel() porcupine.Model {
	return porcupine.Model{
		Partition: partitionShared,
		Init:      func() any { return sharedState{} },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(sharedState), input.(sharedInput), output.(sharedOutput)
			me := in.client + 1
			ownWriter := s.writer.client == me
			switch {
			case in.kind == Acquire && !out.ok:
				return true, s
			case in.kind != Release && out.ok && in.mode == Write:
				if ownWriter {
					if in.fresh || out.token != s.writer.token {
						return false, s
					}
					s.writer.count++
					return true, s
				}
				if !in.fresh || s.writer.client != 0 || len(s.holders) > 0 || out.token <= s.last {
					return false, s
				}
				s.writer, s.last = sharedHolder{client: me, count: 1, token: out.token}, out.token
				return true, s
			case in.kind != Release && out.ok:
				return stepAcquired(s, in, out, s.writer.client == 0 || ownWriter)
			case in.kind == TryAcquire && in.mode == Write:
				return !ownWriter && (s.writer.client != 0 || len(s.holders) > 0), s
			case in.kind == TryAcquire:
				return !ownWriter && s.find(in.client) < 0, s
			case in.kind == Release && out.ok && in.mode == Write && ownWriter:
				if s.writer.count--; s.writer.count == 0 {
					s.writer = sharedHolder{}
				}
				return true, s
			case in.kind == Release && out.ok && in.mode != Write:
				if i := s.find(in.client); i >= 0 {
					return true, s.with(i, -1, sharedHolder{})
				}
			}
			return false, s
		},
		Equal:             equalShared,
		Hash:              hashShared,
		DescribeOperation: describeSharedOp,
		DescribeState:     describeShared,
	}
}

// partitionShared splits a history by key, and each key's history where it
// is quiescent and free, as [MutexModel] does.
func partitionShared(history []porcupine.Operation) [][]porcupine.Operation {
	index := make(map[string]int)
	var parts [][]porcupine.Operation
	for _, op := range history {
		k := op.Metadata.(string)
		i, ok := index[k]
		if !ok {
			i = len(parts)
			index[k] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], op)
	}
	var chunks [][]porcupine.Operation
	for _, p := range parts {
		chunks = append(chunks, sharedChunks(p)...)
	}
	return chunks
}

// sharedChunks is quiescentChunks for shared operations: levels are counted
// per client and mode.
func sharedChunks(ops []porcupine.Operation) [][]porcupine.Operation {
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	type level struct {
		client int
		mode   Mode
	}
	var chunks [][]porcupine.Operation
	balance := make(map[level]int)
	held := 0
	lastReturn := int64(math.MinInt64)
	from := 0
	for i, op := range ops {
		if i > from && held == 0 && op.Call > lastReturn {
			chunks = append(chunks, ops[from:i])
			from = i
		}
		lastReturn = max(lastReturn, op.Return)
		in, out := op.Input.(sharedInput), op.Output.(sharedOutput)
		if !out.ok {
			continue
		}
		l := level{in.client, in.mode}
		before := balance[l]
		if in.kind == Release {
			balance[l]--
		} else {
			balance[l]++
		}
		switch after := balance[l]; {
		case before == 0 && after != 0:
			held++
		case before != 0 && after == 0:
			held--
		}
	}
	if from < len(ops) {
		chunks = append(chunks, ops[from:])
	}
	return chunks
}

func sharedOperations(ops []SharedOp) []porcupine.Operation {
	pops := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		pops[i] = porcupine.Operation{
			ClientId: op.Client,
			Input:    sharedInput{client: op.Client, kind: op.Kind, mode: op.Mode, fresh: op.Fresh},
			Call:     op.Call,
			Output:   sharedOutput{ok: op.OK, token: op.Token},
			Return:   op.Return,
			Metadata: op.Key,
		}
	}
	return pops
}

// CheckSemaphore checks ops against [SemaphoreModel] with limit permits,
// giving up after timeout (porcupine.Unknown). It waits for the checker's
// goroutines before it returns.
func CheckSemaphore(ops []SharedOp, limit int, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(SemaphoreModel(limit), sharedOperations(ops), timeout)
}

// CheckRWLock checks ops against [RWLockModel], as CheckSemaphore does.
func CheckRWLock(ops []SharedOp, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(RWLockModel(), sharedOperations(ops), timeout)
}

// SharedChunks returns how many independently checked pieces CheckSemaphore
// and CheckRWLock cut ops into.
func SharedChunks(ops []SharedOp) int {
	return len(partitionShared(sharedOperations(ops)))
}
