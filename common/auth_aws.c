/* auth_aws: AWS credentials and region from the environment and the shared files. */
#include "common/auth_aws.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"

#define AUTH_AWS_DEFAULT_REGION "us-east-1"
#define AUTH_AWS_PATH_MAX	1024

/* The keys one lookup collects from a profile section. */
enum auth_aws_key { AK_ID, AK_SECRET, AK_TOKEN, AK_REGION, AK_COUNT };

static const struct {
	const char *name;
	size_t max;
} auth_aws_keys[] = {
	[AK_ID] = { "aws_access_key_id", AUTH_AWS_KEY_ID_MAX },
	[AK_SECRET] = { "aws_secret_access_key", AUTH_AWS_SECRET_MAX },
	[AK_TOKEN] = { "aws_session_token", AUTH_AWS_TOKEN_MAX },
	[AK_REGION] = { "region", AUTH_AWS_REGION_MAX },
};

/* What a lookup of one section in one file found. Values point into the file's text. */
struct auth_aws_section {
	bool found; /* the section exists */
	const char *val[AK_COUNT];
	size_t len[AK_COUNT];
};

/* Which profile is used and whether the user named it. */
struct auth_aws_profile {
	char name[AUTH_AWS_PROFILE_MAX + 1];
	bool explicit;
};

static bool auth_aws_text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static int auth_aws_pick_profile(const char *arg, struct auth_aws_profile *p)
{
	const char *env = getenv("AWS_PROFILE");
	const char *name = "default";
	size_t n;

	p->explicit = true;
	if (arg && *arg) {
		name = arg;
	} else if (env && *env) {
		name = env;
	} else {
		p->explicit = false;
	}
	n = strlen(name);
	if (n > AUTH_AWS_PROFILE_MAX || !auth_aws_text_ok(name, n) || strpbrk(name, "[]")) {
		log_error("aws: invalid profile name");
		return -EINVAL;
	}
	memcpy(p->name, name, n + 1);
	return 0;
}

/* $HOME, else the user database's home directory; "" if neither is known. */
static void auth_aws_home(char *out, size_t outsz)
{
	const char *home = getenv("HOME");
	struct passwd pw, *res = NULL;
	char tmp[4096];

	out[0] = '\0';
	if (home && *home) {
		snprintf(out, outsz, "%s", home);
		return;
	}
	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &res) == 0 && res && res->pw_dir)
		snprintf(out, outsz, "%s", res->pw_dir);
}

/* The path of a shared file: $env_name, else $HOME/.aws/<leaf>. Returns 0, -ENOENT (no home),
 * -ENAMETOOLONG. */
static int auth_aws_file_path(const char *env_name, const char *leaf, char *out, size_t outsz)
{
	const char *env = getenv(env_name);
	char home[AUTH_AWS_PATH_MAX];
	int n;

	if (env && *env) {
		n = snprintf(out, outsz, "%s", env);
	} else {
		auth_aws_home(home, sizeof(home));
		if (!home[0])
			return -ENOENT;
		n = snprintf(out, outsz, "%s/.aws/%s", home, leaf);
	}
	return n < 0 || (size_t)n >= outsz ? -ENAMETOOLONG : 0;
}

/*
 * Reads a whole regular file of at most AUTH_AWS_FILE_MAX bytes into b. Returns 0, -ENOENT if
 * it does not exist, -ENOKEY (logged) for any other failure.
 */
static int auth_aws_read_file(const char *path, struct buf *b)
{
	char chunk[4096];
	struct stat st;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return -ENOENT;
		log_error("aws: cannot open %s: %s", path, strerror(errno));
		return -ENOKEY;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		log_error("aws: %s is not a regular file", path);
		rc = -ENOKEY;
		goto out_close_fd;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			log_error("aws: cannot read %s: %s", path, strerror(errno));
			rc = -ENOKEY;
			break;
		}
		if (n == 0)
			break;
		if (buf_append(b, chunk, (size_t)n) != 0) {
			log_error("aws: %s is larger than %d bytes", path, AUTH_AWS_FILE_MAX);
			rc = -ENOKEY;
			break;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
out_close_fd:
	close(fd);
	return rc;
}

