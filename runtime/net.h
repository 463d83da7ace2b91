/* net.h - small socket-address helpers shared by the HTTP server and the tools. */
#ifndef BC_NET_H
#define BC_NET_H

#include <stdbool.h>
#include <sys/socket.h>

/* True for a loopback address: 127.0.0.0/8, ::1, or an IPv4-mapped 127.x. */
bool bc_net_is_loopback(const struct sockaddr_storage *ss);

#endif
