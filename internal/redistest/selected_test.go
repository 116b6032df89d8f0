package redistest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/redislock/redislock/internal/redistest"
)

// TestRunsSelectedServer checks that the servers are the programs that
// $REDISLOCK_SERVER selects: Valkey names itself in INFO, Redis does not.
func TestRunsSelectedServer(t *testing.T) {
	if os.Getenv(redistest.EnvAddr) != "" {
		t.Skipf("%s is set: the shared server is not started here", redistest.EnvAddr)
	}
	wantValkey := os.Getenv(redistest.EnvServer) == "valkey"
	private := redistest.Start(t).Do(t, "INFO", "server").String()
	shared := redistest.Client(t).Info(t.Context(), "server").Val()
	for name, info := range map[string]string{"Start": private, "Addr": shared} {
		assert.Equal(t, wantValkey, strings.Contains(info, "\r\nvalkey_version:"), "%s's server, with %s=%q:\n%s",
			name, redistest.EnvServer, os.Getenv(redistest.EnvServer), info)
		assert.Contains(t, info, "\r\nredis_version:", name)
	}
}
