/* reply: defensive readers for the daemon's JSON replies. */
#include "tools/reply.h"

#include <errno.h>
#include <math.h>

#define REPLY_DEPTH 64

int reply_parse(const char *text, size_t len, json_object **out)
{
	json_tokener *tok;
	json_object *o;
	size_t end;

	*out = NULL;
	if (len > (size_t)INT32_MAX)
		return -EPROTO;
	tok = json_tokener_new_ex(REPLY_DEPTH);
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		json_tokener_free(tok);
		return -EPROTO;
	}
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	for (; end < len; end++) {
		char c = text[end];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '\0') {
			json_object_put(o);
			return -EPROTO;
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return -EPROTO;
	}
	*out = o;
	return 0;
}

/* The member, or NULL when `o` is no object or the member is missing or null. */
static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!o || !json_object_is_type(o, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(o, key, &v))
		return NULL;
	return v; /* NULL for a JSON null */
}

bool reply_has(json_object *o, const char *key)
{
	return member(o, key) != NULL;
}

int reply_u64(json_object *o, const char *key, uint64_t *out)
{
	json_object *v = member(o, key);

	if (!v)
		return -ENOENT;
	if (json_object_is_type(v, json_type_int)) {
		/* get_int64 saturates at INT64_MAX for large unsigned values: only its sign counts
		 */
		if (json_object_get_int64(v) < 0)
			return -EPROTO;
		*out = json_object_get_uint64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		if (!isfinite(d) || d < 0 || d >= 18446744073709551616.0 || d != floor(d))
			return -EPROTO;
		*out = (uint64_t)d;
		return 0;
	}
	return -EPROTO;
}

int reply_i64(json_object *o, const char *key, int64_t *out)
{
	json_object *v = member(o, key);

	if (!v)
		return -ENOENT;
	if (json_object_is_type(v, json_type_int)) {
		if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) > INT64_MAX)
			return -EPROTO;
		*out = json_object_get_int64(v);
		return 0;
	}
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);

		if (!isfinite(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0 ||
		    d != floor(d))
			return -EPROTO;
		*out = (int64_t)d;
		return 0;
	}
	return -EPROTO;
}

int reply_double(json_object *o, const char *key, double *out)
{
	json_object *v = member(o, key);
	double d;

	if (!v)
		return -ENOENT;
	if (json_object_is_type(v, json_type_int))
		d = (double)json_object_get_int64(v);
	else if (json_object_is_type(v, json_type_double))
		d = json_object_get_double(v);
	else
		return -EPROTO;
	if (!isfinite(d))
		return -EPROTO;
	*out = d;
	return 0;
}

int reply_bool(json_object *o, const char *key, bool *out)
{
	json_object *v = member(o, key);

	if (!v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_boolean))
		return -EPROTO;
	*out = json_object_get_boolean(v);
	return 0;
}

int reply_str(json_object *o, const char *key, const char **out)
{
	json_object *v = member(o, key);

	if (!v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_string))
		return -EPROTO;
	*out = json_object_get_string(v);
	return 0;
}

int reply_array(json_object *o, const char *key, json_object **out)
{
	json_object *v = member(o, key);

	if (!v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_array))
		return -EPROTO;
	*out = v;
	return 0;
}

int reply_object(json_object *o, const char *key, json_object **out)
{
	json_object *v = member(o, key);

	if (!v)
		return -ENOENT;
	if (!json_object_is_type(v, json_type_object))
		return -EPROTO;
	*out = v;
	return 0;
}

uint64_t reply_u64_or(json_object *o, const char *key, uint64_t def)
{
	uint64_t v = def;

	return reply_u64(o, key, &v) ? def : v;
}

int64_t reply_i64_or(json_object *o, const char *key, int64_t def)
{
	int64_t v = def;

	return reply_i64(o, key, &v) ? def : v;
}

double reply_double_or(json_object *o, const char *key, double def)
{
	double v = def;

	return reply_double(o, key, &v) ? def : v;
}

bool reply_bool_or(json_object *o, const char *key, bool def)
{
	bool v = def;

	return reply_bool(o, key, &v) ? def : v;
}

const char *reply_str_or(json_object *o, const char *key, const char *def)
{
	const char *v = def;

	return reply_str(o, key, &v) ? def : v;
}
