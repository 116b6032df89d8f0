package clustertest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const clusterNodes = `a1 127.0.0.1:10001@20001 myself,master - 0 0 1 connected 0-5460 [5461-<-b2]
b2 127.0.0.1:10002@20002,host master - 0 1700000000000 2 connected 5461-10922 16000
c3 127.0.0.1:10003@20003 master - 0 1700000000000 3 connected 10923-15999 16001-16383
d4 127.0.0.1:10004@20004 slave a1 0 1700000000000 1 connected
e5 127.0.0.1:10005@20005 slave,fail a1 0 1700000000000 1 connected
`

func TestParseClusterNodes(t *testing.T) {
	top, err := parseClusterNodes(clusterNodes)
	require.NoError(t, err)
	require.Len(t, top, 5)
	assert.Equal(t, "127.0.0.1:10002", top["b2"].addr, "bus port and hostname must be cut")
	assert.True(t, top["a1"].master())
	assert.Equal(t, "a1", top["d4"].masterID)
	assert.Empty(t, top["a1"].masterID)
	assert.Equal(t, []string{"d4", "e5"}, top.replicasOf("a1"))

	for _, tc := range []struct {
		slot int
		want string
	}{
		{0, "a1"}, {5460, "a1"}, {5461, "b2"}, {10922, "b2"}, {16000, "b2"},
		{10923, "c3"}, {15999, "c3"}, {16001, "c3"}, {16383, "c3"},
	} {
		assert.Equal(t, tc.want, top.owner(tc.slot), "owner(%d)", tc.slot)
	}

	_, err = top.summary([]string{"a1", "d4"})
	assert.NoError(t, err)
	_, err = top.summary([]string{"e5"})
	assert.ErrorContains(t, err, "fail", "a failed node must not count as agreed")
	_, err = top.summary([]string{"zz"})
	assert.ErrorContains(t, err, "missing")

	_, err = parseClusterNodes("a1 127.0.0.1:1@2 master")
	assert.Error(t, err)
}
