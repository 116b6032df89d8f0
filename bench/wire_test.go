package main

import "testing"

func TestRespParserCountsCommandsAcrossWrites(t *testing.T) {
	stream := "*3\r\n$3\r\nset\r\n$1\r\nk\r\n$4\r\nv*\r\n\r\n" + // a body with RESP-like bytes
		"*2\r\n$5\r\nhello\r\n$1\r\n3\r\n" + // upkeep: not counted
		"*1\r\n$4\r\nPING\r\n" + // upkeep in upper case
		"*4\r\n$7\r\nEVALSHA\r\n$40\r\n0123456789012345678901234567890123456789\r\n$1\r\n1\r\n$0\r\n\r\n"
	for split := 1; split <= len(stream); split++ {
		var p respParser
		var n int64
		for i := 0; i < len(stream); i += split {
			n += p.feed([]byte(stream[i:min(i+split, len(stream))]))
		}
		if n != 2 {
			t.Fatalf("writes of %d bytes: counted %d commands, want 2", split, n)
		}
	}
}

func TestRespParserRecordsCommandNames(t *testing.T) {
	names := &cmdNames{}
	p := respParser{names: names}
	p.feed([]byte("*2\r\n$7\r\nEVALSHA\r\n$1\r\nx\r\n*1\r\n$4\r\nping\r\n*2\r\n$3\r\ndel\r\n$1\r\nk\r\n"))
	for name, want := range map[string]bool{"evalsha": true, "del": true, "ping": false, "set": false} {
		if got := names.has(name); got != want {
			t.Errorf("has(%q) = %v, want %v", name, got, want)
		}
	}
}
