package redislockotel

import (
	"errors"
	"strings"

	"github.com/redislock/redislock"
)

// Causes of a loss, as the losses counter's cause attribute has them.
const (
	CauseTaken        = "taken"         // the heartbeat found the key gone or held by another owner
	CauseExpired      = "expired"       // the lease ran out before a renewal got through
	CauseReleasedLost = "released_lost" // the last release found the key gone or held by another owner
	CauseOther        = "other"         // anything else
)

// LossCause names why a hold was lost, from err, an EventLoss's Err or an
// error matching redislock.ErrLockLost. The library tells causes apart only
// in its error text, so this reads the text; a text it does not know is
// CauseOther.
func LossCause(err error) string {
	if err == nil || !errors.Is(err, redislock.ErrLockLost) {
		return CauseOther
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "at release"):
		return CauseReleasedLost
	case strings.Contains(s, "lease ran out"):
		return CauseExpired
	case strings.Contains(s, "gone or held by another owner"):
		return CauseTaken
	}
	return CauseOther
}
