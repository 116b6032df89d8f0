// Package history records what lock holders did, on one clock, and checks
// the record: that no two live holds of a key overlap ([Overlaps]) and that
// the acquire and release operations are linearizable against a reentrant
// mutex ([CheckLinearizable]).
//
// A hold is live from the moment Acquire returned until Release was called
// or the hold's lost signal fired. Holders stamp its start after Acquire
// returns and its end before they call Release, so recorded holds are never
// longer than the live ones: an overlap the checker reports is real.
package history

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
)

// A Hold is one tenure of a lock by one client, from its outermost acquire
// to its last release or its loss.
type Hold struct {
	Client int    `json:"c"` // unique per Lock across the processes of a run
	Key    string `json:"k"`
	Start  int64  `json:"s"` // Now after Acquire returned
	End    int64  `json:"e"` // Now before Release was called, or when the loss was seen
	Lost   bool   `json:"l,omitempty"`
	Token  int64  `json:"t,omitempty"` // fencing token, if the lock gives one
}

// Kind is what an [Op] did.
type Kind uint8

// The operations of the reentrant-mutex model.
const (
	Acquire    Kind = iota // blocking acquire; OK false means it gave up
	TryAcquire             // one attempt; OK false means another owner held the lock
	Release                // one level; OK false means it returned an error
)

func (k Kind) String() string {
	switch k {
	case Acquire:
		return "Acquire"
	case TryAcquire:
		return "TryAcquire"
	case Release:
		return "Release"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// An Op is one call with the clock read just before it and just after it
// returned.
type Op struct {
	Client int    `json:"c"`
	Key    string `json:"k"`
	Kind   Kind   `json:"o"`
	OK     bool   `json:"ok"`
	Call   int64  `json:"t0"`
	Return int64  `json:"t1"`
}

// A Recorder collects holds and operations from many goroutines.
type Recorder = Log[Hold, Op]

// A Log collects holds of type H and operations of type O from many
// goroutines, and hands them between processes as JSON lines.
type Log[H, O any] struct {
	mu    sync.Mutex
	holds []H
	ops   []O
}

// AddHold records a finished hold.
func (r *Log[H, O]) AddHold(h H) {
	r.mu.Lock()
	r.holds = append(r.holds, h)
	r.mu.Unlock()
}

// AddOp records a finished operation.
func (r *Log[H, O]) AddOp(op O) {
	r.mu.Lock()
	r.ops = append(r.ops, op)
	r.mu.Unlock()
}

// Holds returns a copy of the recorded holds.
func (r *Log[H, O]) Holds() []H {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.holds)
}

// Ops returns a copy of the recorded operations.
func (r *Log[H, O]) Ops() []O {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ops)
}

// record is one line of the encoded form: a hold or an operation.
type record[H, O any] struct {
	Hold *H `json:"h,omitempty"`
	Op   *O `json:"op,omitempty"`
}

// WriteTo writes the record as JSON lines, for a process to hand its
// history to another.
func (r *Log[H, O]) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	enc := json.NewEncoder(bw)
	for i := range r.holds {
		if err := enc.Encode(record[H, O]{Hold: &r.holds[i]}); err != nil {
			return cw.n, err
		}
	}
	for i := range r.ops {
		if err := enc.Encode(record[H, O]{Op: &r.ops[i]}); err != nil {
			return cw.n, err
		}
	}
	err := bw.Flush()
	return cw.n, err
}

// ReadFrom adds the records that [Log.WriteTo] wrote.
func (r *Log[H, O]) ReadFrom(rd io.Reader) (int64, error) {
	cr := &countReader{r: rd}
	dec := json.NewDecoder(bufio.NewReader(cr))
	for {
		var rec record[H, O]
		if err := dec.Decode(&rec); err == io.EOF {
			return cr.n, nil
		} else if err != nil {
			return cr.n, err
		}
		switch {
		case rec.Hold != nil:
			r.AddHold(*rec.Hold)
		case rec.Op != nil:
			r.AddOp(*rec.Op)
		}
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
