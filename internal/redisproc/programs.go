package redisproc

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// EnvServer names the environment variable that selects the server the
// helpers run: "redis" (the default, also when unset or empty) or
// "valkey".
const EnvServer = "REDISLOCK_SERVER"

// ErrUnknownServer means $REDISLOCK_SERVER names no server this package
// knows.
var ErrUnknownServer = errors.New("unknown server")

// Programs are the program names of one server: its server, its
// command-line client and its sentinel.
type Programs struct {
	Name     string // "redis" or "valkey"
	Server   string // "redis-server"
	CLI      string // "redis-cli"
	Sentinel string // "redis-sentinel"
}

// ProgramsFor returns the programs of server: "redis" or "" (Redis), or
// "valkey". Another name is an error wrapping [ErrUnknownServer].
func ProgramsFor(server string) (Programs, error) {
	switch server {
	case "", "redis":
		server = "redis"
	case "valkey":
	default:
		return Programs{}, fmt.Errorf("redisproc: %w %q in $%s (want redis or valkey)", ErrUnknownServer, server, EnvServer)
	}
	return Programs{
		Name:     server,
		Server:   server + "-server",
		CLI:      server + "-cli",
		Sentinel: server + "-sentinel",
	}, nil
}

// Selected returns the programs that $REDISLOCK_SERVER selects (see
// [ProgramsFor]).
func Selected() (Programs, error) { return ProgramsFor(os.Getenv(EnvServer)) }

// MustSelect returns the programs that $REDISLOCK_SERVER selects, failing
// tb if it names no known server.
func MustSelect(tb testing.TB) Programs {
	tb.Helper()
	p, err := Selected()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Hint tells how to install p's programs, for [RequireBinaries].
func (p Programs) Hint() string {
	if p.Name == "valkey" {
		return "install Valkey (Debian: valkey-server, valkey-tools, valkey-sentinel), or unset " + EnvServer + " to use Redis"
	}
	return "install Redis (or Valkey, with " + EnvServer + "=valkey)"
}
