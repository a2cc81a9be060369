/* store: dispatch of the one store API to the GCS and S3 implementations. */
#include "common/store.h"

#include <errno.h>

#include "common/store_impl.h"

int store_open(const struct store_config *cfg, struct store **out)
{
	*out = NULL;
	if (!cfg->bucket || !url_bucket_name_valid(cfg->bucket))
		return -EINVAL;
	switch (cfg->scheme) {
	case URL_GS:
		return gcs_open(cfg, out);
	case URL_S3:
		return s3_open(cfg, out);
	}
	return -EINVAL;
}

void store_free(struct store *st)
{
	if (st)
		st->ops->free(st);
}

const char *store_describe(const struct store *st)
{
	return st->describe;
}

int store_list(struct store *st, struct http_client *hc, const char *prefix, const char *delimiter,
	       uint32_t max_results, store_list_fn fn, void *ctx)
{
	return st->ops->list(st, hc, prefix ? prefix : "", delimiter, max_results, fn, ctx);
}

int store_stat(struct store *st, struct http_client *hc, const char *name, struct store_object *out)
{
	return st->ops->stat(st, hc, name, out);
}

int store_read_req(struct store *st, const char *name, const char *version, uint64_t size,
		   uint64_t off, uint64_t len, const struct http_sink *sink, struct http_req **out)
{
	*out = NULL;
	if (len == 0 || off > size || len > size - off)
		return -EINVAL;
	return st->ops->read_req(st, name, version, size, off, len, sink, out);
}

int store_read(struct store *st, struct http_client *hc, const char *name, const char *version,
	       uint64_t size, uint64_t off, uint64_t len, const struct http_sink *sink)
{
	struct http_req *req;
	int rc = store_read_req(st, name, version, size, off, len, sink, &req);

	if (rc)
		return rc;
	rc = http_perform(hc, req);
	http_req_free(req);
	return rc;
}
