// An LD_PRELOAD library that makes a process's clocks run at a rate read
// from $REDISLOCK_CLOCK_RATE (1 when unset or not a positive number):
// after t seconds of real time since the library was loaded, the process
// reads start + rate*t. It covers clock_gettime on the realtime, monotonic
// and boot-time clocks, gettimeofday and time, which is all a Redis or Valkey
// server reads the time through. The real clocks are read through the raw
// system call, never through libc, so the shim neither recurses into itself
// nor allocates (jemalloc reads the clock while it initialises).
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static double extra;         // rate - 1
static long long start_ns;   // real CLOCK_MONOTONIC when loaded

static long long real_ns(clockid_t id, struct timespec *ts) {
	if (syscall(SYS_clock_gettime, id, ts) != 0) return -1;
	return (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static void init(void) {
	struct timespec ts;
	const char *s = getenv("REDISLOCK_CLOCK_RATE");
	double rate = s ? strtod(s, NULL) : 1;
	if (!(rate > 0)) rate = 1;
	extra = rate - 1;
	start_ns = real_ns(CLOCK_MONOTONIC, &ts);
}

__attribute__((constructor)) static void load(void) { pthread_once(&once, init); }

// offset is how far the scaled clocks are ahead of the real ones now.
static long long offset(void) {
	struct timespec ts;
	pthread_once(&once, init);
	if (extra == 0) return 0;
	return (long long)(extra * (double)(real_ns(CLOCK_MONOTONIC, &ts) - start_ns));
}

static int scaled(clockid_t id) {
	switch (id) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_COARSE:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_BOOTTIME:
		return 1;
	}
	return 0;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
	long long ns = real_ns(id, ts);
	if (ns < 0) return -1;
	if (scaled(id)) {
		ns += offset();
		ts->tv_sec = ns / 1000000000LL;
		ts->tv_nsec = ns % 1000000000LL;
	}
	return 0;
}

#if __GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 31)
int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
#else
int gettimeofday(struct timeval *restrict tv, struct timezone *restrict tz) {
#endif
	struct timespec ts;
	(void)tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
	tv->tv_sec = ts.tv_sec; // glibc declares tv non-null
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t time(time_t *t) {
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
	if (t) *t = ts.tv_sec;
	return ts.tv_sec;
}
