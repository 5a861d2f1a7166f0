/*
 * Temporary maildirs for the maildir/ unit tests. Every function returns
 * 0 (or a value) on success and -1 on failure; tests assert on it.
 */
#ifndef FASTPOP_T_HELPER_MAILDIR_H
#define FASTPOP_T_HELPER_MAILDIR_H

#include <stddef.h>
#include <time.h>

/* mkdtemp() a root under /tmp into path (PATH_MAX bytes); with_subdirs adds cur/ new/ tmp/. */
int tmd_make(char *path, int with_subdirs);
/* Write len bytes to root/rel (created or truncated). */
int tmd_write(const char *root, const char *rel, const char *data, size_t len);
/* 1 if root/rel exists (lstat), 0 if not. */
int tmd_exists(const char *root, const char *rel);
/* Set atime and mtime of root/rel to t. */
int tmd_set_mtime(const char *root, const char *rel, time_t t);
/* Number of entries in root/rel not starting with '.', or -1. */
int tmd_count(const char *root, const char *rel);
/* rm -rf path, without following symlinks. */
int tmd_remove(const char *path);

#endif
