/* Unit tests for jwt: base64url vectors, RS256 signatures checked with the public half of a key
 * generated here, header/claims decoding, and keys that must be refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/jwt.h"

/* One 2048-bit key for the whole file: generating it is the slow part. */
struct fixture {
	EVP_PKEY *pkey;
	char *pem; /* PKCS#8 private key */
	size_t pem_len;
};

static char *bio_to_string(BIO *bio, size_t *len)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	char *copy;

	if (n <= 0)
		return NULL;
	copy = malloc((size_t)n + 1);
	if (!copy)
		return NULL;
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*len = (size_t)n;
	return copy;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	BIO *bio;

	if (!f)
		return -1;
	f->pkey = EVP_RSA_gen(2048);
	if (!f->pkey)
		return -1;
	bio = BIO_new(BIO_s_mem());
	if (!bio || PEM_write_bio_PrivateKey(bio, f->pkey, NULL, NULL, 0, NULL, NULL) != 1)
		return -1;
	f->pem = bio_to_string(bio, &f->pem_len);
	BIO_free(bio);
	if (!f->pem)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	EVP_PKEY_free(f->pkey);
	free(f->pem);
	free(f);
	return 0;
}

static void check_encode(const char *in, size_t len, const char *want)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(jwt_base64url_encode(&b, in, len), 0);
	assert_string_equal(buf_cstr(&b), want);
	buf_free(&b);
}

static void check_decode(const char *in, const char *want, size_t want_len)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(jwt_base64url_decode(&b, in, strlen(in)), 0);
	assert_int_equal(b.len, want_len);
	if (want_len)
		assert_memory_equal(b.data, want, want_len);
	buf_free(&b);
}

static void check_decode_fails(const char *in)
{
	struct buf b;

	buf_init(&b, 1024);
	assert_int_equal(jwt_base64url_decode(&b, in, strlen(in)), -EINVAL);
	buf_free(&b);
}

/* RFC 4648 section 10 vectors, without padding, plus the two url-safe characters. */
static void test_base64url_vectors(void **state)
{
	(void)state;
	check_encode("", 0, "");
	check_encode("f", 1, "Zg");
	check_encode("fo", 2, "Zm8");
	check_encode("foo", 3, "Zm9v");
	check_encode("foob", 4, "Zm9vYg");
	check_encode("fooba", 5, "Zm9vYmE");
	check_encode("foobar", 6, "Zm9vYmFy");
	check_encode("\xfb\xff\xbf", 3, "-_-_");
	check_encode("\x00\x00", 2, "AAA");

	check_decode("", "", 0);
	check_decode("Zg", "f", 1);
	check_decode("Zg==", "f", 1);
	check_decode("Zm8", "fo", 2);
	check_decode("Zm8=", "fo", 2);
	check_decode("Zm9vYmFy", "foobar", 6);
	check_decode("-_-_", "\xfb\xff\xbf", 3);
}

static void test_base64url_rejects(void **state)
{
	(void)state;
	check_decode_fails("Z");      /* 6 bits cannot make a byte */
	check_decode_fails("Zm9vY");  /* same, after a full quantum */
	check_decode_fails("Zh");     /* non-zero trailing bits */
	check_decode_fails("Zm9=");   /* non-zero trailing bits, padded */
	check_decode_fails("Zg=");    /* padding that does not complete a quantum */
	check_decode_fails("Z===");   /* too much padding */
	check_decode_fails("Zm+v");   /* standard alphabet, not url-safe */
	check_decode_fails("Zm/v");   /* standard alphabet, not url-safe */
	check_decode_fails("Zm9v\n"); /* whitespace */
	check_decode_fails("Zm=9v");  /* padding in the middle */
	check_decode_fails("=");
}

static void test_base64url_bounded(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 4);
	assert_int_equal(jwt_base64url_encode(&b, "foobar", 6), -EMSGSIZE);
	buf_free(&b);
	buf_init(&b, 5);
	assert_int_equal(jwt_base64url_decode(&b, "Zm9vYmFy", 8), -EMSGSIZE);
	buf_free(&b);
}

/* Splits a compact JWT into its three parts (pointers into `jwt`, which is modified). */
static void split_jwt(char *jwt, char **h, char **c, char **s)
{
	char *dot1 = strchr(jwt, '.');
	char *dot2;

	assert_non_null(dot1);
	dot2 = strchr(dot1 + 1, '.');
	assert_non_null(dot2);
	assert_null(strchr(dot2 + 1, '.'));
	*dot1 = '\0';
	*dot2 = '\0';
	*h = jwt;
	*c = dot1 + 1;
	*s = dot2 + 1;
}

static struct json_object *decode_json_part(const char *part)
{
	struct json_object *obj;
	struct buf b;

	buf_init(&b, 4096);
	assert_int_equal(jwt_base64url_decode(&b, part, strlen(part)), 0);
	obj = json_tokener_parse(buf_cstr(&b));
	assert_non_null(obj);
	buf_free(&b);
	return obj;
}

