package redislock

import (
	"container/heap"
	"sync"
	"time"
)

// deadlines fires the validity deadline of every Lock's own hold from one
// timer, so that a Lock made for each entity does not pay for a timer of
// its own. A hold is queued from its acquire until it ends, by the latest
// deadline a request gave it. When the timer fires, each hold whose
// deadline has come is handed to endAtDeadline, after deadlines.mu is let
// go: the Lock's mu is taken after deadlines.mu, never while it is held.
var deadlines = &deadlineQueue{}

func init() {
	deadlines.timer = time.AfterFunc(time.Hour, deadlines.fire)
	deadlines.timer.Stop()
}

type deadlineQueue struct {
	mu    sync.Mutex
	holds deadlineHeap
	timer *time.Timer
	next  int64 // when the timer fires, in monoNow's nanoseconds; 0: stopped
}

// epoch is the origin of the queue's times: nanoseconds on the monotonic
// clock since the package was loaded.
var epoch = time.Now()

func monoTime(t time.Time) int64 { return int64(t.Sub(epoch)) }

// arm queues h, or moves it in the queue, to fire at deadline.
func (q *deadlineQueue) arm(h *hold, deadline time.Time) {
	at := monoTime(deadline)
	q.mu.Lock()
	defer q.mu.Unlock()
	h.dlAt = at
	if h.dlIndex > 0 {
		heap.Fix(&q.holds, int(h.dlIndex-1))
	} else {
		heap.Push(&q.holds, h)
	}
	// A timer that fires too early finds nothing due and is set again.
	if q.next == 0 || at < q.next {
		q.next = at
		q.timer.Reset(time.Duration(at - monoTime(time.Now())))
	}
}

// stop takes h out of the queue, if it is there.
func (q *deadlineQueue) stop(h *hold) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if h.dlIndex > 0 {
		heap.Remove(&q.holds, int(h.dlIndex-1))
	}
}

// fire runs on the timer: it hands every hold whose deadline has come to
// its Lock, and sets the timer for the next.
func (q *deadlineQueue) fire() {
	q.mu.Lock()
	now := monoTime(time.Now())
	var due []*hold
	for len(q.holds) > 0 && q.holds[0].dlAt <= now {
		due = append(due, heap.Pop(&q.holds).(*hold))
	}
	q.next = 0
	if len(q.holds) > 0 {
		q.next = q.holds[0].dlAt
		q.timer.Reset(time.Duration(q.next - now))
	}
	q.mu.Unlock()
	// Every hold is told first (Lost closes, its contexts are cancelled);
	// the observers and loggers, which may take their time, hear of the
	// losses after.
	lost := due[:0]
	for _, h := range due {
		if h.lock.endAtDeadline(h) {
			lost = append(lost, h)
		}
	}
	for _, h := range lost {
		h.lock.lostReport(h)
		h.lock.unschedule(h)
	}
}

// deadlineHeap is a min-heap of holds by dlAt; a hold's dlIndex is its
// index + 1, and 0 when it is not queued.
type deadlineHeap []*hold

func (q deadlineHeap) Len() int           { return len(q) }
func (q deadlineHeap) Less(i, j int) bool { return q[i].dlAt < q[j].dlAt }
func (q deadlineHeap) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].dlIndex, q[j].dlIndex = int32(i+1), int32(j+1)
}
func (q *deadlineHeap) Push(x any) {
	h := x.(*hold)
	*q = append(*q, h)
	h.dlIndex = int32(len(*q))
}
func (q *deadlineHeap) Pop() any {
	old := *q
	h := old[len(old)-1]
	old[len(old)-1] = nil
	h.dlIndex = 0
	*q = old[:len(old)-1]
	if cap(*q) > 64 && len(*q) < cap(*q)/4 {
		*q = append(deadlineHeap(nil), *q...) // give back what a burst of holds grew
	}
	return h
}
