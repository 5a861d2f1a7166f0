/*
 * popctl targets (daemon/runtime/control_args.c): who/kick take a user name or an
 * address list from a caller of the control socket. Invariants: a parsed
 * target matches consistently; "any" matches everything; a user target
 * matches that user from any address and nothing else by name.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/runtime/control_args.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2048)
        return 0;
    char text[2049];
    memcpy(text, data, size);
    text[size] = '\0';
    struct control_target t;
    memset(&t, 0, sizeof(t));
    if (control_parse_target(text, &t) == -1)
        return 0;
    static const uint8_t v4[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1 };
    static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    int a = control_target_match(&t, "alice", v4), b = control_target_match(&t, "alice", v4);
    fuzz_check(a == b, "one target, two answers");
    if (t.any)
        fuzz_check(control_target_match(&t, "", v6) && control_target_match(&t, "x", v4),
                   "an 'any' target missed a session");
    if (!t.any && !t.by_ip && t.user != NULL) {
        fuzz_check(control_target_match(&t, t.user, v4) && control_target_match(&t, t.user, v6),
                   "a user target does not match its user");
        char longer[2100];
        strcpy(longer, t.user);
        strcat(longer, "x");
        fuzz_check(!control_target_match(&t, longer, v4), "a user target matched another name");
    }
    char ip[64];
    control_format_ip(v6, ip, sizeof(ip));
    fuzz_check(strcmp(ip, "2001:db8::1") == 0, "control_format_ip");
    return 0;
}
