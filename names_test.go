package redislock

import "testing"

func TestKeySlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		{"123456789", 0x31C3 % 16384}, // the CRC-16/XMODEM check value
		{"somekey", 11058},            // values from the CLUSTER KEYSLOT documentation
		{"foo{hash_tag}", 2515},
		{"bar{hash_tag}", 2515},
		{"{}hash_tag", crc16("{}hash_tag") % 16384}, // an empty tag does not count
		{"a{b}c{d}", crc16("b") % 16384},            // only the first tag counts
		{"x}y{", crc16("x}y{") % 16384},             // no closing brace after '{'
	} {
		if got := keySlot(tc.key); got != tc.want {
			t.Errorf("keySlot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

func TestDerivedNamesShareTheKeySlot(t *testing.T) {
	for _, key := range []string{"lock:a", "lock:{user1}:x", "lock:{", "lock:}{", "lock:{}", "", "lock:\x00"} {
		for _, name := range []string{channelFor(key), fenceKeyFor(key), latchKeyFor(key)} {
			if got, want := keySlot(name), keySlot(key); got != want {
				t.Errorf("%q for key %q is in slot %d, want slot %d", name, key, got, want)
			}
		}
	}
}
