/* Unit tests for common/auth_aws: credentials and region from variables, the shared credentials
 * file and the config file, and how broken set-ups are reported (never with a secret). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/auth_aws.h"

static const char *const aws_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",	    "AWS_SESSION_TOKEN",
	"AWS_PROFILE",	     "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
	"AWS_REGION",	     "AWS_DEFAULT_REGION",
};

/* Per-test state: a fresh HOME directory with an empty .aws/. */
struct fixture {
	char home[256];
	char aws_dir[300];
	char creds[320];
	char config[320];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->home, sizeof(f->home), "/tmp/hoardfs-test-auth-aws.XXXXXX");
	if (!mkdtemp(f->home)) {
		free(f);
		return -1;
	}
	snprintf(f->aws_dir, sizeof(f->aws_dir), "%s/.aws", f->home);
	snprintf(f->creds, sizeof(f->creds), "%s/credentials", f->aws_dir);
	snprintf(f->config, sizeof(f->config), "%s/config", f->aws_dir);
	if (mkdir(f->aws_dir, 0700) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(aws_vars) / sizeof(aws_vars[0]); i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", f->home, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->creds);
	unlink(f->config);
	rmdir(f->aws_dir);
	rmdir(f->home);
	free(f);
	return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void write_text(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

static const char profiles[] = "# comment line\n"
			       "; another comment\n"
			       "[default]\n"
			       "aws_access_key_id = AKIDDEFAULT\n"
			       "aws_secret_access_key = secretDefault/+=\n"
			       "\n"
			       "[dev]\r\n"
			       "aws_access_key_id=AKIDDEV\r\n"
			       "AWS_Secret_Access_Key  =  secretDev  \r\n"
			       "s3 =\r\n"
			       "    max_concurrent_requests = 20\r\n"
			       "\r\n"
			       "[prod]\n"
			       "aws_access_key_id = AKIDPROD\n"
			       "aws_secret_access_key = secretProd\n"
			       "aws_session_token = tokenProd==\n"
			       "[role]\n"
			       "role_arn = arn:aws:iam::123456789012:role/x\n"
			       "source_profile = default\n"
			       "[half]\n"
			       "aws_access_key_id = AKIDHALF\n";

static void test_env_keys(void **state)
{
	struct auth_aws_creds c;

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secretEnv", 1);
	assert_int_equal(auth_aws_load(NULL, &c), 0);
	assert_string_equal(c.access_key_id, "AKIDENV");
	assert_string_equal(c.secret_access_key, "secretEnv");
	assert_string_equal(c.session_token, "");
	assert_non_null(strstr(c.source, "environment"));

	setenv("AWS_SESSION_TOKEN", "tokenEnv", 1);
	assert_int_equal(auth_aws_load(NULL, &c), 0);
	assert_string_equal(c.session_token, "tokenEnv");
	auth_aws_clear(&c);
	assert_string_equal(c.secret_access_key, "");
	assert_string_equal(c.session_token, "");
}

static void test_env_beats_profiles(void **state)
{
	struct fixture *f = *state;
	struct auth_aws_creds c;

	write_text(f->creds, profiles);
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secretEnv", 1);
	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(auth_aws_load(NULL, &c), 0);
	assert_string_equal(c.access_key_id, "AKIDENV");
}

static void test_env_partial(void **state)
{
	struct auth_aws_creds c;

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	assert_string_equal(c.access_key_id, "");
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_SECRET_ACCESS_KEY", "secretEnv", 1);
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
}

static void test_profiles(void **state)
{
	struct fixture *f = *state;
	struct auth_aws_creds c;

	write_text(f->creds, profiles);
	/* No profile named: "default" from $HOME/.aws/credentials. */
	assert_int_equal(auth_aws_load(NULL, &c), 0);
	assert_string_equal(c.access_key_id, "AKIDDEFAULT");
	assert_string_equal(c.secret_access_key, "secretDefault/+=");
	assert_non_null(strstr(c.source, "profile 'default'"));
	assert_non_null(strstr(c.source, f->creds));

	/* AWS_PROFILE; CRLF lines, odd spacing, key case and nested settings. */
	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(auth_aws_load(NULL, &c), 0);
	assert_string_equal(c.access_key_id, "AKIDDEV");
	assert_string_equal(c.secret_access_key, "secretDev");
	assert_string_equal(c.session_token, "");

	/* The argument beats AWS_PROFILE; a session token is picked up. */
	assert_int_equal(auth_aws_load("prod", &c), 0);
	assert_string_equal(c.access_key_id, "AKIDPROD");
	assert_string_equal(c.secret_access_key, "secretProd");
	assert_string_equal(c.session_token, "tokenProd==");
	auth_aws_clear(&c);
}

static void test_profile_problems(void **state)
{
	struct fixture *f = *state;
	struct auth_aws_creds c;

	write_text(f->creds, profiles);
	/* Named but absent, named but without static keys, half a key pair. */
	assert_int_equal(auth_aws_load("nosuch", &c), -ENOKEY);
	setenv("AWS_PROFILE", "nosuch", 1);
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	assert_int_equal(auth_aws_load("role", &c), -ENOKEY);
	assert_int_equal(auth_aws_load("half", &c), -ENOKEY);
	assert_int_equal(auth_aws_load("bad]name", &c), -EINVAL);
	assert_string_equal(c.access_key_id, "");
}

static void test_shared_credentials_file_var(void **state)
{
	struct fixture *f = *state;
	char other[400];
	struct auth_aws_creds c;

	snprintf(other, sizeof(other), "%s/other-creds", f->home);
	write_text(other, "[default]\naws_access_key_id=AKIDOTHER\naws_secret_access_key=s\n");
	write_text(f->creds, profiles);
	setenv("AWS_SHARED_CREDENTIALS_FILE", other, 1);
	assert_int_equal(auth_aws_load(NULL, &c), 0);
	assert_string_equal(c.access_key_id, "AKIDOTHER");
	assert_non_null(strstr(c.source, "other-creds"));
	unlink(other);
}

static void test_missing_files(void **state)
{
	struct fixture *f = *state;
	struct auth_aws_creds c;

	/* Nothing configured anywhere: not an error, the caller goes anonymous. */
	assert_int_equal(auth_aws_load(NULL, &c), -ENOENT);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/hoardfs/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/hoardfs/config", 1);
	assert_int_equal(auth_aws_load(NULL, &c), -ENOENT);
	/* ... but a profile the user asked for must exist. */
	assert_int_equal(auth_aws_load("dev", &c), -ENOKEY);
	/* A default profile without keys (only a region) is "nothing configured" too. */
	unsetenv("AWS_CONFIG_FILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	write_text(f->config, "[default]\nregion = eu-west-1\n");
	assert_int_equal(auth_aws_load(NULL, &c), -ENOENT);
	/* A directory where the file should be cannot be read. */
	setenv("AWS_SHARED_CREDENTIALS_FILE", f->aws_dir, 1);
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
}

static void test_config_file_keys(void **state)
{
	struct fixture *f = *state;
	struct auth_aws_creds c;

	write_text(f->config,
		   "[default]\nregion=us-west-2\n"
		   "[profile cfg]\naws_access_key_id = AKIDCFG\n"
		   "aws_secret_access_key = secretCfg\n"
		   "aws_security_token = legacyToken\n"
		   "[nocfg]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = x\n");
	assert_int_equal(auth_aws_load("cfg", &c), 0);
	assert_string_equal(c.access_key_id, "AKIDCFG");
	assert_string_equal(c.session_token, "legacyToken");
	assert_non_null(strstr(c.source, f->config));
	/* In the config file a non-default profile needs the "profile " prefix. */
	assert_int_equal(auth_aws_load("nocfg", &c), -ENOKEY);
	/* The credentials file wins over the config file. */
	write_text(f->creds, "[cfg]\naws_access_key_id = AKIDCREDS\naws_secret_access_key = s\n");
	assert_int_equal(auth_aws_load("cfg", &c), 0);
	assert_string_equal(c.access_key_id, "AKIDCREDS");
}

static void test_garbage_files(void **state)
{
	struct fixture *f = *state;
	struct auth_aws_creds c;
	uint8_t junk[4096];
	static const char *const bad[] = {
		"aws_access_key_id = AKIDNOSECTION\n",
		"[default\naws_access_key_id = A\naws_secret_access_key = B\n",
		"[]\n",
		"[default]\njust some words\n",
		"[default]\n= value without key\n",
		"  indented before any section\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_text(f->creds, bad[i]);
		assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	}
	/* Binary junk (with NUL bytes). */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7919u >> 3);
	write_file(f->creds, junk, sizeof(junk));
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	/* A value with a control character, a value too long, a file too large. */
	write_text(f->creds, "[default]\naws_access_key_id = A\x01Z\naws_secret_access_key = B\n");
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	{
		static const char head[] = "[default]\naws_access_key_id = A\n"
					   "aws_secret_access_key = B\naws_session_token = ";
		size_t n = strlen(head) + AUTH_AWS_TOKEN_MAX + 1;
		char *big = malloc(n + 1);

		assert_non_null(big);
		memcpy(big, head, strlen(head));
		memset(big + strlen(head), 'T', AUTH_AWS_TOKEN_MAX + 1);
		big[n] = '\0';
		write_text(f->creds, big);
		assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
		free(big);
	}
	{
		size_t n = AUTH_AWS_FILE_MAX + 10;
		char *huge = malloc(n);

		assert_non_null(huge);
		memset(huge, '#', n);
		huge[n - 1] = '\n';
		write_file(f->creds, huge, n);
		assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
		free(huge);
	}
	/* An empty file is merely "nothing configured". */
	write_text(f->creds, "");
	assert_int_equal(auth_aws_load(NULL, &c), -ENOENT);
}

/* Failures are logged, but never with the secret, even when the line holding it is broken. */
static void test_secrets_not_logged(void **state)
{
	struct fixture *f = *state;
	struct auth_aws_creds c;
	char logpath[400], text[4096];
	int saved, fd;
	ssize_t n;

	snprintf(logpath, sizeof(logpath), "%s/stderr.log", f->home);
	write_text(f->creds, "[default]\naws_access_key_id = AKIDX\n"
			     "aws_secret_access_key SUPERSECRET123\n");
	fflush(stderr);
	saved = dup(2);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, 2);
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	write_text(f->creds, "[default]\naws_access_key_id = AKIDX\n"
			     "aws_secret_access_key = SUPERSECRET123\x02\n");
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	setenv("AWS_SECRET_ACCESS_KEY", "SUPERSECRET123", 1);
	assert_int_equal(auth_aws_load(NULL, &c), -ENOKEY);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	fd = open(logpath, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	unlink(logpath);
	assert_true(n > 0); /* something was logged ... */
	text[n] = '\0';
	assert_null(strstr(text, "SUPERSECRET")); /* ... but not the secret */
	assert_non_null(strstr(text, "line 3"));
}

static void test_region(void **state)
{
	struct fixture *f = *state;
	char r[AUTH_AWS_REGION_MAX + 1], tiny[4];

	assert_int_equal(auth_aws_region(NULL, r, sizeof(r)), 0);
	assert_string_equal(r, "us-east-1");
	write_text(f->config, "[default]\nregion = eu-central-1\n[profile dev]\nregion=ap-south-1\n"
			      "[profile bad]\nregion = no/slashes\n");
	assert_int_equal(auth_aws_region(NULL, r, sizeof(r)), 0);
	assert_string_equal(r, "eu-central-1");
	assert_int_equal(auth_aws_region("dev", r, sizeof(r)), 0);
	assert_string_equal(r, "ap-south-1");
	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(auth_aws_region(NULL, r, sizeof(r)), 0);
	assert_string_equal(r, "ap-south-1");
	/* A profile without a region (or absent from the config file) gets the default. */
	assert_int_equal(auth_aws_region("other", r, sizeof(r)), 0);
	assert_string_equal(r, "us-east-1");
	assert_int_equal(auth_aws_region("bad", r, sizeof(r)), -EINVAL);
	setenv("AWS_DEFAULT_REGION", "sa-east-1", 1);
	assert_int_equal(auth_aws_region(NULL, r, sizeof(r)), 0);
	assert_string_equal(r, "sa-east-1");
	setenv("AWS_REGION", "us-west-1", 1);
	assert_int_equal(auth_aws_region(NULL, r, sizeof(r)), 0);
	assert_string_equal(r, "us-west-1");
	assert_int_equal(auth_aws_region(NULL, tiny, sizeof(tiny)), -ENAMETOOLONG);
	setenv("AWS_REGION", "us east", 1);
	assert_int_equal(auth_aws_region(NULL, r, sizeof(r)), -EINVAL);
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	write_text(f->config, "garbage without section\n");
	assert_int_equal(auth_aws_region(NULL, r, sizeof(r)), -ENOKEY);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_env_keys),	  T(test_env_beats_profiles),
		T(test_env_partial),	  T(test_profiles),
		T(test_profile_problems), T(test_shared_credentials_file_var),
		T(test_missing_files),	  T(test_config_file_keys),
		T(test_garbage_files),	  T(test_secrets_not_logged),
		T(test_region),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
