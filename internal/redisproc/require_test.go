package redisproc_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redislock/redislock/internal/faketb"
	"github.com/redislock/redislock/internal/redisproc"
)

func TestRequireBinaries(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "present"), []byte("#!/bin/sh\n"), 0o755))
	t.Setenv("PATH", dir)
	const msg = "redis-server, redis-cli not found in PATH; install them (" + redisproc.EnvRequire + "=1 makes this a failure)"
	for _, tc := range []struct {
		env   string
		names []string
		want  faketb.Result
	}{
		{"", []string{"present"}, faketb.Result{}},
		{"1", []string{"present"}, faketb.Result{}},
		{"", []string{"redis-server", "present", "redis-cli"}, faketb.Result{Skipped: true, Msg: msg}},
		{"0", []string{"redis-server", "redis-cli"}, faketb.Result{Skipped: true, Msg: msg}},
		{"1", []string{"redis-server", "redis-cli"}, faketb.Result{Failed: true, Msg: msg}},
		{"true", []string{"redis-server", "redis-cli"}, faketb.Result{Failed: true, Msg: msg}},
	} {
		t.Setenv(redisproc.EnvRequire, tc.env)
		got := faketb.Run(t, func(tb testing.TB) { redisproc.RequireBinaries(tb, "install them", tc.names...) })
		assert.Equal(t, tc.want, got, "%s=%q, %q", redisproc.EnvRequire, tc.env, tc.names)
	}
}
