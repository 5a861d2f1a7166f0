/*
 * The configuration file parser (daemon/runtime/config.c). The config comes from
 * the administrator, but a parser that crashes or loops on a typo is still
 * a bug. Invariants: a refused file names its line ("file:line: ..."); an
 * accepted one prints (fastpopd -n) to a file that loads to the same
 * effective configuration (round trip).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/runtime/config.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The text of cfg as fastpopd -n prints it. */
static char *printed(const struct config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    fuzz_check(f != NULL, "open_memstream");
    config_print(cfg, f);
    fclose(f);
    return text;
}

static int load_text(const void *text, size_t len, struct config *cfg, char *err, size_t errlen)
{
    int fd = memfd_create("fuzz-config", MFD_CLOEXEC);
    fuzz_check(fd != -1, "memfd_create");
    fuzz_check(write(fd, text, len) == (ssize_t)len, "write");
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int rc = config_load(path, cfg, err, errlen);
    close(fd);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    struct config cfg, again;
    char err[512];
    memset(&cfg, 0, sizeof(cfg));
    if (load_text(data, size, &cfg, err, sizeof(err)) == -1) {
        fuzz_check(err[0] != '\0', "a refused file without a message");
        return 0;
    }
    size_t len1, len2;
    char *one = printed(&cfg, &len1);
    memset(&again, 0, sizeof(again));
    int rc = load_text(one, len1, &again, err, sizeof(err));
    if (rc == -1)
        fprintf(stderr, "printed config refused: %s\n%s\n", err, one);
    fuzz_check(rc == 0, "the printed configuration does not load");
    char *two = printed(&again, &len2);
    fuzz_check(len1 == len2 && memcmp(one, two, len1) == 0,
               "the printed configuration loads to a different one");
    free(one);
    free(two);
    return 0;
}
