/* store_impl: what each store implementation (gcs.c, s3.c) provides to store.c. Only store
 * implementations include this header. */
#ifndef HOARDFS_STORE_IMPL_H
#define HOARDFS_STORE_IMPL_H

#include "common/store.h"

/* Internal: the operations each store implements (store.c dispatches to them). */
struct store_ops {
	int (*list)(struct store *st, struct http_client *hc, const char *prefix,
		    const char *delimiter, uint32_t max_results, store_list_fn fn, void *ctx);
	int (*stat)(struct store *st, struct http_client *hc, const char *name,
		    struct store_object *out);
	int (*read_req)(struct store *st, const char *name, const char *version, uint64_t size,
			uint64_t off, uint64_t len, const struct http_sink *sink,
			struct http_req **out);
	void (*free)(struct store *st);
};

/* The head every implementation's struct starts with. */
struct store {
	const struct store_ops *ops;
	char describe[STORE_ENDPOINT_MAX + 256];
};

/* Constructors of the implementations; same contract as store_open(). */
int gcs_open(const struct store_config *cfg, struct store **out);
int s3_open(const struct store_config *cfg, struct store **out);

#endif
