/*
 * CIDR lists (daemon/runtime/cidr.c: plaintext_trusted, proxy_trusted, popctl
 * targets). Invariants: a list that parses formats to text that parses to
 * the same list (round trip), and matching an address never reads past it.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "daemon/runtime/cidr.h"
#include "t/fuzz/fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char text[4097];
    memcpy(text, data, size);
    text[size] = '\0';
    struct cidr_list list, again;
    char err[256];
    memset(&list, 0, sizeof(list));
    if (cidr_list_parse(text, &list, err, sizeof(err)) == -1) {
        fuzz_check(err[0] != '\0', "a refused list without a reason");
        return 0;
    }
    fuzz_check(list.count >= 0 && list.count <= CIDR_LIST_MAX, "count out of range");
    char formatted[CIDR_LIST_MAX * 64];
    cidr_list_format(&list, formatted, sizeof(formatted));
    memset(&again, 0, sizeof(again));
    fuzz_check(cidr_list_parse(formatted, &again, err, sizeof(err)) == 0,
               "the formatted list does not parse");
    fuzz_check(again.count == list.count, "round trip changed the count");
    for (int i = 0; i < list.count; i++)
        fuzz_check(again.net[i].prefix == list.net[i].prefix &&
                   memcmp(again.net[i].addr, list.net[i].addr, 16) == 0,
                   "round trip changed a network");

    /* Each network matches its own address. */
    for (int i = 0; i < list.count; i++) {
        struct sockaddr_in6 a6;
        memset(&a6, 0, sizeof(a6));
        a6.sin6_family = AF_INET6;
        memcpy(&a6.sin6_addr, list.net[i].addr, 16);
        fuzz_check(cidr_list_match(&list, (const struct sockaddr *)&a6) == 1,
                   "a network does not match its own address");
    }
    return 0;
}
