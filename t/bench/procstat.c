/*
 * A server's process tree read from /proc: the root pid and every
 * descendant (found through the PPid of each process, no names involved).
 * CPU time includes cutime/cstime, so processes that exited and were reaped
 * during a run (one process per session servers) are still counted.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "popload.h"

#define TREE_MAX 200000

struct pinfo {
    pid_t pid, ppid;
};

/* /proc/PID/stat fields after the command name: state is field 3. */
static int read_stat(pid_t pid, pid_t *ppid, double *cpu)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    char state;
    int pp;
    unsigned long long ut, st;
    long long cut, cst;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime cutime cstime */
    if (sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
               &state, &pp, &ut, &st, &cut, &cst) != 6)
        return -1;
    if (state == 'Z')
        return -1;
    *ppid = pp;
    if (cpu)
        *cpu = (double)(ut + st + (unsigned long long)cut + (unsigned long long)cst) /
               (double)sysconf(_SC_CLK_TCK);
    return 0;
}

/* Fill pids[] with root and its descendants; returns the count. */
static int tree_pids(pid_t root, pid_t *out, int max)
{
    static struct pinfo all[TREE_MAX];
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < TREE_MAX) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name), pp;
        if (read_stat(pid, &pp, NULL) == 0)
            all[n++] = (struct pinfo){ pid, pp };
    }
    closedir(d);
    int count = 0;
    out[count++] = root;
    /* Breadth first: each pass adds the children of what is already in. */
    for (int i = 0; i < count && count < max; i++)
        for (int j = 0; j < n && count < max; j++)
            if (all[j].ppid == out[i] && all[j].pid != root)
                out[count++] = all[j].pid;
    return count;
}

double tree_cpu_seconds(pid_t root, int *nprocs)
{
    static pid_t pids[TREE_MAX];
    int n = tree_pids(root, pids, TREE_MAX);
    double total = 0;
    int alive = 0;
    for (int i = 0; i < n; i++) {
        pid_t pp;
        double cpu;
        if (read_stat(pids[i], &pp, &cpu) == 0) {
            total += cpu;
            alive++;
        }
    }
    if (nprocs)
        *nprocs = alive;
    return total;
}

int tree_memory_kib(pid_t root, uint64_t *rss, uint64_t *pss, int *nprocs)
{
    static pid_t pids[TREE_MAX];
    int n = tree_pids(root, pids, TREE_MAX), seen = 0;
    *rss = *pss = 0;
    for (int i = 0; i < n; i++) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pids[i]);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        unsigned long long v;
        while (fgets(line, sizeof(line), f)) {
            if (sscanf(line, "Rss: %llu kB", &v) == 1)
                *rss += v;
            else if (sscanf(line, "Pss: %llu kB", &v) == 1)
                *pss += v;
        }
        fclose(f);
        seen++;
    }
    if (nprocs)
        *nprocs = seen;
    return seen > 0 ? 0 : -1;
}