static bool auth_aws_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims blanks around [*s, *s + *n). */
static void auth_aws_trim(const char **s, size_t *n)
{
	while (*n && auth_aws_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && auth_aws_blank((*s)[*n - 1]))
		(*n)--;
}

/* True when the section header text [s, s+n) names `profile` in this kind of file. */
static bool auth_aws_section_matches(const char *s, size_t n, const char *profile, bool config)
{
	size_t plen = strlen(profile);

	if (config && n > 8 && memcmp(s, "profile", 7) == 0 && auth_aws_blank(s[7])) {
		s += 8;
		n -= 8;
		auth_aws_trim(&s, &n);
		return n == plen && memcmp(s, profile, n) == 0;
	}
	/* In the config file only "default" may appear without the "profile " prefix. */
	if (config && strcmp(profile, "default") != 0)
		return false;
	return n == plen && memcmp(s, profile, n) == 0;
}

/*
 * Parses an INI file (the AWS CLI's format: "[section]", "key = value", '#'/';' comments,
 * indented sub-settings) in text[0..len) and collects the wanted keys of `profile`'s section.
 * Returns 0 or -ENOKEY for a malformed file (the line number is logged, never its content).
 */
static int auth_aws_parse(const char *path, const char *text, size_t len, const char *profile,
			  bool config, struct auth_aws_section *sec)
{
	bool in_section = false, any_section = false;
	size_t pos = 0;
	int lineno = 0;

	memset(sec, 0, sizeof(*sec));
	if (memchr(text, '\0', len)) {
		log_error("aws: %s is not a text file", path);
		return -ENOKEY;
	}
	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		const char *key, *val, *delim;
		size_t klen, vlen;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		if (n && auth_aws_blank(line[0])) {
			/* An indented line continues the previous setting (nested values). */
			key = line;
			klen = n;
			auth_aws_trim(&key, &klen);
			if (klen == 0 || key[0] == '#' || key[0] == ';' || any_section)
				continue;
			goto malformed;
		}
		auth_aws_trim(&line, &n);
		if (n == 0 || line[0] == '#' || line[0] == ';')
			continue;
		if (line[0] == '[') {
			const char *name = line + 1;
			size_t nlen;

			if (line[n - 1] != ']')
				goto malformed;
			nlen = n - 2;
			auth_aws_trim(&name, &nlen);
			if (nlen == 0)
				goto malformed;
			any_section = true;
			in_section = auth_aws_section_matches(name, nlen, profile, config);
			if (in_section)
				sec->found = true;
			continue;
		}
		delim = line;
		while (delim < line + n && *delim != '=' && *delim != ':')
			delim++;
		if (delim == line + n || !any_section || delim == line)
			goto malformed;
		key = line;
		klen = (size_t)(delim - line);
		auth_aws_trim(&key, &klen);
		val = delim + 1;
		vlen = (size_t)(line + n - val);
		auth_aws_trim(&val, &vlen);
		if (!in_section)
			continue;
		for (int k = 0; k < AK_COUNT; k++) {
			bool match = klen == strlen(auth_aws_keys[k].name) &&
				     strncasecmp(key, auth_aws_keys[k].name, klen) == 0;

			/* aws_security_token is the older name of aws_session_token. */
			if (!match && k == AK_TOKEN)
				match = klen == 18 &&
					strncasecmp(key, "aws_security_token", 18) == 0;
			if (match) {
				sec->val[k] = val;
				sec->len[k] = vlen;
			}
		}
	}
	return 0;
malformed:
	log_error("aws: %s line %d is malformed", path, lineno);
	memset(sec, 0, sizeof(*sec));
	return -ENOKEY;
}

