/*
 * static: the dashboard's files (src/http/static/), embedded in the binary
 * at build time by embed.cmake and served without auth at /<name>, "/"
 * being index.html. They hold no data: the page asks the API for it.
 */
#ifndef ORDERD_HTTP_STATIC_H
#define ORDERD_HTTP_STATIC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct static_asset {
	const char *name; /* "index.html": the path without its '/' */
	const unsigned char *data;
	size_t len;
	const char *content_type;
	const char *etag; /* "\"<16 hex digits of SHA-256>\"" */
} static_asset_t;

/* The generated table (build/generated/static_assets.c), sorted by name and
 * ended by an entry with a NULL name. */
extern const static_asset_t static_assets[];
extern const size_t static_assets_n;

/* The asset named name ("" is index.html), or NULL. */
const static_asset_t *static_lookup(const char *name);
/* The asset served at path ("/" is index.html), or NULL. */
const static_asset_t *static_find(const char *path);

/* True when an If-None-Match header value matches etag (strong or weak,
 * a list, or "*"). */
bool static_etag_match(const char *if_none_match, const char *etag);

#endif
