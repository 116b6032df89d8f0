package clustertest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/redislock/redislock/internal/redisproc"
)

func TestSentinelCommandFollowsSelectedServer(t *testing.T) {
	bin := t.TempDir()
	put := func(names ...string) {
		for _, n := range names {
			assert.NoError(t, os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	put("redis-server", "redis-sentinel", "valkey-server")
	t.Setenv("PATH", bin)
	for _, tc := range []struct {
		server   string
		wantBin  string
		wantArgs []string
	}{
		{"", "redis-sentinel", []string{"s.conf"}},
		{"redis", "redis-sentinel", []string{"s.conf"}},
		{"valkey", "valkey-server", []string{"s.conf", "--sentinel"}}, // no valkey-sentinel yet
	} {
		t.Setenv(redisproc.EnvServer, tc.server)
		got, args, err := sentinelCommand("s.conf")
		assert.NoError(t, err, "%q", tc.server)
		assert.Equal(t, filepath.Join(bin, tc.wantBin), got, "%q", tc.server)
		assert.Equal(t, tc.wantArgs, args, "%q", tc.server)
	}

	put("valkey-sentinel")
	got, _, err := sentinelCommand("s.conf")
	assert.NoError(t, err)
	assert.Equal(t, filepath.Join(bin, "valkey-sentinel"), got)

	t.Setenv(redisproc.EnvServer, "keydb")
	_, _, err = sentinelCommand("s.conf")
	assert.ErrorIs(t, err, redisproc.ErrUnknownServer)
}
