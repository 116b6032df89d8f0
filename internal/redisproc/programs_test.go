package redisproc_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/redislock/redislock/internal/faketb"
	"github.com/redislock/redislock/internal/redisproc"
)

func TestProgramsFor(t *testing.T) {
	redis := redisproc.Programs{Name: "redis", Server: "redis-server", CLI: "redis-cli", Sentinel: "redis-sentinel"}
	valkey := redisproc.Programs{Name: "valkey", Server: "valkey-server", CLI: "valkey-cli", Sentinel: "valkey-sentinel"}
	for _, tc := range []struct {
		server string
		want   redisproc.Programs
		err    error
	}{
		{"", redis, nil},
		{"redis", redis, nil},
		{"valkey", valkey, nil},
		{"Valkey", redisproc.Programs{}, redisproc.ErrUnknownServer},
		{"keydb", redisproc.Programs{}, redisproc.ErrUnknownServer},
	} {
		got, err := redisproc.ProgramsFor(tc.server)
		assert.Equal(t, tc.want, got, "%q", tc.server)
		assert.ErrorIs(t, err, tc.err, "%q", tc.server)
	}
}

func TestSelected(t *testing.T) {
	t.Setenv(redisproc.EnvServer, "valkey")
	got, err := redisproc.Selected()
	assert.NoError(t, err)
	assert.Equal(t, "valkey-server", got.Server)
	assert.Equal(t, faketb.Result{}, faketb.Run(t, func(tb testing.TB) { redisproc.MustSelect(tb) }))

	t.Setenv(redisproc.EnvServer, "")
	got, err = redisproc.Selected()
	assert.NoError(t, err)
	assert.Equal(t, "redis-server", got.Server)

	t.Setenv(redisproc.EnvServer, "memcached")
	_, err = redisproc.Selected()
	assert.ErrorIs(t, err, redisproc.ErrUnknownServer)
	res := faketb.Run(t, func(tb testing.TB) { redisproc.MustSelect(tb) })
	assert.True(t, res.Failed, "an unknown server must fail the test")
	assert.Contains(t, res.Msg, `"memcached"`)
}
