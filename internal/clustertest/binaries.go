package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/redislock/redislock/internal/redistest"
)

// requireBinaries skips or fails tb, as package redistest does, if any of
// the named programs is not in PATH.
func requireBinaries(tb testing.TB, names ...string) {
	tb.Helper()
	var missing []string
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("%s not found in PATH; install Redis (%s=1 makes this a failure)",
		strings.Join(missing, ", "), redistest.EnvRequire)
	if required, _ := strconv.ParseBool(os.Getenv(redistest.EnvRequire)); required {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// sentinelCommand returns the command line of a sentinel reading conf:
// redis-sentinel if it is in PATH, else redis-server in sentinel mode, which
// is the same program (Debian ships redis-sentinel as a separate package).
func sentinelCommand(conf string) (bin string, args []string, err error) {
	if bin, err := exec.LookPath("redis-sentinel"); err == nil {
		return bin, []string{conf}, nil
	}
	if bin, err = exec.LookPath("redis-server"); err != nil {
		return "", nil, err
	}
	// The config file must come first.
	return bin, []string{conf, "--sentinel"}, nil
}
