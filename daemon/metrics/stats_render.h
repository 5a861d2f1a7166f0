/*
 * The stats snapshot as people, scripts and Prometheus read it: the same
 * numbers behind `popctl stats`, `popctl stats --json`, `popctl stats
 * --prometheus` and GET /metrics. Metric names follow Prometheus
 * conventions (fastpop_..._total counters, _seconds histograms); the JSON
 * keys are the same names without "fastpop_" and "_total".
 */
#ifndef FASTPOP_STATS_RENDER_H
#define FASTPOP_STATS_RENDER_H

#include <stdint.h>
#include <time.h>

#include "daemon/runtime/buf.h"
#include "shm/stats.h"

enum stats_format {
    STATS_TEXT,
    STATS_JSON,
    STATS_PROMETHEUS,
};

/* What the master knows at the moment of asking, beside the counters. */
struct stats_gauges {
    unsigned connections;  /* open now */
    unsigned logged_in;    /* of those, past the login */
    unsigned workers;
    int draining;
    /* The limits beside them, so an alert can say "near the limit". */
    unsigned max_connections;
    uint64_t open_files_limit;   /* RLIMIT_NOFILE of the master, which every child gets */
    uint64_t open_files_wanted;  /* what max_connections needs (config_open_files_wanted) */
    time_t started;        /* the master's start */
    time_t now;
};

/* "text", "json" or "prometheus": 0 with *f set, else -1. */
int stats_format_parse(const char *name, enum stats_format *f);

/* Append the document to out; -1 if out could not grow. */
int stats_render(const struct stats_snapshot *s, const struct stats_gauges *g,
                 enum stats_format f, struct buf *out);

#endif
