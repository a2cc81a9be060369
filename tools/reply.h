/* reply: defensive readers for the daemon's JSON replies (json-c). A reply is untrusted input:
 * every member is looked up by name and checked for type and range before use. */
#ifndef HOARDFS_TOOLS_REPLY_H
#define HOARDFS_TOOLS_REPLY_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parses `len` bytes of `text` as one JSON object (surrounding white space allowed). On success
 * *out holds a new reference the caller releases with json_object_put(). Returns 0, -EPROTO
 * (not JSON, not an object, trailing bytes, nested too deeply) or -ENOMEM.
 */
int reply_parse(const char *text, size_t len, json_object **out);

/*
 * The typed readers below look up member `key` of object `o` (which may be NULL). Each returns
 * 0 and stores the value, -ENOENT when `o` is not an object or the member is missing or null, or
 * -EPROTO when it has another type or is out of range (a negative or fractional size, a number
 * past 2^64). *out is left unchanged on error.
 */
int reply_u64(json_object *o, const char *key, uint64_t *out);
int reply_i64(json_object *o, const char *key, int64_t *out);
/* Accepts integers and finite doubles. */
int reply_double(json_object *o, const char *key, double *out);
int reply_bool(json_object *o, const char *key, bool *out);
/* The string stays valid as long as `o` is referenced. */
int reply_str(json_object *o, const char *key, const char **out);
/* Borrowed references to a member array / object (valid as long as `o` is referenced). */
int reply_array(json_object *o, const char *key, json_object **out);
int reply_object(json_object *o, const char *key, json_object **out);

/* The same readers with a default for a missing or malformed member, for display. */
uint64_t reply_u64_or(json_object *o, const char *key, uint64_t def);
int64_t reply_i64_or(json_object *o, const char *key, int64_t def);
double reply_double_or(json_object *o, const char *key, double def);
bool reply_bool_or(json_object *o, const char *key, bool def);
const char *reply_str_or(json_object *o, const char *key, const char *def);

/* True when member `key` exists and is not null. */
bool reply_has(json_object *o, const char *key);

#endif
