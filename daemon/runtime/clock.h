/*
 * The one clock of fastpop: CLOCK_MONOTONIC, read here and nowhere else.
 * Deadlines, timers, back-offs and timings use it, so a wall-clock step
 * (NTP, an administrator's date) never fires or postpones one. It is the
 * same clock in every process of one boot, which the penalty view relies
 * on: the helper writes expiry stamps that workers compare with their own
 * clock_mono_ms().
 *
 * Three units of the same reading, because three kinds of callers store it:
 * seconds as a double for deadlines, microseconds for the timing histograms
 * (shm/stats.h), milliseconds for the penalty view's 64-bit stamps.
 *
 * Wall-clock time (CLOCK_REALTIME, time()) stays where a stamp is compared
 * with something outside this boot's monotonic clock: log line timestamps
 * (read by people and fail2ban), file mtimes (shm/index_sync.c), the index
 * record serial (shm/index.c: must differ across reboots, when the
 * monotonic clock starts again), and the TTLs stored in the credential
 * cache and the scoreboard, which outlive a process.
 */
#ifndef FASTPOP_CLOCK_H
#define FASTPOP_CLOCK_H

#include <stdint.h>

/* Monotonic seconds. */
double clock_mono(void);
/* Monotonic milliseconds (the penalty view's stamps). */
int64_t clock_mono_ms(void);
/* Monotonic microseconds (timings). */
uint64_t clock_mono_us(void);

#endif
