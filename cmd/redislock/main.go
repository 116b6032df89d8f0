//go:build unix

// Command redislock runs a program while it holds a lock in Redis, and
// reports who holds a lock. See "redislock --help" for the exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Exit codes of redislock itself. A run whose child ran and kept the lock
// exits with the child's code instead (128 + the signal number when a
// signal killed it).
const (
	exitUsage       = 64 // EX_USAGE: bad arguments
	exitDataErr     = 65 // EX_DATAERR: the key holds something other than this lock
	exitUnavailable = 69 // EX_UNAVAILABLE: Redis could not be reached
	exitSoftware    = 70 // EX_SOFTWARE: an internal error
	exitConflict    = 75 // EX_TEMPFAIL: not acquired within --wait (--conflict-exit-code)
	exitLost        = 76 // the lock was lost while the child ran (--lost-exit-code)
	exitCannotExec  = 126
	exitNotFound    = 127
)

const helpText = `redislock runs a command while it holds a lock in Redis.

Usage (flags go before NAME):
  redislock run [flags] NAME -- COMMAND [ARG...]   run COMMAND while holding the lock NAME
  redislock status [flags] [--json] NAME...        show who holds each lock
  redislock version                                print the version
  redislock help [COMMAND]                         show this help, or a command's flags

Connection flags (every command):
  --url URL               redis:// or rediss:// (TLS) URL, with user and password as
                          go-redis ParseURL reads them (default $REDIS_URL, else
                          redis://127.0.0.1:6379/0)
  --cluster ADDR,...      connect to a Redis Cluster through these nodes
  --sentinel ADDR,...     connect through these Sentinels to the master --master NAME
  --master NAME           the Sentinel master name
  With --cluster or --sentinel, a --url given explicitly supplies user, password,
  TLS and (Sentinel) the database; its address is not used.

The child of run inherits stdin, stdout, stderr and the environment, plus
REDISLOCK_NAME, REDISLOCK_KEY, REDISLOCK_OWNER and REDISLOCK_TOKEN (the fencing
token: larger for every new acquisition of NAME). It runs in a process group of its
own; SIGINT, SIGTERM and SIGHUP sent to redislock are forwarded to that group. The
lock is renewed while the child runs. If it is lost, redislock says why on stderr,
sends SIGTERM to the child's process group at once and SIGKILL after --grace.

Exit codes of run:
  the child's code   the child ran, exited, and the lock was held throughout
  128+N              the child was killed by signal N (or redislock was, while waiting)
  64                 bad arguments
  65                 the lock's key holds something else (another type, another limit)
  69                 Redis could not be reached or refused a request, or fewer
                     replicas than --min-replicas acknowledged the acquire
  70                 internal error
  75                 the lock was not acquired within --wait (--conflict-exit-code)
  76                 the lock was lost while the child ran, or the release after it
                     exited found it gone (--lost-exit-code)
  126, 127           COMMAND could not be run, or was not found
Exit codes of status: 0 every lock is free, 1 one or more is held, 64, 69 as above.
`

func main() {
	redis.SetLogger(quietLogger{}) // errors reach the user through the exit code and one line
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageFail(stderr, errors.New("no command given"))
	}
	var code int
	var err error
	switch args[0] {
	case "run":
		code, err = runCommand(args[1:], stdout, stderr)
	case "status":
		code, err = statusCommand(args[1:], stdout, stderr)
	case "version":
		if len(args) > 1 {
			return usageFail(stderr, fmt.Errorf("version takes no arguments"))
		}
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && (args[1] == "run" || args[1] == "status") {
			code, err = dispatchHelp(args[1], stdout, stderr)
			break
		}
		fmt.Fprint(stdout, helpText)
		return 0
	default:
		return usageFail(stderr, fmt.Errorf("unknown command %q", args[0]))
	}
	var uerr usageError
	if errors.As(err, &uerr) {
		return usageFail(stderr, uerr.error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "redislock: %s\n", oneLine(err))
	}
	return code
}

func dispatchHelp(cmd string, stdout, stderr io.Writer) (int, error) {
	if cmd == "run" {
		return runCommand([]string{"--help"}, stdout, stderr)
	}
	return statusCommand([]string{"--help"}, stdout, stderr)
}

// quietLogger drops go-redis's internal log lines (dial retries and the like).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// usageError is an error in the command line: exit code 64.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func usageFail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "redislock: %v (see redislock --help)\n", oneLine(err))
	return exitUsage
}

// oneLine joins the lines of a (joined) error's text.
// The package prefix "redislock: " is left out: the line has its own.
func oneLine(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "redislock: ")
	}
	return strings.Join(lines, "; ")
}

func versionLine() string {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	return fmt.Sprintf("redislock %s %s %s/%s", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
