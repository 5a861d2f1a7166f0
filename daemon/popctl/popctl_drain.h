/*
 * popctl's verbs that wait for sessions to end: drain (with its progress
 * on a terminal), drain-status, and stop. Each returns popctl's exit status
 * (daemon/popctl/popctl.c); json: --json was given.
 */
#ifndef FASTPOP_POPCTL_DRAIN_H
#define FASTPOP_POPCTL_DRAIN_H

#include "daemon/runtime/config.h"

int popctl_drain(const struct config *cfg, int argc, char **argv, int json);
int popctl_drain_status(const struct config *cfg, int argc, char **argv, int json);
int popctl_stop(const struct config *cfg, int argc, char **argv, int json);

#endif
