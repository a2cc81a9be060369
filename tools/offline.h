/* offline: `ls` without the daemon: root reads the cache's LMDB metadata read-only, through
 * common/meta.h (meta_open_readonly). Built only when the hoardfs_meta library exists. */
#ifndef HOARDFS_TOOLS_OFFLINE_H
#define HOARDFS_TOOLS_OFFLINE_H

#include <json-c/json.h>

struct insp;

/*
 * Lists the objects recorded in <x->cache_dir>/meta (under x->url when set) as the daemon's
 * `ls` reply would, plus "offline": true; the "open" member is left out (unknown without the
 * daemon). On success *out is a new object the caller puts. Returns 0, -EPERM when not running
 * as root, -ENOENT when the cache has no metadata, -ENOTSUP when this build has no metadata
 * library, -ENOMEM, or an error of meta_open_readonly() / the scan (-EPROTONOSUPPORT for
 * another schema, -EAGAIN, -EIO, -errno).
 */
int offline_ls(const struct insp *x, json_object **out);

#endif
