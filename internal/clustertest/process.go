package clustertest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	"github.com/redislock/redislock/internal/redisproc"
)

const (
	portAttempts = 10 // ports tried when one is taken before the process binds it

	// Ports, bus ports included, are picked below Linux's default ephemeral
	// range (32768 and up), so that outgoing connections, which take their
	// local ports from that range, never hold a port a node is to listen on.
	portMin, portMax = 10000, 22700
	busPortOffset    = 10000 // Redis Cluster's default bus port is port+10000
)

// startFreePort starts the process that command describes, in dir, on a
// port that is free when picked, and with port+busPortOffset free too if
// bus is set. It blocks until the process answers; on error no process is
// left running. The process's waiter goroutine ends when it exits.
func startFreePort(dir string, bus bool, command func(port int) (bin string, args []string, err error)) (*redisproc.Process, error) {
	spec := redisproc.Spec{Dir: dir, Command: command}
	return redisproc.StartFreePort(spec, portAttempts, func() (int, error) { return pickPort(bus) })
}

// pickPort returns a random loopback port in [portMin, portMax) that can be
// bound now, and whose bus port can be too if bus is set.
func pickPort(bus bool) (int, error) {
	for range 200 {
		port := portMin + rand.IntN(portMax-portMin)
		if portFree(port) && (!bus || portFree(port+busPortOffset)) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port in [%d, %d)", portMin, portMax)
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