/*
 * Looks up `profile` in one file. Returns 0 (sec filled; sec->found false if the file or the
 * section does not exist) or -ENOKEY. `text` holds the file and must be wiped and freed by the
 * caller after using sec's values.
 */
static int auth_aws_lookup(const char *env_name, const char *leaf, bool config, const char *profile,
			   struct buf *text, char *path, size_t pathsz,
			   struct auth_aws_section *sec)
{
	int rc;

	memset(sec, 0, sizeof(*sec));
	rc = auth_aws_file_path(env_name, leaf, path, pathsz);
	if (rc == -ENOENT)
		return 0;
	if (rc) {
		log_error("aws: the path of the %s file is too long", leaf);
		return -ENOKEY;
	}
	rc = auth_aws_read_file(path, text);
	if (rc == -ENOENT)
		return 0;
	if (rc)
		return rc;
	return auth_aws_parse(path, text->data ? text->data : "", text->len, profile, config, sec);
}

static int auth_aws_copy(char *dst, size_t dstmax, const char *src, size_t n, const char *what,
			 const char *where)
{
	if (n == 0 || n > dstmax || !auth_aws_text_ok(src, n)) {
		log_error("aws: %s in %s is empty, too long or has control characters", what,
			  where);
		return -ENOKEY;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

/* Fills out from a profile section that has a key id or a secret. */
static int auth_aws_from_section(const struct auth_aws_section *sec, const char *where,
				 struct auth_aws_creds *out)
{
	int rc;

	if (!sec->val[AK_ID] || !sec->val[AK_SECRET]) {
		log_error("aws: %s has only one of aws_access_key_id and aws_secret_access_key",
			  where);
		return -ENOKEY;
	}
	rc = auth_aws_copy(out->access_key_id, AUTH_AWS_KEY_ID_MAX, sec->val[AK_ID],
			   sec->len[AK_ID], "aws_access_key_id", where);
	if (!rc)
		rc = auth_aws_copy(out->secret_access_key, AUTH_AWS_SECRET_MAX, sec->val[AK_SECRET],
				   sec->len[AK_SECRET], "aws_secret_access_key", where);
	if (!rc && sec->val[AK_TOKEN] && sec->len[AK_TOKEN])
		rc = auth_aws_copy(out->session_token, AUTH_AWS_TOKEN_MAX, sec->val[AK_TOKEN],
				   sec->len[AK_TOKEN], "aws_session_token", where);
	if (!rc)
		snprintf(out->source, sizeof(out->source), "%s", where);
	return rc;
}

static int auth_aws_from_env(const char *id, const char *secret, struct auth_aws_creds *out)
{
	const char *token = getenv("AWS_SESSION_TOKEN");
	int rc;

	rc = auth_aws_copy(out->access_key_id, AUTH_AWS_KEY_ID_MAX, id, strlen(id),
			   "AWS_ACCESS_KEY_ID", "the environment");
	if (!rc)
		rc = auth_aws_copy(out->secret_access_key, AUTH_AWS_SECRET_MAX, secret,
				   strlen(secret), "AWS_SECRET_ACCESS_KEY", "the environment");
	if (!rc && token && *token)
		rc = auth_aws_copy(out->session_token, AUTH_AWS_TOKEN_MAX, token, strlen(token),
				   "AWS_SESSION_TOKEN", "the environment");
	if (!rc)
		snprintf(out->source, sizeof(out->source), "environment (AWS_ACCESS_KEY_ID)");
	return rc;
}

/* Tries one file for the profile's static keys. Returns 1 if it filled out, 0 if the profile
 * has no keys there, or -ENOKEY. */
static int auth_aws_try_file(const char *env_name, const char *leaf, bool config,
			     const struct auth_aws_profile *p, struct auth_aws_creds *out,
			     bool *profile_seen)
{
	char path[AUTH_AWS_PATH_MAX], where[AUTH_AWS_SOURCE_MAX];
	struct auth_aws_section sec;
	struct buf text;
	int rc;

	buf_init(&text, AUTH_AWS_FILE_MAX);
	rc = auth_aws_lookup(env_name, leaf, config, p->name, &text, path, sizeof(path), &sec);
	if (rc)
		goto out_wipe_text;
	if (sec.found)
		*profile_seen = true;
	if (!sec.val[AK_ID] && !sec.val[AK_SECRET])
		goto out_wipe_text;
	snprintf(where, sizeof(where), "profile '%s' in %s", p->name, path);
	rc = auth_aws_from_section(&sec, where, out);
	if (!rc)
		rc = 1;
out_wipe_text:
	if (text.data)
		explicit_bzero(text.data, text.cap);
	buf_free(&text);
	return rc;
}

int auth_aws_load(const char *profile, struct auth_aws_creds *out)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
	struct auth_aws_profile p;
	bool seen = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if (id && *id && secret && *secret) {
		rc = auth_aws_from_env(id, secret, out);
		goto out_done;
	}
	if ((id && *id) || (secret && *secret)) {
		log_error("aws: only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set");
		rc = -ENOKEY;
		goto out_done;
	}
	rc = auth_aws_pick_profile(profile, &p);
	if (rc)
		goto out_done;
	rc = auth_aws_try_file("AWS_SHARED_CREDENTIALS_FILE", "credentials", false, &p, out, &seen);
	if (rc == 0)
		rc = auth_aws_try_file("AWS_CONFIG_FILE", "config", true, &p, out, &seen);
	if (rc == 1) {
		rc = 0;
		goto out_done;
	}
	if (rc)
		goto out_done;
	if (p.explicit) {
		if (seen)
			log_error(
				"aws: profile '%s' has no static keys (aws_access_key_id, "
				"aws_secret_access_key); other credential kinds are not supported",
				p.name);
		else
			log_error("aws: profile '%s' was not found", p.name);
		rc = -ENOKEY;
		goto out_done;
	}
	rc = -ENOENT;
out_done:
	if (rc)
		auth_aws_clear(out);
	return rc;
}

static bool auth_aws_region_valid(const char *s, size_t n)
{
	if (n == 0 || n > AUTH_AWS_REGION_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static int auth_aws_put_region(const char *s, size_t n, char *out, size_t outsz)
{
	if (!auth_aws_region_valid(s, n)) {
		log_error("aws: invalid region name");
		return -EINVAL;
	}
	if (n >= outsz)
		return -ENAMETOOLONG;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int auth_aws_region(const char *profile, char *out, size_t outsz)
{
	static const char *const vars[] = { "AWS_REGION", "AWS_DEFAULT_REGION" };
	char path[AUTH_AWS_PATH_MAX];
	struct auth_aws_profile p;
	struct auth_aws_section sec;
	struct buf text;
	int rc;

	for (size_t i = 0; i < 2; i++) {
		const char *v = getenv(vars[i]);

		if (v && *v)
			return auth_aws_put_region(v, strlen(v), out, outsz);
	}
	rc = auth_aws_pick_profile(profile, &p);
	if (rc)
		return rc;
	buf_init(&text, AUTH_AWS_FILE_MAX);
	rc = auth_aws_lookup("AWS_CONFIG_FILE", "config", true, p.name, &text, path, sizeof(path),
			     &sec);
	if (!rc && sec.val[AK_REGION] && sec.len[AK_REGION])
		rc = auth_aws_put_region(sec.val[AK_REGION], sec.len[AK_REGION], out, outsz);
	else if (!rc)
		rc = auth_aws_put_region(AUTH_AWS_DEFAULT_REGION, strlen(AUTH_AWS_DEFAULT_REGION),
					 out, outsz);
	if (text.data)
		explicit_bzero(text.data, text.cap);
	buf_free(&text);
	return rc;
}

void auth_aws_clear(struct auth_aws_creds *c)
{
	explicit_bzero(c, sizeof(*c));
}