static const char *get_str(struct json_object *obj, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, name, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Verifies the RS256 signature of "h.c" with the public half of `pkey`. Returns 1 if valid. */
static int verify_rs256(EVP_PKEY *pkey, const char *h, const char *c, const char *sig_b64)
{
	struct buf signed_part, sig;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY *pub = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	int der_len, ok;

	/* Use only the public half, as a token endpoint would. */
	der_len = i2d_PUBKEY(pkey, &der);
	assert_true(der_len > 0);
	p = der;
	pub = d2i_PUBKEY(NULL, &p, der_len);
	assert_non_null(pub);

	buf_init(&signed_part, 8192);
	buf_init(&sig, 4096);
	assert_int_equal(buf_printf(&signed_part, "%s.%s", h, c), 0);
	assert_int_equal(jwt_base64url_decode(&sig, sig_b64, strlen(sig_b64)), 0);
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	ok = EVP_DigestVerify(md, (unsigned char *)sig.data, sig.len,
			      (unsigned char *)signed_part.data, signed_part.len);
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pub);
	OPENSSL_free(der);
	buf_free(&signed_part);
	buf_free(&sig);
	return ok;
}

static void test_sign_and_verify(void **state)
{
	struct fixture *f = *state;
	const char *claims = "{\"iss\":\"sa@p.iam.gserviceaccount.com\",\"scope\":\"s\","
			     "\"aud\":\"http://127.0.0.1:1/token\",\"iat\":1700000000,"
			     "\"exp\":1700003600}";
	struct json_object *hdr, *cl;
	struct jwt_key *key;
	char *h, *c, *s, *copy;
	struct buf out;

	assert_int_equal(jwt_key_from_pem(f->pem, f->pem_len, &key), 0);
	buf_init(&out, 16384);
	assert_int_equal(jwt_sign_rs256(key, "0123abcd", claims, &out), 0);
	/* Only the url-safe alphabet and two dots. */
	assert_int_equal(strspn(buf_cstr(&out),
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				"0123456789-_."),
			 out.len);

	copy = strdup(buf_cstr(&out));
	assert_non_null(copy);
	split_jwt(copy, &h, &c, &s);
	hdr = decode_json_part(h);
	assert_string_equal(get_str(hdr, "alg"), "RS256");
	assert_string_equal(get_str(hdr, "typ"), "JWT");
	assert_string_equal(get_str(hdr, "kid"), "0123abcd");
	cl = decode_json_part(c);
	assert_string_equal(get_str(cl, "iss"), "sa@p.iam.gserviceaccount.com");
	assert_string_equal(get_str(cl, "aud"), "http://127.0.0.1:1/token");
	{
		struct buf raw;

		buf_init(&raw, 4096);
		assert_int_equal(jwt_base64url_decode(&raw, c, strlen(c)), 0);
		assert_string_equal(buf_cstr(&raw), claims); /* claims are used exactly as given */
		buf_free(&raw);
	}
	/* 2048-bit key: 256-byte signature, 342 base64url characters. */
	assert_int_equal(strlen(s), 342);
	assert_int_equal(verify_rs256(f->pkey, h, c, s), 1);

	json_object_put(hdr);
	json_object_put(cl);
	free(copy);
	buf_free(&out);
	jwt_key_free(key);
}

/* A changed claim or a signature from another key must not verify: proves the check can fail. */
static void test_tampered_fails(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *other = EVP_RSA_gen(2048);
	struct jwt_key *key;
	char *h, *c, *s, *copy;
	struct buf out, forged;

	assert_non_null(other);
	assert_int_equal(jwt_key_from_pem(f->pem, f->pem_len, &key), 0);
	buf_init(&out, 16384);
	assert_int_equal(jwt_sign_rs256(key, NULL, "{\"a\":1}", &out), 0);
	copy = strdup(buf_cstr(&out));
	assert_non_null(copy);
	split_jwt(copy, &h, &c, &s);
	{
		struct json_object *hdr = decode_json_part(h);
		struct json_object *v;

		assert_false(json_object_object_get_ex(hdr, "kid", &v));
		json_object_put(hdr);
	}
	assert_int_equal(verify_rs256(f->pkey, h, c, s), 1);
	assert_int_not_equal(verify_rs256(other, h, c, s), 1);

	buf_init(&forged, 1024);
	assert_int_equal(jwt_base64url_encode(&forged, "{\"a\":2}", 7), 0);
	assert_int_not_equal(verify_rs256(f->pkey, h, buf_cstr(&forged), s), 1);

	buf_free(&forged);
	free(copy);
	buf_free(&out);
	jwt_key_free(key);
	EVP_PKEY_free(other);
}

static void test_kid_escaped(void **state)
{
	struct fixture *f = *state;
	struct json_object *hdr;
	struct jwt_key *key;
	char *h, *c, *s, *copy;
	struct buf out;

	assert_int_equal(jwt_key_from_pem(f->pem, f->pem_len, &key), 0);
	buf_init(&out, 16384);
	assert_int_equal(jwt_sign_rs256(key, "a\"b\\c", "{}", &out), 0);
	copy = strdup(buf_cstr(&out));
	assert_non_null(copy);
	split_jwt(copy, &h, &c, &s);
	hdr = decode_json_part(h);
	assert_string_equal(get_str(hdr, "kid"), "a\"b\\c");
	json_object_put(hdr);
	free(copy);
	buf_free(&out);
	jwt_key_free(key);
}

