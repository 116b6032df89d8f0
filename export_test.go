package redislock

// FairQueueKeys returns the keys of the queue of a fair lock's key: the
// order and the waiters' leases.
func FairQueueKeys(key string) (queue, waiters string) {
	k := fairMutex.extraKeys(key)
	return k[0], k[1]
}

// WaitQueued waits until l's lock has n waiters in this process, their
// subscription confirmed and the head asleep; see waitQueued.
var WaitQueued = waitQueued

// FenceKeyFor returns the fencing counter of key's slot.
func FenceKeyFor(key string) string { return fenceKeyFor(key) }
