/*
 * The one assertion the fuzz harnesses use: an invariant that does not hold
 * is a finding, reported with the harness's words and turned into a crash
 * so libFuzzer (and the corpus replay) stop on it. Not assert(): it must
 * stay on in release builds.
 */
#ifndef FASTPOP_FUZZ_CHECK_H
#define FASTPOP_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz invariant broken: %s\n", what);
        abort();
    }
}

#endif
