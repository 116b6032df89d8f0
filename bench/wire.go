package main

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
)

// Request counting on the wire.
//
// INFO commandstats counts the commands that Lua scripts run as well as the
// requests clients send, so a library that does its work in scripts looks
// busier there than one that sends plain commands, though each script is one
// request. To count requests (what a client sends: one EVALSHA is one), every
// contender's connections go through countingConn, which parses the RESP
// that the client writes and counts top-level commands. Clients send each
// command as an array of bulk strings, so the parser needs no more of RESP.

// dialCounting dials addr and counts the requests written on the connection
// into n, and records their command names in names (when not nil).
func dialCounting(ctx context.Context, d *net.Dialer, network, addr string, n *atomic.Int64, names *cmdNames) (net.Conn, error) {
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: n, p: respParser{names: names}}, nil
}

// cmdNames is the set of command names a client sent (lower case, upkeep
// left out). INFO commandstats times a script's inner commands both on
// their own and within the EVALSHA that ran them, so the server time of a
// client is the time of the commands it sent, and no others.
type cmdNames struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *cmdNames) add(name []byte) {
	s.mu.Lock()
	if !s.m[string(name)] {
		if s.m == nil {
			s.m = map[string]bool{}
		}
		s.m[string(name)] = true
	}
	s.mu.Unlock()
}

// has reports whether the client sent the command name (lower case).
func (s *cmdNames) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

type countingConn struct {
	net.Conn
	n  *atomic.Int64
	mu sync.Mutex
	p  respParser
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.mu.Lock()
		cmds := c.p.feed(b[:n])
		c.mu.Unlock()
		if cmds > 0 {
			c.n.Add(cmds)
		}
	}
	return n, err
}

// respParser follows a stream of RESP requests (arrays of bulk strings)
// across writes and counts the commands in it, less connection upkeep
// (HELLO, CLIENT, PING, AUTH, SELECT), which a client may send at any time
// and which INFO commandstats is read without as well.
type respParser struct {
	state int
	num   int64 // number being parsed
	elems int64 // bulk strings left in the current array
	first bool  // the current bulk string is the command name
	skip  int64 // bytes of bulk body (with its CRLF) left to skip
	name  [16]byte
	nlen  int
	names *cmdNames // when not nil, records the command names
}

const (
	stArray    = iota // expecting '*'
	stArrayLen        // digits of the array length, up to '\n'
	stBulk            // expecting '$'
	stBulkLen         // digits of the bulk length, up to '\n'
	stBody            // skipping a bulk body and its CRLF
	stInline          // an inline command, up to '\n'
)

func (p *respParser) feed(b []byte) int64 {
	var cmds int64
	for i := 0; i < len(b); {
		switch p.state {
		case stArray:
			if b[i] == '*' {
				p.state, p.num = stArrayLen, 0
			} else if b[i] != '\r' && b[i] != '\n' {
				cmds++ // an inline command (the clients here never send one)
				p.state = stInline
			}
			i++
		case stArrayLen, stBulkLen:
			c := b[i]
			i++
			switch {
			case c >= '0' && c <= '9':
				p.num = p.num*10 + int64(c-'0')
			case c == '\n' && p.state == stArrayLen:
				p.elems, p.first, p.nlen = p.num, true, 0
				p.state = stBulk
				if p.elems <= 0 {
					p.state = stArray
				}
			case c == '\n':
				p.skip = p.num + 2
				p.state = stBody
			}
		case stBulk:
			if b[i] == '$' {
				p.state, p.num = stBulkLen, 0
			}
			i++
		case stBody:
			k := int(min(int64(len(b)-i), p.skip))
			if p.first {
				for _, c := range b[i : i+k] {
					if p.nlen < len(p.name) && c != '\r' && c != '\n' {
						p.name[p.nlen] = c | 0x20 // lower case
						p.nlen++
					}
				}
			}
			i += k
			p.skip -= int64(k)
			if p.skip > 0 {
				continue
			}
			if p.first {
				p.first = false
				if !upkeep(p.name[:p.nlen]) {
					cmds++
					if p.names != nil {
						p.names.add(p.name[:p.nlen])
					}
				}
			}
			if p.elems--; p.elems > 0 {
				p.state = stBulk
			} else {
				p.state = stArray
			}
		case stInline:
			if b[i] == '\n' {
				p.state = stArray
			}
			i++
		}
	}
	return cmds
}

func upkeep(name []byte) bool {
	switch string(name) {
	case "hello", "client", "ping", "auth", "select":
		return true
	}
	return false
}
