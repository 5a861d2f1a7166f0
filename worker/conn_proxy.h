/*
 * A connection on a proxy_protocol listener before its session: the PROXY
 * header (parsed by worker/proxy.c, read by conn_io.c) names the real
 * client, whose per-address limits and log lines apply from then on.
 */
#ifndef FASTPOP_CONN_PROXY_H
#define FASTPOP_CONN_PROXY_H

#include "worker/conn.h"

/*
 * c is in CONN_PROXY and readable: take the header if it is complete, then
 * greet (or start TLS); a bad header or a client over its limits closes c.
 */
void conn_proxy_read(struct conn *c);

#endif
