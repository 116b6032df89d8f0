package redisproc

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// EnvRequire names the environment variable that, when set to a true value
// ("1", "true"), turns [RequireBinaries]' skip into a test failure.
const EnvRequire = "REDISLOCK_REQUIRE_REDIS"

// RequireBinaries skips tb, or fails it if $REDISLOCK_REQUIRE_REDIS is true,
// if any of the named programs is not in PATH. The message names the
// missing programs and ends with hint, which tells how to provide them.
func RequireBinaries(tb testing.TB, hint string, names ...string) {
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
	msg := fmt.Sprintf("%s not found in PATH; %s (%s=1 makes this a failure)", strings.Join(missing, ", "), hint, EnvRequire)
	if required, _ := strconv.ParseBool(os.Getenv(EnvRequire)); required {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}
