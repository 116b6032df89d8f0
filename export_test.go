package redislock

// FairQueueKeys returns the keys of the queue of a fair lock's key: the
// order and the waiters' leases.
func FairQueueKeys(key string) (queue, waiters string) {
	k := fairMutex.extraKeys(key)
	return k[0], k[1]
}
