package history

import (
	"bytes"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sop builds a shared operation on key "k".
func sop(c int, k Kind, m Mode, ok bool, token int64, call, ret int64) SharedOp {
	return SharedOp{Client: c, Key: "k", Kind: k, Mode: m, OK: ok, Fresh: ok && k != Release, Token: token, Call: call, Return: ret}
}

// reentry marks an acquire as taken by a Lock that already held.
func reentry(op SharedOp) SharedOp {
	op.Fresh = false
	return op
}

func TestCheckSemaphore(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []SharedOp
		want porcupine.CheckResult
	}{
		{"two share a limit of two", []SharedOp{
			sop(0, Acquire, Permit, true, 1, 0, 1), sop(1, Acquire, Permit, true, 2, 0, 2),
			sop(2, TryAcquire, Permit, false, 0, 3, 4),
			sop(0, Release, Permit, true, 0, 5, 6), sop(1, Release, Permit, true, 0, 5, 6),
		}, porcupine.Ok},
		{"a third inside", []SharedOp{
			sop(0, Acquire, Permit, true, 1, 0, 1), sop(1, Acquire, Permit, true, 2, 0, 2),
			sop(2, Acquire, Permit, true, 3, 3, 4),
		}, porcupine.Illegal},
		{"try fails with a permit free", []SharedOp{
			sop(0, Acquire, Permit, true, 1, 0, 1), sop(1, TryAcquire, Permit, false, 0, 2, 3),
		}, porcupine.Illegal},
		{"re-entry keeps the token", []SharedOp{
			sop(0, Acquire, Permit, true, 5, 0, 1), reentry(sop(0, Acquire, Permit, true, 5, 2, 3)),
			sop(0, Release, Permit, true, 0, 4, 5), sop(0, Release, Permit, true, 0, 6, 7),
		}, porcupine.Ok},
		{"re-entry with another token", []SharedOp{
			sop(0, Acquire, Permit, true, 5, 0, 1), reentry(sop(0, Acquire, Permit, true, 6, 2, 3)),
		}, porcupine.Illegal},
		{"token reused by a concurrent permit", []SharedOp{
			sop(0, Acquire, Permit, true, 5, 0, 3), sop(1, Acquire, Permit, true, 5, 0, 3),
		}, porcupine.Illegal},
		{"concurrent tokens in either order", []SharedOp{
			sop(0, Acquire, Permit, true, 6, 0, 3), sop(1, Acquire, Permit, true, 5, 0, 3),
		}, porcupine.Ok},
		{"released too often", []SharedOp{
			sop(0, Acquire, Permit, true, 1, 0, 1), sop(0, Release, Permit, true, 0, 2, 3), sop(0, Release, Permit, true, 0, 4, 5),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := CheckSemaphore(tc.ops, 2, 10*time.Second)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCheckRWLock(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []SharedOp
		want porcupine.CheckResult
	}{
		{"readers share", []SharedOp{
			sop(0, Acquire, Read, true, 1, 0, 1), sop(1, Acquire, Read, true, 2, 0, 2),
			sop(2, TryAcquire, Write, false, 0, 3, 4),
			sop(0, Release, Read, true, 0, 5, 6), sop(1, Release, Read, true, 0, 5, 6),
			sop(2, Acquire, Write, true, 3, 7, 8), sop(2, Release, Write, true, 0, 9, 10),
		}, porcupine.Ok},
		{"reader with a writer", []SharedOp{
			sop(0, Acquire, Write, true, 1, 0, 1), sop(1, Acquire, Read, true, 2, 2, 3),
		}, porcupine.Illegal},
		{"two writers", []SharedOp{
			sop(0, Acquire, Write, true, 1, 0, 1), sop(1, Acquire, Write, true, 2, 2, 3),
		}, porcupine.Illegal},
		{"writer with a reader", []SharedOp{
			sop(0, Acquire, Read, true, 1, 0, 1), sop(1, TryAcquire, Write, true, 2, 2, 3),
		}, porcupine.Illegal},
		{"downgrade", []SharedOp{
			sop(0, Acquire, Write, true, 1, 0, 1), sop(0, Acquire, Read, true, 2, 2, 3),
			sop(0, Release, Write, true, 0, 4, 5), sop(1, Acquire, Read, true, 3, 6, 7),
			sop(2, TryAcquire, Write, false, 0, 8, 9),
			sop(0, Release, Read, true, 0, 10, 11), sop(1, Release, Read, true, 0, 10, 11),
		}, porcupine.Ok},
		{"write try fails on a free lock", []SharedOp{
			sop(0, Acquire, Read, true, 1, 0, 1), sop(0, Release, Read, true, 0, 2, 3), sop(1, TryAcquire, Write, false, 0, 4, 5),
		}, porcupine.Illegal},
		{"token goes back", []SharedOp{
			sop(0, Acquire, Write, true, 5, 0, 1), sop(0, Release, Write, true, 0, 2, 3),
			sop(1, Acquire, Write, true, 4, 2, 5), sop(1, Release, Write, true, 0, 6, 7),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := CheckRWLock(tc.ops, 10*time.Second)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestSharedChunksCarryNoTokens(t *testing.T) {
	ops := []SharedOp{
		sop(0, Acquire, Permit, true, 5, 0, 1), sop(0, Release, Permit, true, 0, 2, 3),
		// quiescent and free at 3.5: the next piece starts with no token
		sop(1, Acquire, Permit, true, 4, 4, 5), sop(1, Release, Permit, true, 0, 6, 7),
	}
	assert.Equal(t, 2, SharedChunks(ops))
	got, _ := CheckSemaphore(ops, 1, 10*time.Second)
	assert.Equal(t, porcupine.Ok, got, "each piece alone is fine")
	d := TokenOrder(ops)
	require.Len(t, d, 1, "TokenOrder sees across the cut")
	assert.Equal(t, int64(5), d[0].A.Token)
	assert.Equal(t, int64(4), d[0].B.Token)

	ops[2].Token = 6
	assert.Empty(t, TokenOrder(ops))
	concurrent := []SharedOp{sop(0, Acquire, Permit, true, 6, 0, 3), sop(1, Acquire, Permit, true, 5, 1, 4)}
	assert.Empty(t, TokenOrder(concurrent), "overlapping calls may get tokens in either order")
}

func TestExcessPermitsAndRWConflicts(t *testing.T) {
	h := func(c int, m Mode, s, e int64) SharedHold {
		return SharedHold{Hold: Hold{Client: c, Key: "k", Start: s, End: e}, Mode: m}
	}
	permits := []SharedHold{h(0, Permit, 0, 10), h(1, Permit, 1, 5), h(2, Permit, 5, 9), h(3, Permit, 8, 12)}
	assert.Empty(t, ExcessPermits(permits, 3))
	got := ExcessPermits(permits, 2)
	require.Len(t, got, 1)
	assert.Equal(t, int64(8), got[0].At)
	assert.Len(t, got[0].Holds, 3)
	same := []SharedHold{h(0, Permit, 0, 10), h(0, Permit, 1, 5)}
	assert.Empty(t, ExcessPermits(same, 1), "one client's holds do not count twice")

	rw := []SharedHold{h(0, Read, 0, 10), h(1, Read, 2, 4), h(2, Write, 10, 20), h(2, Read, 15, 25), h(3, Read, 20, 30)}
	assert.Empty(t, RWConflicts(rw), "readers share; a downgrade overlaps its own writer")
	rw = append(rw, h(4, Write, 29, 31), h(5, Read, 12, 13))
	assert.Len(t, RWConflicts(rw), 2)
}

func TestSharedRoundTrip(t *testing.T) {
	var r SharedRecorder
	r.AddHold(SharedHold{Hold: Hold{Client: 1, Key: "k", Start: 1, End: 2, Token: 9}, Mode: Write})
	r.AddOp(SharedOp{Client: 1, Key: "k", Kind: Acquire, Mode: Read, OK: true, Fresh: true, Token: 9, Call: 3, Return: 4})
	var buf bytes.Buffer
	_, err := r.WriteTo(&buf)
	require.NoError(t, err)
	var got SharedRecorder
	_, err = got.ReadFrom(&buf)
	require.NoError(t, err)
	assert.Equal(t, r.Holds(), got.Holds())
	assert.Equal(t, r.Ops(), got.Ops())
}
