/*
 * Corpus replay for the fuzz harnesses in builds without libFuzzer (gcc,
 * the release and sanitizer builds): every file named on the command line,
 * or found in a directory named there, goes through the harness once. So
 * each corpus entry, crashes found earlier included, is a regression test
 * in every build.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A corpus entry larger than this is a mistake, not an input. */
enum { REPLAY_MAX_INPUT = 4 * 1024 * 1024 };

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    uint8_t *data = malloc(REPLAY_MAX_INPUT);
    size_t n = data ? fread(data, 1, REPLAY_MAX_INPUT, f) : 0;
    int bad = data == NULL || ferror(f);
    fclose(f);
    if (!bad) {
        /* A copy of exactly n bytes, so ASan sees a read past the input. */
        uint8_t *exact = malloc(n ? n : 1);
        if (exact == NULL) {
            bad = 1;
        } else {
            memcpy(exact, data, n);
            LLVMFuzzerTestOneInput(exact, n);
            free(exact);
        }
    }
    free(data);
    return bad ? -1 : 0;
}

static int replay_path(const char *path, unsigned *count)
{
    struct stat st;
    if (stat(path, &st) == -1)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return replay_file(path);
    }
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[4096];
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= sizeof(sub))
            rc = -1;
        else
            rc = replay_path(sub, count);
    }
    closedir(d);
    return rc;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    for (int i = 1; i < argc; i++) {
        if (replay_path(argv[i], &count) == -1) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
    }
    if (count == 0) {
        fprintf(stderr, "replay: no input (an empty corpus tests nothing)\n");
        return 1;
    }
    printf("replay: %u inputs, no finding\n", count);
    return 0;
}
