#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "key.h"
#include "sshkey.h"

#define SK_LEN 64 /* libsodium Ed25519 secret key: seed || pk */
#define AUTH_MAGIC "openssh-key-v1" /* sizeof includes the NUL we need */
#define PEM_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----\n"
#define PEM_END "-----END OPENSSH PRIVATE KEY-----"
#define PEM_COLS 70
#define PRIV_BLOCK 8 /* block size of cipher "none" */

struct np_sshkey {
	uint8_t pk[NP_SSHKEY_PK_LEN];
	uint8_t *sk; /* SK_LEN bytes, sodium_malloc */
};

void
np_sshkey_free(struct np_sshkey *k)
{
	if (k == NULL) {
		return;
	}
	sodium_free(k->sk);
	sodium_memzero(k, sizeof(*k));
	free(k);
}

static int
sshkey_alloc(struct np_sshkey **out)
{
	struct np_sshkey *k;

	*out = NULL;
	if (np_crypto_init() != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((k->sk = sodium_malloc(SK_LEN)) == NULL) {
		free(k);
		return NP_ERR_ALLOC;
	}
	*out = k;
	return NP_OK;
}

int
np_sshkey_generate(struct np_sshkey **out)
{
	struct np_sshkey *k;
	int r;

	if ((r = sshkey_alloc(&k)) != NP_OK) {
		return r;
	}
	if (crypto_sign_keypair(k->pk, k->sk) != 0) {
		np_sshkey_free(k);
		return NP_ERR_CRYPTO;
	}
	*out = k;
	return NP_OK;
}

int
np_sshkey_from_seed(const uint8_t seed[32], struct np_sshkey **out)
{
	struct np_sshkey *k;
	int r;

	if ((r = sshkey_alloc(&k)) != NP_OK) {
		return r;
	}
	if (crypto_sign_seed_keypair(k->pk, k->sk, seed) != 0) {
		np_sshkey_free(k);
		return NP_ERR_CRYPTO;
	}
	*out = k;
	return NP_OK;
}

const uint8_t *
np_sshkey_pk(const struct np_sshkey *k)
{
	return k->pk;
}

/* Printable ASCII only, capped. */
static int
comment_ok(const char *c)
{
	size_t i;

	if (c == NULL) {
		return 1;
	}
	for (i = 0; c[i] != '\0'; i++) {
		if (i >= NP_SSHKEY_COMMENT_MAX || c[i] < 0x20 || c[i] > 0x7e) {
			return 0;
		}
	}
	return 1;
}

int
np_sshkey_ed25519_blob(const uint8_t pk[NP_SSHKEY_PK_LEN], struct np_buf *b)
{
	int r;

	if ((r = np_buf_put_cstring(b, NP_SSHKEY_ED25519)) != NP_OK) {
		return r;
	}
	return np_buf_put_string(b, pk, NP_SSHKEY_PK_LEN);
}

int
np_sshkey_ed25519_b64(const uint8_t pk[NP_SSHKEY_PK_LEN], char *out,
		      size_t outlen)
{
	struct np_buf *b;
	int r;

	if ((b = np_buf_new(NP_SSHKEY_BLOB_LEN)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_sshkey_ed25519_blob(pk, b)) == NP_OK) {
		r = np_b64_encode(np_buf_ptr(b), np_buf_len(b), out, outlen);
	}
	np_buf_free(b);
	return r;
}

int
np_sshkey_ed25519_from_b64(const char *s, size_t len,
			   uint8_t pk[NP_SSHKEY_PK_LEN])
{
	char tmp[NP_SSHKEY_B64_LEN + 1];
	uint8_t blob[NP_SSHKEY_BLOB_LEN];
	char again[NP_SSHKEY_B64_LEN + 1];
	struct np_buf *b = NULL;
	const uint8_t *p;
	size_t n;
	int r;

	if (len != NP_SSHKEY_B64_LEN) {
		return NP_ERR_INVALID;
	}
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if ((r = np_b64_decode(tmp, blob, sizeof(blob), &n)) != NP_OK) {
		return r;
	}
	if (n != sizeof(blob)) {
		return NP_ERR_INVALID;
	}
	if ((b = np_buf_from(blob, n)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_buf_get_string_direct(b, &p, &n)) != NP_OK) {
		goto out;
	}
	if (n != strlen(NP_SSHKEY_ED25519) || memcmp(p, NP_SSHKEY_ED25519, n)) {
		r = NP_ERR_INVALID;
		goto out;
	}
	if ((r = np_buf_get_string_direct(b, &p, &n)) != NP_OK) {
		goto out;
	}
	if (n != NP_SSHKEY_PK_LEN || (r = np_buf_get_end(b)) != NP_OK) {
		r = NP_ERR_INVALID;
		goto out;
	}
	/* Canonical encoding only: the text must be what we would write. */
	if ((r = np_sshkey_ed25519_b64(p, again, sizeof(again))) != NP_OK) {
		goto out;
	}
	if (memcmp(again, tmp, len + 1) != 0) {
		r = NP_ERR_INVALID;
		goto out;
	}
	memcpy(pk, p, NP_SSHKEY_PK_LEN);
out:
	np_buf_free(b);
	return r;
}

int
np_sshkey_public_line(const struct np_sshkey *k, const char *comment,
		      struct np_buf *b)
{
	char b64[NP_SSHKEY_B64_LEN + 1];
	int r;

	if (!comment_ok(comment)) {
		return NP_ERR_INVALID;
	}
	if ((r = np_sshkey_ed25519_b64(k->pk, b64, sizeof(b64))) != NP_OK) {
		return r;
	}
	if (comment == NULL || *comment == '\0') {
		return np_buf_putf(b, "%s %s", NP_SSHKEY_ED25519, b64);
	}
	return np_buf_putf(b, "%s %s %s", NP_SSHKEY_ED25519, b64, comment);
}

int
np_sshkey_fingerprint(const uint8_t *blob, size_t len, char *out, size_t outlen)
{
	return np_fingerprint(blob, len, out, outlen);
}

/* The private section: check ints, key, comment, padding. */
static int
put_private_section(const struct np_sshkey *k, const char *comment,
		    struct np_buf *b)
{
	uint32_t check = randombytes_random();
	uint8_t pad = 1;
	int r;

	if ((r = np_buf_put_u32(b, check)) != NP_OK ||
	    (r = np_buf_put_u32(b, check)) != NP_OK ||
	    (r = np_buf_put_cstring(b, NP_SSHKEY_ED25519)) != NP_OK ||
	    (r = np_buf_put_string(b, k->pk, NP_SSHKEY_PK_LEN)) != NP_OK ||
	    (r = np_buf_put_string(b, k->sk, SK_LEN)) != NP_OK ||
	    (r = np_buf_put_cstring(b, comment == NULL ? "" : comment)) !=
		NP_OK) {
		return r;
	}
	while (np_buf_len(b) % PRIV_BLOCK != 0) {
		if ((r = np_buf_put_u8(b, pad++)) != NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

/* The whole binary key file, before base64. */
static int
put_private_blob(const struct np_sshkey *k, const char *comment,
		 struct np_buf *b)
{
	struct np_buf *priv = NULL, *pub = NULL;
	int r = NP_ERR_ALLOC;

	if ((priv = np_buf_new_secure(NP_SSHKEY_PRIV_MAX)) == NULL ||
	    (pub = np_buf_new(NP_SSHKEY_BLOB_LEN)) == NULL) {
		goto out;
	}
	if ((r = np_sshkey_ed25519_blob(k->pk, pub)) != NP_OK ||
	    (r = put_private_section(k, comment, priv)) != NP_OK) {
		goto out;
	}
	if ((r = np_buf_put(b, AUTH_MAGIC, sizeof(AUTH_MAGIC))) != NP_OK ||
	    (r = np_buf_put_cstring(b, "none")) != NP_OK ||
	    (r = np_buf_put_cstring(b, "none")) != NP_OK ||
	    (r = np_buf_put_string(b, NULL, 0)) != NP_OK ||
	    (r = np_buf_put_u32(b, 1)) != NP_OK ||
	    (r = np_buf_put_string(b, np_buf_ptr(pub), np_buf_len(pub))) !=
		NP_OK ||
	    (r = np_buf_put_string(b, np_buf_ptr(priv), np_buf_len(priv))) !=
		NP_OK) {
		goto out;
	}
out:
	np_buf_free(priv);
	np_buf_free(pub);
	return r;
}

/* Base64 of p, wrapped at PEM_COLS, each line ending in "\n". */
static int
put_wrapped_b64(const uint8_t *p, size_t n, struct np_buf *b)
{
	size_t elen, i, w;
	char *enc;
	int r = NP_OK;

	elen = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
	if ((enc = sodium_malloc(elen)) == NULL) {
		return NP_ERR_ALLOC;
	}
	sodium_bin2base64(enc, elen, p, n, sodium_base64_VARIANT_ORIGINAL);
	for (i = 0; enc[i] != '\0' && r == NP_OK; i += w) {
		w = strnlen(enc + i, PEM_COLS);
		if ((r = np_buf_put(b, enc + i, w)) == NP_OK) {
			r = np_buf_put_u8(b, '\n');
		}
	}
	sodium_free(enc);
	return r;
}

int
np_sshkey_private_pem(const struct np_sshkey *k, const char *comment,
		      struct np_buf *b)
{
	struct np_buf *raw;
	int r;

	if (!comment_ok(comment)) {
		return NP_ERR_INVALID;
	}
	if ((raw = np_buf_new_secure(NP_SSHKEY_PRIV_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = put_private_blob(k, comment, raw)) != NP_OK ||
	    (r = np_buf_put(b, PEM_BEGIN, strlen(PEM_BEGIN))) != NP_OK ||
	    (r = put_wrapped_b64(np_buf_ptr(raw), np_buf_len(raw), b)) !=
		NP_OK ||
	    (r = np_buf_putf(b, "%s\n", PEM_END)) != NP_OK) {
		goto out;
	}
out:
	np_buf_free(raw); /* secure: wiped */
	return r;
}

/* --- parsing a private key file --- */

/* Get a string and require it to equal s. */
static int
get_expect(struct np_buf *b, const char *s)
{
	const uint8_t *p;
	size_t n;
	int r;

	if ((r = np_buf_get_string_direct(b, &p, &n)) != NP_OK) {
		return r;
	}
	if (n != strlen(s) || memcmp(p, s, n) != 0) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

/*
 * Base64 characters and line ends only: libsodium 1.0.18's decoder takes
 * bytes >= 0x80 for letters, so check the alphabet first.
 */
static int
pem_alphabet_ok(const char *s, size_t len)
{
	size_t i, start = 0;

	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '\r' || s[i] == '\n') {
			if (!np_b64_alphabet_ok(s + start, i - start, 0)) {
				return 0;
			}
			start = i + 1;
		}
	}
	return 1;
}

/* Strip the PEM armour and decode the body into a new secure buffer. */
static int
pem_decode(const uint8_t *data, size_t len, struct np_buf **out)
{
	const size_t blen = strlen(PEM_BEGIN), elen = strlen(PEM_END);
	struct np_buf *b = NULL;
	const char *body, *end = NULL;
	uint8_t *dst;
	size_t blen_body, n = 0;
	int r;

	*out = NULL;
	if (len > NP_SSHKEY_PRIV_MAX) {
		return NP_ERR_TOO_BIG;
	}
	/* Optional final newline after the END line. */
	if (len > 0 && data[len - 1] == '\n') {
		len--;
	}
	if (len < blen + elen || memcmp(data, PEM_BEGIN, blen) != 0 ||
	    memcmp(data + len - elen, PEM_END, elen) != 0) {
		return NP_ERR_INVALID;
	}
	body = (const char *)data + blen;
	blen_body = len - blen - elen;
	if (blen_body == 0 || body[blen_body - 1] != '\n' ||
	    !pem_alphabet_ok(body, blen_body)) {
		return NP_ERR_INVALID;
	}
	if ((b = np_buf_new_secure(NP_SSHKEY_PRIV_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_buf_reserve(b, NP_SSHKEY_PRIV_MAX, &dst)) != NP_OK) {
		goto out;
	}
	if (sodium_base642bin(dst, NP_SSHKEY_PRIV_MAX, body, blen_body, "\r\n",
			      &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != body + blen_body) {
		r = NP_ERR_INVALID;
		goto out;
	}
	if ((r = np_buf_unreserve(b, NP_SSHKEY_PRIV_MAX - n)) != NP_OK) {
		goto out;
	}
	*out = b;
	b = NULL;
out:
	np_buf_free(b);
	return r;
}

/* The outer structure up to (and returning) the private section. */
static int
parse_outer(struct np_buf *b, uint8_t pk[NP_SSHKEY_PK_LEN],
	    const uint8_t **priv, size_t *privlen)
{
	uint8_t magic[sizeof(AUTH_MAGIC)];
	const uint8_t *p;
	size_t n;
	uint32_t nkeys;
	int r;

	if ((r = np_buf_get(b, magic, sizeof(magic))) != NP_OK) {
		return r;
	}
	if (memcmp(magic, AUTH_MAGIC, sizeof(magic)) != 0) {
		return NP_ERR_INVALID;
	}
	if ((r = get_expect(b, "none")) != NP_OK ||
	    (r = get_expect(b, "none")) != NP_OK ||
	    (r = get_expect(b, "")) != NP_OK ||
	    (r = np_buf_get_u32(b, &nkeys)) != NP_OK) {
		return r;
	}
	if (nkeys != 1) {
		return NP_ERR_INVALID;
	}
	if ((r = np_buf_get_string_direct(b, &p, &n)) != NP_OK) {
		return r;
	}
	if ((r = np_sshkey_parse_blob_ed25519(p, n, pk)) != NP_OK) {
		return r;
	}
	if ((r = np_buf_get_string_direct(b, priv, privlen)) != NP_OK) {
		return r;
	}
	return np_buf_get_end(b);
}

/* The private section: check ints, key, comment, padding 1,2,3... */
static int
parse_private_section(const uint8_t *p, size_t len,
		      const uint8_t pk[NP_SSHKEY_PK_LEN], struct np_sshkey *k)
{
	struct np_buf *b;
	const uint8_t *q;
	size_t n, i;
	uint32_t c1, c2;
	uint8_t pad;
	int r;

	if (len % PRIV_BLOCK != 0) {
		return NP_ERR_INVALID;
	}
	if ((b = np_buf_new_secure(len == 0 ? 1 : len)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_buf_put(b, p, len)) != NP_OK ||
	    (r = np_buf_get_u32(b, &c1)) != NP_OK ||
	    (r = np_buf_get_u32(b, &c2)) != NP_OK) {
		goto out;
	}
	if (c1 != c2) {
		r = NP_ERR_INVALID;
		goto out;
	}
	if ((r = get_expect(b, NP_SSHKEY_ED25519)) != NP_OK ||
	    (r = np_buf_get_string_direct(b, &q, &n)) != NP_OK) {
		goto out;
	}
	if (n != NP_SSHKEY_PK_LEN || memcmp(q, pk, n) != 0) {
		r = NP_ERR_INVALID;
		goto out;
	}
	if ((r = np_buf_get_string_direct(b, &q, &n)) != NP_OK) {
		goto out;
	}
	/* sk = seed || pk: the pk half and the one derived must agree. */
	if (n != SK_LEN || memcmp(q + 32, pk, NP_SSHKEY_PK_LEN) != 0) {
		r = NP_ERR_INVALID;
		goto out;
	}
	if (crypto_sign_seed_keypair(k->pk, k->sk, q) != 0 ||
	    memcmp(k->pk, pk, NP_SSHKEY_PK_LEN) != 0) {
		r = NP_ERR_CRYPTO;
		goto out;
	}
	if ((r = np_buf_get_string_direct(b, &q, &n)) != NP_OK) {
		goto out; /* comment: ignored */
	}
	for (i = 1; np_buf_len(b) > 0; i++) {
		if ((r = np_buf_get_u8(b, &pad)) != NP_OK) {
			goto out;
		}
		if (pad != (uint8_t)i || i >= PRIV_BLOCK) {
			r = NP_ERR_INVALID;
			goto out;
		}
	}
	r = NP_OK;
out:
	np_buf_free(b);
	return r;
}

int
np_sshkey_parse_private(const uint8_t *data, size_t len, struct np_sshkey **out)
{
	struct np_buf *raw = NULL;
	struct np_sshkey *k = NULL;
	uint8_t pk[NP_SSHKEY_PK_LEN];
	const uint8_t *priv;
	size_t privlen;
	int r;

	*out = NULL;
	if ((r = np_crypto_init()) != NP_OK ||
	    (r = pem_decode(data, len, &raw)) != NP_OK ||
	    (r = parse_outer(raw, pk, &priv, &privlen)) != NP_OK ||
	    (r = sshkey_alloc(&k)) != NP_OK ||
	    (r = parse_private_section(priv, privlen, pk, k)) != NP_OK) {
		goto out;
	}
	*out = k;
	k = NULL;
out:
	np_sshkey_free(k);
	np_buf_free(raw);
	return r;
}

/* --- public key lines --- */

static int
get_bytes(struct np_buf *b, const uint8_t **p, size_t *n, size_t min,
	  size_t max)
{
	int r;

	if ((r = np_buf_get_string_direct(b, p, n)) != NP_OK) {
		return r;
	}
	return *n < min || *n > max ? NP_ERR_INVALID : NP_OK;
}

static int
check_ed25519(struct np_buf *b)
{
	const uint8_t *p;
	size_t n;

	return get_bytes(b, &p, &n, 32, 32);
}

/* mpint e, mpint n: at most 16384-bit moduli, at least 1024. */
static int
check_rsa(struct np_buf *b)
{
	const uint8_t *p;
	size_t n;
	int r;

	if ((r = get_bytes(b, &p, &n, 1, 64)) != NP_OK) {
		return r;
	}
	return get_bytes(b, &p, &n, 128, 16384 / 8 + 1);
}

static int
check_ecdsa_curve(struct np_buf *b, const char *curve, size_t qlen)
{
	const uint8_t *p;
	size_t n;
	int r;

	if ((r = get_expect(b, curve)) != NP_OK ||
	    (r = get_bytes(b, &p, &n, qlen, qlen)) != NP_OK) {
		return r;
	}
	return p[0] == 0x04 ? NP_OK : NP_ERR_INVALID;
}

static int
check_p256(struct np_buf *b)
{
	return check_ecdsa_curve(b, "nistp256", 65);
}

static int
check_p384(struct np_buf *b)
{
	return check_ecdsa_curve(b, "nistp384", 97);
}

static int
check_p521(struct np_buf *b)
{
	return check_ecdsa_curve(b, "nistp521", 133);
}

static int
check_sk_app(struct np_buf *b)
{
	const uint8_t *p;
	size_t n;

	return get_bytes(b, &p, &n, 1, 256);
}

static int
check_sk_ed25519(struct np_buf *b)
{
	int r;

	if ((r = check_ed25519(b)) != NP_OK) {
		return r;
	}
	return check_sk_app(b);
}

static int
check_sk_p256(struct np_buf *b)
{
	int r;

	if ((r = check_p256(b)) != NP_OK) {
		return r;
	}
	return check_sk_app(b);
}

static const struct {
	const char *type;
	int (*check)(struct np_buf *);
} pubtypes[] = {
    {"ssh-ed25519", check_ed25519},
    {"ecdsa-sha2-nistp256", check_p256},
    {"ecdsa-sha2-nistp384", check_p384},
    {"ecdsa-sha2-nistp521", check_p521},
    {"ssh-rsa", check_rsa},
    {"sk-ssh-ed25519@openssh.com", check_sk_ed25519},
    {"sk-ecdsa-sha2-nistp256@openssh.com", check_sk_p256},
};

/* The blob's type string must be type, and its body must fit the type. */
static int
check_blob(const char *type, const uint8_t *blob, size_t len)
{
	struct np_buf *b;
	size_t i;
	int r = NP_ERR_INVALID;

	for (i = 0; i < sizeof(pubtypes) / sizeof(pubtypes[0]); i++) {
		if (strcmp(type, pubtypes[i].type) == 0) {
			break;
		}
	}
	if (i == sizeof(pubtypes) / sizeof(pubtypes[0])) {
		return NP_ERR_INVALID;
	}
	if ((b = np_buf_from(blob, len)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = get_expect(b, type)) == NP_OK &&
	    (r = pubtypes[i].check(b)) == NP_OK) {
		r = np_buf_get_end(b);
	}
	np_buf_free(b);
	return r == NP_ERR_TRUNCATED ? NP_ERR_INVALID : r;
}

int
np_sshkey_parse_blob_ed25519(const uint8_t *blob, size_t len,
			     uint8_t pk[NP_SSHKEY_PK_LEN])
{
	int r;

	if (len != NP_SSHKEY_BLOB_LEN) {
		return NP_ERR_INVALID;
	}
	if ((r = check_blob(NP_SSHKEY_ED25519, blob, len)) != NP_OK) {
		return r;
	}
	memcpy(pk, blob + NP_SSHKEY_BLOB_LEN - NP_SSHKEY_PK_LEN,
	       NP_SSHKEY_PK_LEN);
	return NP_OK;
}

void
np_sshpub_free(struct np_sshpub *p)
{
	if (p == NULL) {
		return;
	}
	free(p->type);
	free(p->blob);
	free(p->comment);
	free(p);
}

static int
is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Next field [*s, *e) after skipping blanks from *pos. */
static void
next_field(const uint8_t *d, size_t len, size_t *pos, size_t *s, size_t *e)
{
	size_t i = *pos;

	while (i < len && is_blank(d[i])) {
		i++;
	}
	*s = i;
	while (i < len && !is_blank(d[i])) {
		i++;
	}
	*e = i;
	*pos = i;
}

static char *
dup_text(const uint8_t *p, size_t n)
{
	char *s;

	if ((s = malloc(n + 1)) == NULL) {
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Strip one line terminator; refuse control bytes (and NUL) elsewhere. */
static int
line_body(const uint8_t *d, size_t *len)
{
	size_t i, n = *len;

	if (n > NP_SSHPUB_LINE_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (n > 0 && d[n - 1] == '\n') {
		n--;
		if (n > 0 && d[n - 1] == '\r') {
			n--;
		}
	}
	for (i = 0; i < n; i++) {
		if ((d[i] < 0x20 && d[i] != '\t') || d[i] == 0x7f) {
			return NP_ERR_INVALID;
		}
	}
	*len = n;
	return NP_OK;
}

static int
decode_blob(const uint8_t *s, size_t n, struct np_sshpub *p)
{
	size_t max = n / 4 * 3 + 3, got = 0;
	const char *end = NULL;

	/* libsodium 1.0.18 takes bytes >= 0x80 for letters: one encoding. */
	if (n == 0 || max > NP_SSHPUB_BLOB_MAX ||
	    !np_b64_alphabet_ok((const char *)s, n, 0)) {
		return NP_ERR_INVALID;
	}
	if ((p->blob = malloc(max)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if (sodium_base642bin(p->blob, max, (const char *)s, n, NULL, &got,
			      &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != (const char *)s + n) {
		return NP_ERR_INVALID;
	}
	p->bloblen = got;
	return NP_OK;
}

int
np_sshpub_parse(const uint8_t *data, size_t len, struct np_sshpub **out)
{
	struct np_sshpub *p = NULL;
	size_t pos = 0, ts, te, bs, be;
	int r;

	*out = NULL;
	if ((r = line_body(data, &len)) != NP_OK) {
		return r;
	}
	if ((r = np_crypto_init()) != NP_OK) {
		return r;
	}
	next_field(data, len, &pos, &ts, &te);
	next_field(data, len, &pos, &bs, &be);
	while (pos < len && is_blank(data[pos])) {
		pos++;
	}
	if (te == ts || te - ts > NP_SSHPUB_TYPE_MAX || be == bs) {
		return NP_ERR_INVALID;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->type = dup_text(data + ts, te - ts)) == NULL ||
	    (p->comment = dup_text(data + pos, len - pos)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = decode_blob(data + bs, be - bs, p)) != NP_OK ||
	    (r = check_blob(p->type, p->blob, p->bloblen)) != NP_OK) {
		goto out;
	}
	*out = p;
	p = NULL;
out:
	np_sshpub_free(p);
	return r;
}

int
np_sshpub_load(const char *path, struct np_sshpub **out)
{
	struct np_buf *b = NULL;
	int r;

	*out = NULL;
	if ((r = np_file_read_checked(path, NP_SSHPUB_LINE_MAX, 022, 0, &b)) !=
	    NP_OK) {
		return r;
	}
	r = np_sshpub_parse(np_buf_ptr(b), np_buf_len(b), out);
	np_buf_free(b);
	return r;
}

int
np_sshpub_format(const struct np_sshpub *p, struct np_buf *b)
{
	size_t elen;
	char *enc;
	int r;

	if (p->bloblen > NP_SSHPUB_BLOB_MAX) {
		return NP_ERR_TOO_BIG;
	}
	elen = sodium_base64_ENCODED_LEN(p->bloblen,
					 sodium_base64_VARIANT_ORIGINAL);
	if ((enc = malloc(elen)) == NULL) {
		return NP_ERR_ALLOC;
	}
	sodium_bin2base64(enc, elen, p->blob, p->bloblen,
			  sodium_base64_VARIANT_ORIGINAL);
	r = np_buf_putf(b, "%s %s", p->type, enc);
	free(enc);
	return r;
}
