// Package redislockotel reports what the locks of
// github.com/redislock/redislock do as OpenTelemetry metrics and traces.
//
// [NewObserver] returns a [redislock.Observer] to pass to
// [redislock.WithObserver]. It records, on a MeterProvider:
//
//   - redislock.acquire.wait (histogram, s): how long each acquire call took,
//     by outcome ("acquired", "busy", "timed_out", "cancelled", "error"),
//     primitive and fresh (a new hold rather than a re-entry);
//   - redislock.hold.duration (histogram, s): how long a hold lasted, at its
//     last release, by primitive;
//   - redislock.holds (up-down counter): holds live now, by primitive;
//   - redislock.losses (counter): holds lost, by primitive and cause ("taken",
//     "expired", "released_lost", "other"; see [LossCause]);
//   - redislock.renewals and redislock.renewal.failures (counters): holds
//     renewed by the heartbeat, and renewals that failed and are retried.
//
// The lock's name is left out of metric attributes, since names may be
// many; [WithNameAttribute] adds it as redislock.name.
//
// On a TracerProvider, it records a span for each acquire call, a child of
// the span in the caller's context. [WithLock] adds a span for the critical
// section of [redislock.Lock.WithLock].
package redislockotel
