package history

import (
	"bytes"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNowMonotonic(t *testing.T) {
	a := Now()
	time.Sleep(time.Millisecond)
	b := Now()
	assert.GreaterOrEqual(t, b-a, int64(time.Millisecond))
}

func TestOverlaps(t *testing.T) {
	for _, tc := range []struct {
		name  string
		holds []Hold
		want  int
	}{
		{"none", nil, 0},
		{"sequential", []Hold{{Client: 1, Key: "k", Start: 0, End: 10}, {Client: 2, Key: "k", Start: 10, End: 20}}, 0},
		{"overlap", []Hold{{Client: 1, Key: "k", Start: 0, End: 10}, {Client: 2, Key: "k", Start: 9, End: 20}}, 1},
		{"contained", []Hold{{Client: 1, Key: "k", Start: 0, End: 100}, {Client: 2, Key: "k", Start: 10, End: 20}, {Client: 3, Key: "k", Start: 30, End: 40}}, 2},
		{"other keys", []Hold{{Client: 1, Key: "a", Start: 0, End: 10}, {Client: 2, Key: "b", Start: 5, End: 20}}, 0},
		{"same client", []Hold{{Client: 1, Key: "k", Start: 0, End: 10}, {Client: 1, Key: "k", Start: 5, End: 20}}, 0},
		{"out of order", []Hold{{Client: 2, Key: "k", Start: 15, End: 30}, {Client: 1, Key: "k", Start: 0, End: 20}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Overlaps(tc.holds)
			assert.Len(t, got, tc.want, "%v", got)
		})
	}
}

func TestTokenInversions(t *testing.T) {
	holds := []Hold{
		{Client: 1, Key: "k", Start: 0, End: 1, Token: 5},
		{Client: 2, Key: "k", Start: 2, End: 3, Token: 7},
		{Client: 1, Key: "k", Start: 4, End: 5, Token: 7},
		{Client: 1, Key: "j", Start: 4, End: 5, Token: 1},
		{Client: 3, Key: "k", Start: 6, End: 7},
	}
	got := TokenInversions(holds)
	require.Len(t, got, 1)
	assert.Equal(t, int64(4), got[0].B.Start)
}

func TestCheckLinearizable(t *testing.T) {
	op := func(c int, k Kind, ok bool, call, ret int64) Op {
		return Op{Client: c, Key: "k", Kind: k, OK: ok, Call: call, Return: ret}
	}
	for _, tc := range []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{"handover", []Op{
			op(0, Acquire, true, 0, 1), op(1, Acquire, true, 0, 5),
			op(0, Release, true, 2, 4), op(1, Release, true, 6, 7),
		}, porcupine.Ok},
		{"release and acquire concurrent", []Op{
			op(0, Acquire, true, 0, 1), op(0, Release, true, 2, 10), op(1, Acquire, true, 3, 5), op(1, Release, true, 11, 12),
		}, porcupine.Ok},
		{"reentrant", []Op{
			op(0, Acquire, true, 0, 1), op(0, TryAcquire, true, 2, 3), op(1, TryAcquire, false, 2, 3),
			op(0, Release, true, 4, 5), op(1, TryAcquire, false, 6, 7), op(0, Release, true, 8, 9),
			op(1, TryAcquire, true, 10, 11),
		}, porcupine.Ok},
		{"two holders", []Op{
			op(0, Acquire, true, 0, 1), op(1, Acquire, true, 2, 3),
		}, porcupine.Illegal},
		{"try fails on a free lock", []Op{
			op(0, Acquire, true, 0, 1), op(0, Release, true, 2, 3), op(1, TryAcquire, false, 4, 5),
		}, porcupine.Illegal},
		{"released too often", []Op{
			op(0, Acquire, true, 0, 1), op(0, Release, true, 2, 3), op(0, Release, true, 4, 5),
		}, porcupine.Illegal},
		{"gave up", []Op{
			op(0, Acquire, true, 0, 1), op(1, Acquire, false, 0, 5), op(0, Release, true, 6, 7),
		}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := CheckLinearizable(tc.ops, 10*time.Second)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	var r Recorder
	r.AddHold(Hold{Client: 1, Key: "k", Start: 1, End: 2, Lost: true})
	r.AddOp(Op{Client: 1, Key: "k", Kind: Release, OK: true, Call: 3, Return: 4})
	var buf bytes.Buffer
	_, err := r.WriteTo(&buf)
	require.NoError(t, err)
	var got Recorder
	_, err = got.ReadFrom(&buf)
	require.NoError(t, err)
	assert.Equal(t, r.Holds(), got.Holds())
	assert.Equal(t, r.Ops(), got.Ops())
}

func TestQuiescentChunks(t *testing.T) {
	op := func(c int, k Kind, ok bool, call, ret int64) Op {
		return Op{Client: c, Key: "k", Kind: k, OK: ok, Call: call, Return: ret}
	}
	ops := []Op{
		op(0, Acquire, true, 0, 1), op(1, Acquire, true, 0, 5), op(0, Release, true, 2, 4), op(1, Release, true, 6, 7),
		// quiescent and free at 8
		op(0, Acquire, true, 8, 9), op(0, Release, true, 10, 11), op(1, TryAcquire, false, 10, 12),
		// free but not quiescent at 11.5: the TryAcquire is pending;
		// quiescent and free at 13
		op(1, TryAcquire, true, 13, 14),
		// quiescent but held at 15
		op(1, Release, true, 16, 17),
	}
	got, _ := CheckLinearizable(ops, 10*time.Second)
	assert.Equal(t, porcupine.Ok, got)
	pops := make([]porcupine.Operation, len(ops))
	for i, o := range ops {
		pops[i] = porcupine.Operation{Input: mutexInput{client: o.Client, kind: o.Kind}, Output: o.OK, Call: o.Call, Return: o.Return, Metadata: o.Key}
	}
	chunks := MutexModel.Partition(pops)
	require.Len(t, chunks, 3)
	assert.Len(t, chunks[0], 4)
	assert.Len(t, chunks[1], 3)
	assert.Len(t, chunks[2], 2)

	// A violation across a cut is still found: the second chunk starts free.
	bad := append(ops[:4:4], op(0, Release, true, 8, 9))
	got, _ = CheckLinearizable(bad, 10*time.Second)
	assert.Equal(t, porcupine.Illegal, got)
}