/* A full output buffer leaves it unchanged. */
static void test_sign_bounded(void **state)
{
	struct fixture *f = *state;
	struct jwt_key *key;
	struct buf out;

	assert_int_equal(jwt_key_from_pem(f->pem, f->pem_len, &key), 0);
	buf_init(&out, 200);
	assert_int_equal(buf_puts(&out, "keep"), 0);
	assert_int_equal(jwt_sign_rs256(key, "k", "{\"x\":1}", &out), -EMSGSIZE);
	assert_string_equal(buf_cstr(&out), "keep");
	assert_int_equal(jwt_sign_rs256(key, "k", "", &out), -EINVAL);
	assert_int_equal(jwt_sign_rs256(NULL, "k", "{}", &out), -EINVAL);
	buf_free(&out);
	jwt_key_free(key);
}

/* PKCS#1 ("BEGIN RSA PRIVATE KEY") keys, as older tools write them, load too. */
static void test_pkcs1_pem(void **state)
{
	struct fixture *f = *state;
	struct jwt_key *key;
	struct buf out;
	size_t len = 0;
	char *pem;
	BIO *bio = BIO_new(BIO_s_mem());

	assert_non_null(bio);
	assert_int_equal(
		PEM_write_bio_PrivateKey_traditional(bio, f->pkey, NULL, NULL, 0, NULL, NULL), 1);
	pem = bio_to_string(bio, &len);
	BIO_free(bio);
	assert_non_null(pem);
	assert_non_null(strstr(pem, "BEGIN RSA PRIVATE KEY"));
	assert_int_equal(jwt_key_from_pem(pem, len, &key), 0);
	buf_init(&out, 16384);
	assert_int_equal(jwt_sign_rs256(key, NULL, "{}", &out), 0);
	buf_free(&out);
	jwt_key_free(key);
	free(pem);
}

static void check_bad_pem(const char *pem, size_t len)
{
	struct jwt_key *key = (struct jwt_key *)1;

	assert_int_equal(jwt_key_from_pem(pem, len, &key), -EINVAL);
	assert_null(key);
	assert_int_equal(ERR_peek_error(), 0); /* no OpenSSL errors left behind */
}

static void test_bad_pem(void **state)
{
	struct fixture *f = *state;
	const char *junk =
		"-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n-----END PRIVATE KEY-----\n";
	char *truncated;
	size_t len = 0;
	BIO *bio;
	char *pem;

	check_bad_pem("", 0);
	check_bad_pem(NULL, 10);
	check_bad_pem("hello", 5);
	check_bad_pem(junk, strlen(junk));

	/* Truncated in the middle of the base64. */
	truncated = strndup(f->pem, f->pem_len / 2);
	assert_non_null(truncated);
	check_bad_pem(truncated, strlen(truncated));
	free(truncated);

	/* The public half is not a private key. */
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PUBKEY(bio, f->pkey), 1);
	pem = bio_to_string(bio, &len);
	BIO_free(bio);
	check_bad_pem(pem, len);
	free(pem);

	/* An encrypted key fails without prompting for a passphrase. */
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(
		PEM_write_bio_PKCS8PrivateKey(bio, f->pkey, EVP_aes_128_cbc(), "pw", 2, NULL, NULL),
		1);
	pem = bio_to_string(bio, &len);
	BIO_free(bio);
	assert_non_null(strstr(pem, "ENCRYPTED"));
	check_bad_pem(pem, len);
	free(pem);
}

static void test_wrong_key_types(void **state)
{
	EVP_PKEY *small = EVP_RSA_gen(1024);
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	size_t len = 0;
	char *pem;
	BIO *bio;

	(void)state;
	assert_non_null(small);
	assert_non_null(ec);

	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(bio, small, NULL, NULL, 0, NULL, NULL), 1);
	pem = bio_to_string(bio, &len);
	BIO_free(bio);
	check_bad_pem(pem, len); /* too short for RS256 */
	free(pem);

	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(bio, ec, NULL, NULL, 0, NULL, NULL), 1);
	pem = bio_to_string(bio, &len);
	BIO_free(bio);
	check_bad_pem(pem, len); /* not RSA */
	free(pem);

	EVP_PKEY_free(small);
	EVP_PKEY_free(ec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64url_vectors), cmocka_unit_test(test_base64url_rejects),
		cmocka_unit_test(test_base64url_bounded), cmocka_unit_test(test_sign_and_verify),
		cmocka_unit_test(test_tampered_fails),	  cmocka_unit_test(test_kid_escaped),
		cmocka_unit_test(test_sign_bounded),	  cmocka_unit_test(test_pkcs1_pem),
		cmocka_unit_test(test_bad_pem),		  cmocka_unit_test(test_wrong_key_types),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
