package main

import (
	"context"
	"sync/atomic"
	"time"
)

// rttRuns × rttPings PINGs measure the loopback round trip.
const (
	rttRuns  = 3
	rttPings = 1000
)

// measureRTT returns the p50 of a PING's round trip through a go-redis
// client to srv: the median of rttRuns runs' p50s, after a warm-up. It is
// the unit the fair lock's release → next-holder gap is judged in.
func measureRTT(ctx context.Context, srv *server) (time.Duration, error) {
	var reqs atomic.Int64 // PINGs are upkeep, not counted; the dialer wants a counter
	c := newGoRedis(openOpts{addr: srv.addr, reqs: &reqs})
	defer c.Close()
	for range 100 {
		if err := c.Ping(ctx).Err(); err != nil {
			return 0, err
		}
	}
	var p50s []time.Duration
	lat := make([]time.Duration, 0, rttPings)
	for range rttRuns {
		lat = lat[:0]
		for range rttPings {
			t0 := time.Now()
			if err := c.Ping(ctx).Err(); err != nil {
				return 0, err
			}
			lat = append(lat, time.Since(t0))
		}
		p50s = append(p50s, summarize(lat).P50)
	}
	return summarize(p50s).P50, nil
}
