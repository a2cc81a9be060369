/* jwt: RS256 JSON Web Tokens and base64url. */
#include "common/jwt.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

struct jwt_key {
	EVP_PKEY *pkey;
};

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int jwt_base64url_encode(struct buf *b, const void *data, size_t len)
{
	const unsigned char *p = data;
	char quad[4];
	size_t i;
	int rc;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		quad[0] = b64url_alphabet[(v >> 18) & 63];
		quad[1] = b64url_alphabet[(v >> 12) & 63];
		quad[2] = b64url_alphabet[(v >> 6) & 63];
		quad[3] = b64url_alphabet[v & 63];
		rc = buf_append(b, quad, 4);
		if (rc)
			return rc;
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		quad[0] = b64url_alphabet[(v >> 18) & 63];
		quad[1] = b64url_alphabet[(v >> 12) & 63];
		return buf_append(b, quad, 2);
	}
	if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		quad[0] = b64url_alphabet[(v >> 18) & 63];
		quad[1] = b64url_alphabet[(v >> 12) & 63];
		quad[2] = b64url_alphabet[(v >> 6) & 63];
		return buf_append(b, quad, 3);
	}
	return 0;
}

/* The 6-bit value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int jwt_base64url_decode(struct buf *b, const char *s, size_t len)
{
	unsigned char out[3];
	uint32_t acc = 0;
	size_t n = len, i;
	int bits = 0, rc;

	/* Padding is optional, but if present it must complete the last quantum. */
	if (n > 0 && s[n - 1] == '=') {
		size_t pad = 1;

		if (n > 1 && s[n - 2] == '=')
			pad = 2;
		if (n % 4 != 0)
			return -EINVAL;
		n -= pad;
	}
	if (n % 4 == 1)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		int v = b64url_value((unsigned char)s[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits == 24) {
			out[0] = (unsigned char)(acc >> 16);
			out[1] = (unsigned char)(acc >> 8);
			out[2] = (unsigned char)acc;
			rc = buf_append(b, out, 3);
			if (rc)
				return rc;
			acc = 0;
			bits = 0;
		}
	}
	if (bits == 12) {
		if (acc & 0xf)
			return -EINVAL;
		out[0] = (unsigned char)(acc >> 4);
		return buf_append(b, out, 1);
	}
	if (bits == 18) {
		if (acc & 0x3)
			return -EINVAL;
		out[0] = (unsigned char)(acc >> 10);
		out[1] = (unsigned char)(acc >> 2);
		return buf_append(b, out, 2);
	}
	return 0;
}

/* Refuses to prompt for a passphrase: an encrypted key fails to load instead. */
static int pem_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

int jwt_key_from_pem(const char *pem, size_t len, struct jwt_key **out)
{
	struct jwt_key *key = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio;
	int rc = -EINVAL;

	*out = NULL;
	if (!pem || len == 0 || len > INT_MAX)
		return -EINVAL;
	bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio)
		return -ENOMEM;
	pkey = PEM_read_bio_PrivateKey(bio, NULL, pem_no_passphrase, NULL);
	if (!pkey)
		goto out_free_bio;
	if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA ||
	    EVP_PKEY_get_bits(pkey) < JWT_MIN_RSA_BITS)
		goto out_free_pkey;
	key = calloc(1, sizeof(*key));
	if (!key) {
		rc = -ENOMEM;
		goto out_free_pkey;
	}
	key->pkey = pkey;
	*out = key;
	BIO_free(bio);
	return 0;

out_free_pkey:
	EVP_PKEY_free(pkey);
out_free_bio:
	BIO_free(bio);
	/* OpenSSL's error queue is per thread: leave nothing behind for other code to trip on. */
	ERR_clear_error();
	return rc;
}

void jwt_key_free(struct jwt_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

/* Adds obj[name] = value. Returns 0 or -ENOMEM. */
static int add_string(struct json_object *obj, const char *name, const char *value)
{
	struct json_object *v = json_object_new_string(value);

	if (!v)
		return -ENOMEM;
	if (json_object_object_add(obj, name, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* Appends base64url({"alg":"RS256","typ":"JWT"[,"kid":kid]}) to b. */
static int append_header(struct buf *b, const char *kid)
{
	struct json_object *hdr = json_object_new_object();
	const char *text;
	int rc = -ENOMEM;

	if (!hdr)
		return -ENOMEM;
	if (add_string(hdr, "alg", "RS256") || add_string(hdr, "typ", "JWT") ||
	    (kid && add_string(hdr, "kid", kid)))
		goto out_put;
	text = json_object_to_json_string_ext(hdr, JSON_C_TO_STRING_PLAIN |
							   JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		goto out_put;
	rc = jwt_base64url_encode(b, text, strlen(text));
out_put:
	json_object_put(hdr);
	return rc;
}

/* Signs `len` bytes with RSASSA-PKCS1-v1_5 over SHA-256 and appends the signature in base64url. */
static int append_signature(struct buf *b, EVP_PKEY *pkey, const void *data, size_t len)
{
	unsigned char *sig = NULL;
	size_t siglen = 0;
	EVP_MD_CTX *md;
	int rc = -EINVAL;

	md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1)
		goto out_free_md;
	if (EVP_DigestSign(md, NULL, &siglen, data, len) != 1 || siglen == 0)
		goto out_free_md;
	sig = malloc(siglen);
	if (!sig) {
		rc = -ENOMEM;
		goto out_free_md;
	}
	if (EVP_DigestSign(md, sig, &siglen, data, len) != 1)
		goto out_free_sig;
	rc = jwt_base64url_encode(b, sig, siglen);
out_free_sig:
	free(sig);
out_free_md:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

int jwt_sign_rs256(const struct jwt_key *key, const char *kid, const char *claims_json,
		   struct buf *out)
{
	size_t start = out->len;
	int rc;

	if (!key || !claims_json || !*claims_json)
		return -EINVAL;
	rc = append_header(out, kid);
	if (!rc)
		rc = buf_append(out, ".", 1);
	if (!rc)
		rc = jwt_base64url_encode(out, claims_json, strlen(claims_json));
	if (!rc)
		rc = buf_append(out, ".", 1);
	if (!rc)
		rc = append_signature(out, key->pkey, out->data + start, out->len - start - 1);
	if (rc && out->data) {
		out->len = start;
		out->data[start] = '\0';
	}
	return rc;
}
