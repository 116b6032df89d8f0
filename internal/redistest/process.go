package redistest

import "github.com/redislock/redislock/internal/redisproc"

// portAttempts is how many free ports are tried when one is taken before
// the server binds it.
const portAttempts = 5

// start starts the server that $REDISLOCK_SERVER selects (redis-server by
// default) in dir, with args appended to the common ones
// of [redisproc.ServerArgs]: on port, retrying while it is in use for up to
// redisproc.StartTimeout, or, if port is 0, on a free loopback port. It
// blocks until the server answers; on error no process is left running.
// The server's waiter goroutine ends when the server exits.
func start(dir string, port int, args []string) (*redisproc.Process, error) {
	spec := redisproc.Spec{
		Dir: dir,
		Command: func(port int) (string, []string, error) {
			p, err := redisproc.Selected()
			return p.Server, append(redisproc.ServerArgs(dir, port), args...), err
		},
	}
	if port == 0 {
		return redisproc.StartFreePort(spec, portAttempts, redisproc.FreePort)
	}
	return redisproc.StartPort(spec, port)
}
