// Package faultproxy provides a TCP proxy for tests that injects network
// faults: latency, partitions and dropped connections.
package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	dialTimeout = 5 * time.Second
	chunkSize   = 32 << 10 // bytes read at a time
	queueLen    = 64       // chunks in flight per direction: at most 2 MiB
)

// Proxy forwards TCP connections from a loopback listener to a target
// address. Its methods may be called from any goroutine.
type Proxy struct {
	ln      net.Listener
	target  string
	ctx     context.Context // canceled by Close
	cancel  context.CancelFunc
	latency atomic.Int64 // time.Duration
	blocked atomic.Bool  // blackholed

	mu     sync.Mutex
	links  map[*link]struct{}
	closed bool

	wg        sync.WaitGroup // every goroutine of the proxy
	closeOnce sync.Once
	closeErr  error
}

// New listens on 127.0.0.1:0 and forwards each accepted connection to
// target, dialed when the connection is accepted. It returns once
// listening. Call [Proxy.Close] to stop it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{ln: ln, target: target, ctx: ctx, cancel: cancel, links: map[*link]struct{}{}}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

// Addr returns the address the proxy listens on, as "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays each chunk of data read from now on by d, in both
// directions, so a round trip takes at least 2*d longer. Data keeps its
// order: a chunk is never delivered before the ones read earlier, even if
// d shrinks. A d of 0 or less removes the delay.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(d, 0))) }

// Blackhole stops delivering data in both directions until [Proxy.Heal],
// like a network partition: data read meanwhile, or due for delivery
// meanwhile, is dropped. Connections stay open, new ones are accepted, and
// a peer's close (FIN) is still passed on.
func (p *Proxy) Blackhole() { p.blocked.Store(true) }

// Heal ends a blackhole. Dropped data stays lost; the latency is kept.
func (p *Proxy) Heal() { p.blocked.Store(false) }

// DropConnections closes both sides of every open proxied connection,
// including those still dialing the target. It does not wait for their
// goroutines; new connections are accepted as usual.
func (p *Proxy) DropConnections() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// Close stops the listener, closes every connection and waits for all
// goroutines of the proxy to exit. It returns the listener's close error;
// later calls return nil.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		p.closeErr = p.ln.Close()
		p.DropConnections()
		p.wg.Wait()
	})
	return p.closeErr
}

func (p *Proxy) acceptLoop() {
	var backoff time.Duration // after errors other than Close, as in net/http
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		ctx, cancel := context.WithCancel(p.ctx)
		l := &link{p: p, client: c, ctx: ctx, cancel: cancel}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.close()
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Go(l.run) // safe after Close's Wait began: this goroutine is counted
		p.mu.Unlock()
	}
}

// link is one proxied connection: client is the accepted side, upstream
// the dialed one. Each direction has a reader, which queues chunks with
// their due time, and a writer, which delivers them in order when due.
type link struct {
	p      *Proxy
	client net.Conn
	ctx    context.Context // canceled by close
	cancel context.CancelFunc

	mu       sync.Mutex
	upstream net.Conn // set once dialed, unless already closed

	writers atomic.Int32 // directions not yet finished
}

// close closes both sides and stops the link's goroutines. It may be called
// more than once.
func (l *link) close() {
	l.cancel()
	l.client.Close()
	l.mu.Lock()
	if l.upstream != nil {
		l.upstream.Close()
	}
	l.mu.Unlock()
	l.p.mu.Lock()
	delete(l.p.links, l)
	l.p.mu.Unlock()
}

// run dials the target and starts the pumps.
func (l *link) run() {
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(l.ctx, "tcp", l.p.target)
	if err != nil {
		l.close()
		return
	}
	l.mu.Lock()
	if l.ctx.Err() != nil { // closed while dialing
		l.mu.Unlock()
		up.Close()
		return
	}
	l.upstream = up
	l.mu.Unlock()

	l.writers.Store(2)
	for _, dir := range [][2]net.Conn{{l.client, up}, {up, l.client}} {
		q := make(chan chunk, queueLen)
		l.p.wg.Go(func() { l.read(dir[0], q) })
		l.p.wg.Go(func() { l.write(dir[1], q) })
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// read queues what src sends, stamped with its due time, and closes q when
// src has no more to send. It drops data while the proxy is blackholed.
func (l *link) read(src net.Conn, q chan<- chunk) {
	defer close(q)
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.p.blocked.Load() {
			c := chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(l.p.latency.Load()))}
			select {
			case q <- c:
			case <-l.ctx.Done():
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.close() // reset, or closed by us
			}
			return
		}
	}
}

// write delivers the chunks of q to dst when due, then half-closes dst.
// The link is closed once both directions are done, or on a write error.
func (l *link) write(dst net.Conn, q <-chan chunk) {
	t := time.NewTimer(time.Hour)
	t.Stop()
	for c := range q { // read closes q when the link closes
		if d := time.Until(c.due); d > 0 {
			t.Reset(d)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				return
			}
		}
		if l.p.blocked.Load() {
			continue
		}
		if _, err := dst.Write(c.data); err != nil {
			l.close()
			return
		}
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && l.ctx.Err() == nil {
		if err := cw.CloseWrite(); err == nil && l.writers.Add(-1) > 0 {
			return // the other direction is still open
		}
	}
	l.close()
}
