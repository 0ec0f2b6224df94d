/*
 * server_listen: the listen address of the HTTP server, "host:port" or
 * "[v6]:port", resolved (numeric port, passive) into a socket address for
 * MHD_OPTION_SOCK_ADDR.
 */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "http/server_int.h"
#include "util/err.h"

/* Resolves "host:port" or "[v6]:port" into *ss. */
int http_server_parse_listen(const char *listen, struct sockaddr_storage *ss,
                             socklen_t *ret_len, uint16_t *ret_port)
{
	char host[256];
	const char *colon, *hs, *he;
	struct addrinfo hints, *ai = NULL;
	char *end = NULL;
	long port;

	if (listen == NULL)
		return OD_ECONFIG;
	if (listen[0] == '[') {
		hs = listen + 1;
		he = strchr(hs, ']');
		if (he == NULL || he[1] != ':')
			return OD_ECONFIG;
		colon = he + 1;
	} else {
		colon = strrchr(listen, ':');
		if (colon == NULL)
			return OD_ECONFIG;
		hs = listen;
		he = colon;
	}
	if ((size_t)(he - hs) >= sizeof(host))
		return OD_ECONFIG;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 ||
	    port > 65535)
		return OD_ECONFIG;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai) != 0 ||
	    ai == NULL)
		return OD_ECONFIG;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*ret_len = ai->ai_addrlen;
	*ret_port = (uint16_t)port;
	freeaddrinfo(ai);
	return 0;
}
