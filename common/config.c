/* config: "key = value" files. */
#include "common/config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

int config_parse_file(const char *path, config_fn fn, void *ctx)
{
	char line[4096];
	long total = 0;
	int lineno = 0, rc = 0;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		char *eq, *key, *val;

		lineno++;
		total += (long)n;
		if (total > (1L << 20) || (n == sizeof(line) - 1 && line[n - 1] != '\n')) {
			fprintf(stderr, "hoardfs: %s:%d: line or file too long\n", path, lineno);
			rc = -E2BIG;
			break;
		}
		key = trim(line);
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			fprintf(stderr, "hoardfs: %s:%d: expected \"key = value\"\n", path, lineno);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		key = trim(key);
		val = trim(eq + 1);
		if (!*key) {
			fprintf(stderr, "hoardfs: %s:%d: missing key\n", path, lineno);
			rc = -EINVAL;
			break;
		}
		n = strlen(val);
		if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
			val[n - 1] = '\0';
			val++;
		}
		rc = fn(ctx, key, val, lineno);
		if (rc)
			break;
	}
	if (!rc && ferror(f))
		rc = -EIO;
	fclose(f);
	return rc;
}
