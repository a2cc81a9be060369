/* s3: the Amazon S3 (and S3-compatible) store: ListObjectsV2, HEAD, pinned ranged GETs, all
 * signed with SigV4 on every attempt. */
#ifndef HOARDFS_S3_H
#define HOARDFS_S3_H

#include "common/store.h"

#define S3_PAGE_SIZE_DEFAULT	1000 /* max-keys per listing page (also the service's maximum) */
#define S3_DEFAULT_ENDPOINT_FMT "https://s3.%s.amazonaws.com" /* %s: the region */

/*
 * The S3 store: s3_open() is declared in store_impl.h and follows store_open()'s contract.
 *
 * Endpoint: cfg->endpoint, else $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, else AWS's regional
 * endpoint (S3_DEFAULT_ENDPOINT_FMT). It must be "http(s)://host[:port][/path]" (no user info,
 * query or fragment); trailing slashes are dropped. Addressing (cfg->s3_addressing): 1 =
 * path-style (".../bucket/key"), 2 = virtual-hosted ("bucket.host/key"), 0 = auto: path-style with
 * a custom endpoint or a bucket name that is not a DNS label, virtual-hosted on AWS.
 *
 * Region: cfg->region, else auth_aws_region(). Credentials: none with cfg->anonymous, else
 * auth_aws_load(cfg->profile); when nothing is configured the store is anonymous (logged). A
 * session token is sent as x-amz-security-token. Anonymous requests carry no Authorization.
 *
 * $HOARDFS_LIST_PAGE_SIZE (1..1000) sets max-keys per listing page; another value fails s3_open()
 * with -EINVAL. Listings ask for encoding-type=url and decode names when the server honours it.
 * A server that repeats a common prefix on a later page (s3rver does) has the repeat dropped.
 *
 * Object names are sent percent-encoded once ('/' kept; "." and ".." segments escaped so no URL
 * normalisation can change them), and signed as sent. Pinned reads send If-Match with the ETag
 * and also check the response's ETag, since some servers ignore If-Match: a mismatch, 404 or 412
 * completes with -ESTALE.
 */

#endif
