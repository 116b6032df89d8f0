package clustertest

import (
	"os/exec"

	"github.com/redislock/redislock/internal/redisproc"
)

// sentinelCommand returns the command line of a sentinel reading conf, of
// the server that $REDISLOCK_SERVER selects: its sentinel program
// (redis-sentinel, valkey-sentinel) if it is in PATH, else its server in
// sentinel mode, which is the same program (Debian ships the sentinel as a
// separate package).
func sentinelCommand(conf string) (bin string, args []string, err error) {
	progs, err := redisproc.Selected()
	if err != nil {
		return "", nil, err
	}
	if bin, err := exec.LookPath(progs.Sentinel); err == nil {
		return bin, []string{conf}, nil
	}
	if bin, err = exec.LookPath(progs.Server); err != nil {
		return "", nil, err
	}
	// The config file must come first.
	return bin, []string{conf, "--sentinel"}, nil
}
