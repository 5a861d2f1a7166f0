/*
 * The mailbox index's record encoding, for shm/index.c (the layout is
 * described in shm/index.h; index_encode/index_decode are declared there).
 */
#ifndef FASTPOP_SHM_INDEX_RECORD_H
#define FASTPOP_SHM_INDEX_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "shm/index.h"

/* Bytes of the record of md for a path of path_len bytes. */
size_t index_record_len(size_t path_len, const struct maildir *md);

/* Encode e for path into out (index_record_len bytes), with serial. */
void index_record_encode(char *out, const char *path, size_t path_len,
                         const struct index_entry *e, uint64_t serial);

/*
 * Different for every record ever written for a path, so a session that
 * read only the head can later tell whether the messages it loads belong
 * to the same record (index_load). Not secret: pid, clock and a counter.
 */
uint64_t index_record_serial(void);

#endif
