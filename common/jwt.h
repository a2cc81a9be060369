/* jwt: RS256 JSON Web Tokens (RFC 7515/7519) signed with an RSA private key, and base64url. */
#ifndef HOARDFS_JWT_H
#define HOARDFS_JWT_H

#include <stddef.h>

#include "common/buf.h"

/* A loaded RSA private key (OpenSSL types stay inside jwt.c). Immutable once loaded, so one key
 * may sign from any number of threads at once. */
struct jwt_key;

/* The shortest RSA key jwt_key_from_pem() accepts, in bits. */
#define JWT_MIN_RSA_BITS 2048

/*
 * Appends the base64url encoding (RFC 4648 section 5, no '=' padding) of `len` bytes at `data` to
 * `b`. Returns 0 or a buf_append() error (-EMSGSIZE, -ENOMEM); on error `b` may hold part of it.
 */
int jwt_base64url_encode(struct buf *b, const void *data, size_t len);

/*
 * Appends the bytes that the base64url text `s` (`len` bytes, padding optional) encodes to `b`.
 * Returns 0, -EINVAL for a character outside the alphabet, a misplaced '=', an impossible length,
 * or non-zero trailing bits; or a buf_append() error.
 */
int jwt_base64url_decode(struct buf *b, const char *s, size_t len);

/*
 * Loads an RSA private key from PEM text (`len` bytes: PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE
 * KEY"; encrypted keys are refused, never prompted for). Returns 0 and a key the caller frees with
 * jwt_key_free(), -EINVAL for text that is not such a key, a key of another type, or one shorter
 * than JWT_MIN_RSA_BITS; -ENOMEM. The text is not kept.
 */
int jwt_key_from_pem(const char *pem, size_t len, struct jwt_key **out);

/* Frees a key (OpenSSL clears its private numbers). NULL is allowed. */
void jwt_key_free(struct jwt_key *key);

/*
 * Appends a compact JWT to `out`: base64url({"alg":"RS256","typ":"JWT"[,"kid":kid]}) "."
 * base64url(claims_json) "." base64url(RSASSA-PKCS1-v1_5 SHA-256 signature of the first two parts).
 * `claims_json` is used as given (the caller builds it, e.g. with json-c); `kid` may be NULL and
 * is JSON-escaped. Returns 0, -EINVAL (empty claims, or OpenSSL failed to sign), -ENOMEM,
 * -EMSGSIZE (out's limit); on error `out` is left as it was.
 */
int jwt_sign_rs256(const struct jwt_key *key, const char *kid, const char *claims_json,
		   struct buf *out);

#endif
