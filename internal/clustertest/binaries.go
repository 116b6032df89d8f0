package clustertest

import "os/exec"

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
