package history

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// mutexState is the reentrant mutex of one key: who holds it (client+1, 0
// when free) and how many levels.
type mutexState struct {
	owner int
	count int
}

type mutexInput struct {
	client int
	kind   Kind
}

// MutexModel is a reentrant mutex per key, as a porcupine model over
// operations whose Input is a mutexInput and whose Output is the OK bool.
//
//   - Acquire that returned OK: the key was free or the client's own; one
//     more level. Acquire that gave up: no change, legal in any state.
//   - TryAcquire OK: as Acquire. TryAcquire not OK: legal only while another
//     client holds the key.
//   - Release OK: legal only while the client holds the key; one level less.
//     A failed Release is never legal: no test that checks a history expects
//     one.
var MutexModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
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
			chunks = append(chunks, quiescentChunks(p)...)
		}
		return chunks
	},
	Init: func() any { return mutexState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, ok := state.(mutexState), input.(mutexInput), output.(bool)
		me := in.client + 1
		free := s.owner == 0 || s.owner == me
		switch {
		case in.kind == Acquire && !ok:
			return true, s
		case (in.kind == Acquire || in.kind == TryAcquire) && ok:
			return free, mutexState{owner: me, count: s.count + 1}
		case in.kind == TryAcquire:
			return !free, s
		case in.kind == Release && ok && s.owner == me && s.count > 0:
			if s.count == 1 {
				return true, mutexState{}
			}
			return true, mutexState{owner: me, count: s.count - 1}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(mutexInput)
		return fmt.Sprintf("%v(client %d) -> %v", in.kind, in.client, output)
	},
	DescribeState: func(state any) string {
		s := state.(mutexState)
		if s.owner == 0 {
			return "free"
		}
		return fmt.Sprintf("client %d ×%d", s.owner-1, s.count)
	},
}

// quiescentChunks cuts the history of one key where it is quiescent: every
// earlier operation has returned, no later one was called yet, and every
// client has released as many levels as it acquired, so the mutex is free
// whatever the linearization. Each chunk then starts from the initial state
// and can be checked on its own, which keeps the check linear in the length
// of the history instead of quadratic.
func quiescentChunks(ops []porcupine.Operation) [][]porcupine.Operation {
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	var chunks [][]porcupine.Operation
	balance := make(map[int]int) // levels held per client
	held := 0                    // clients with a nonzero balance
	lastReturn := int64(math.MinInt64)
	from := 0
	for i, op := range ops {
		if i > from && held == 0 && op.Call > lastReturn {
			chunks = append(chunks, ops[from:i])
			from = i
		}
		lastReturn = max(lastReturn, op.Return)
		in, ok := op.Input.(mutexInput), op.Output.(bool)
		if !ok { // a failed operation changes nothing
			continue
		}
		before := balance[in.client]
		if in.kind == Release {
			balance[in.client]--
		} else {
			balance[in.client]++
		}
		switch after := balance[in.client]; {
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

// CheckLinearizable checks ops against [MutexModel], giving up after timeout
// (porcupine.Unknown). It waits for the checker's goroutines before it
// returns.
func CheckLinearizable(ops []Op, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	pops := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		pops[i] = porcupine.Operation{
			ClientId: op.Client,
			Input:    mutexInput{client: op.Client, kind: op.Kind},
			Call:     op.Call,
			Output:   op.OK,
			Return:   op.Return,
			Metadata: op.Key,
		}
	}
	// The verbose form waits for every partition's goroutine, so none is
	// left running after a timeout or a failure.
	return porcupine.CheckOperationsVerbose(MutexModel, pops, timeout)
}

// Chunks returns how many independently checked pieces [CheckLinearizable]
// cuts ops into.
func Chunks(ops []Op) int {
	pops := make([]porcupine.Operation, len(ops))
	for i, op := range ops {
		pops[i] = porcupine.Operation{Input: mutexInput{client: op.Client, kind: op.Kind}, Call: op.Call, Output: op.OK, Return: op.Return, Metadata: op.Key}
	}
	return len(MutexModel.Partition(pops))
}
