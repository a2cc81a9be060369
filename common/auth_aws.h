/* auth_aws: AWS credentials and region from the environment and the shared credentials and
 * config files (~/.aws/credentials, ~/.aws/config), the way the AWS CLI finds them. */
#ifndef HOARDFS_AUTH_AWS_H
#define HOARDFS_AUTH_AWS_H

#include <stddef.h>

#define AUTH_AWS_KEY_ID_MAX  128 /* access key ids are 16-128 characters */
#define AUTH_AWS_SECRET_MAX  256
#define AUTH_AWS_TOKEN_MAX   8192 /* STS session tokens run to a few KiB */
#define AUTH_AWS_REGION_MAX  64
#define AUTH_AWS_PROFILE_MAX 128
#define AUTH_AWS_SOURCE_MAX  1200
#define AUTH_AWS_FILE_MAX    (1024 * 1024) /* larger credentials/config files are refused */

/*
 * A set of credentials (a value type, about 9 KiB). The secret and the token must never be
 * logged; `source` is safe to log ("environment", "profile 'dev' in /root/.aws/credentials").
 * Wipe it with auth_aws_clear() when done.
 */
struct auth_aws_creds {
	char access_key_id[AUTH_AWS_KEY_ID_MAX + 1];
	char secret_access_key[AUTH_AWS_SECRET_MAX + 1];
	char session_token[AUTH_AWS_TOKEN_MAX + 1]; /* "" when there is none */
	char source[AUTH_AWS_SOURCE_MAX + 1];
};

/*
 * Finds credentials, in this order:
 *  1. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN if set);
 *  2. the profile `profile` (NULL: $AWS_PROFILE, else "default") in the shared credentials file
 *     ($AWS_SHARED_CREDENTIALS_FILE, else $HOME/.aws/credentials): aws_access_key_id,
 *     aws_secret_access_key, aws_session_token;
 *  3. the same keys in that profile's section of the config file ($AWS_CONFIG_FILE, else
 *     $HOME/.aws/config: "[default]" or "[profile NAME]").
 * Returns 0 with *out filled; -ENOENT when nothing is configured (no variables, and the default
 * profile is in neither file, or the files do not exist); -ENOKEY when credentials are configured
 * but unusable: only one of the two variables set, a profile named explicitly (argument or
 * AWS_PROFILE) that neither file has, a profile without both keys, a file that cannot be read or
 * parsed, a value too long or with control characters. -EINVAL for an invalid profile name.
 * The reason is logged (never a secret). *out is wiped on failure.
 */
int auth_aws_load(const char *profile, struct auth_aws_creds *out);

/*
 * Finds the region: $AWS_REGION, $AWS_DEFAULT_REGION, the "region" key of the profile (chosen
 * as above) in the config file, else "us-east-1". Writes it into out (outsz bytes). Returns 0,
 * -EINVAL for an invalid region text or profile name, -ENOKEY for a config file that exists but
 * cannot be read or parsed, -ENAMETOOLONG when out is too small.
 */
int auth_aws_region(const char *profile, char *out, size_t outsz);

/* Wipes credentials (explicit_bzero), so no secret lingers in memory. */
void auth_aws_clear(struct auth_aws_creds *c);

#endif
