/*
 * Identity keys (Ed25519, libsodium), their key file, base64 helpers,
 * fingerprints, the protocol's signed messages and careful file I/O.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "err.h"
#include "ident.h"
#include "key.h"
#include "log.h"

#define KEY_MAGIC "noports-identity-key-v1"
#define KEY_NAME_PFX "name "
#define KEY_SECRET_PFX "secret "
#define ED_SK_LEN crypto_sign_SECRETKEYBYTES /* 64 */
#define X_SK_LEN crypto_box_SECRETKEYBYTES   /* 32 */
#define SECRET_B64_LEN 88		     /* base64 of 64 bytes */

struct np_key {
	char name[NP_IDENT_MAX + 1];
	uint8_t pk[NP_PK_LEN];
	uint8_t *sec; /* sodium_malloc: Ed25519 sk (64) || X25519 sk (32) */
};

int
np_crypto_init(void)
{
	return sodium_init() < 0 ? NP_ERR_CRYPTO : NP_OK;
}

void
np_key_free(struct np_key *k)
{
	if (k == NULL) {
		return;
	}
	sodium_free(k->sec); /* wipes, also when read-only */
	sodium_memzero(k, sizeof(*k));
	free(k);
}

/* A key from a checked Ed25519 secret key; derives the X25519 form. */
static int
key_from_sk(const char *name, const uint8_t sk[ED_SK_LEN],
    struct np_key **out)
{
	struct np_key *k;
	int r = NP_ERR_ALLOC;

	*out = NULL;
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((k->sec = sodium_malloc(ED_SK_LEN + X_SK_LEN)) == NULL) {
		goto out;
	}
	memcpy(k->sec, sk, ED_SK_LEN);
	if (crypto_sign_ed25519_sk_to_curve25519(k->sec + ED_SK_LEN, sk) != 0) {
		r = NP_ERR_CRYPTO;
		goto out;
	}
	sodium_mprotect_readonly(k->sec);
	memcpy(k->pk, sk + ED_SK_LEN - NP_PK_LEN, NP_PK_LEN);
	snprintf(k->name, sizeof(k->name), "%s", name);
	*out = k;
	k = NULL;
	r = NP_OK;
out:
	np_key_free(k);
	return r;
}

/* Key from a seed; if want_sk != NULL it must equal the derived sk. */
static int
key_from_seed(const char *name, const uint8_t seed[32],
    const uint8_t *want_sk, struct np_key **out)
{
	uint8_t pk[NP_PK_LEN], *sk;
	int r;

	*out = NULL;
	if ((r = np_crypto_init()) != NP_OK) {
		return r;
	}
	if ((sk = sodium_malloc(ED_SK_LEN)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if (crypto_sign_seed_keypair(pk, sk, seed) != 0) {
		r = NP_ERR_CRYPTO;
		goto out;
	}
	if (want_sk != NULL &&
	    sodium_memcmp(sk, want_sk, ED_SK_LEN) != 0) {
		r = NP_ERR_INVALID;
		goto out;
	}
	r = key_from_sk(name, sk, out);
out:
	sodium_free(sk);
	return r;
}

int
np_key_from_seed(const char *name, const uint8_t seed[32],
    struct np_key **out)
{
	char id[NP_IDENT_MAX + 1];

	*out = NULL;
	if (np_ident_norm(name, id, sizeof(id)) != NP_OK) {
		return NP_ERR_INVALID;
	}
	return key_from_seed(id, seed, NULL, out);
}

int
np_key_generate(const char *name, struct np_key **out)
{
	uint8_t *seed;
	int r;

	*out = NULL;
	if ((r = np_crypto_init()) != NP_OK) {
		return r;
	}
	if ((seed = sodium_malloc(32)) == NULL) {
		return NP_ERR_ALLOC;
	}
	randombytes_buf(seed, 32);
	r = np_key_from_seed(name, seed, out);
	sodium_free(seed);
	return r;
}

/*
 * libsodium 1.0.18's decoder maps bytes >= 0x80 onto alphabet characters,
 * so check the alphabet first: one value must have one encoding.
 */
int
np_b64_alphabet_ok(const char *s, size_t len, int urlsafe)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '=') {
			continue;
		}
		if (urlsafe ? (c == '-' || c == '_') : (c == '+' || c == '/')) {
			continue;
		}
		return 0;
	}
	return 1;
}

/* Base64 (ORIGINAL, padded) of s[0..len), no trailing garbage. */
static int
b64_decode_n(const char *s, size_t len, uint8_t *out, size_t max,
    size_t *n)
{
	const char *end = NULL;
	size_t bin_len = 0;

	*n = 0;
	if (np_crypto_init() != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	if (!np_b64_alphabet_ok(s, len, 0) ||
	    sodium_base642bin(out, max, s, len, NULL, &bin_len, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || end != s + len) {
		sodium_memzero(out, max);
		return NP_ERR_INVALID;
	}
	*n = bin_len;
	return NP_OK;
}

int
np_b64_decode(const char *s, uint8_t *out, size_t max, size_t *n)
{
	if (s == NULL) {
		*n = 0;
		return NP_ERR_INVALID;
	}
	return b64_decode_n(s, strlen(s), out, max, n);
}

int
np_b64_decode_exact(const char *s, uint8_t *out, size_t want)
{
	size_t n;
	int r;

	if ((r = np_b64_decode(s, out, want, &n)) != NP_OK) {
		return r;
	}
	if (n != want) {
		sodium_memzero(out, want);
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

int
np_b64_encode(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	if (n > (SIZE_MAX - 4) / 4 * 3 - 3 ||
	    outlen < sodium_base64_ENCODED_LEN(n,
	    sodium_base64_VARIANT_ORIGINAL)) {
		return NP_ERR_TOO_BIG;
	}
	sodium_bin2base64(out, outlen, p, n, sodium_base64_VARIANT_ORIGINAL);
	return NP_OK;
}

int
np_fingerprint(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	const size_t pfx = sizeof("SHA256:") - 1;

	if (outlen < pfx + sodium_base64_ENCODED_LEN(sizeof(h),
	    sodium_base64_VARIANT_ORIGINAL_NO_PADDING)) {
		return NP_ERR_TOO_BIG;
	}
	if (np_crypto_init() != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	crypto_hash_sha256(h, p, n);
	memcpy(out, "SHA256:", pfx);
	sodium_bin2base64(out + pfx, outlen - pfx, h, sizeof(h),
	    sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
	return NP_OK;
}

const char *
np_key_name(const struct np_key *k)
{
	return k->name;
}

const uint8_t *
np_key_pk(const struct np_key *k)
{
	return k->pk;
}

const uint8_t *
np_key_box_sk(const struct np_key *k)
{
	return k->sec + ED_SK_LEN;
}

int
np_key_sign(const struct np_key *k, const uint8_t *msg, size_t len,
    uint8_t sig[NP_SIG_LEN])
{
	if (crypto_sign_detached(sig, NULL, msg, len, k->sec) != 0) {
		return NP_ERR_CRYPTO;
	}
	return NP_OK;
}

int
np_sig_verify(const uint8_t pk[NP_PK_LEN], const uint8_t *msg, size_t len,
    const uint8_t sig[NP_SIG_LEN])
{
	if (np_crypto_init() != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	if (crypto_sign_verify_detached(sig, msg, len, pk) != 0) {
		return NP_ERR_CRYPTO;
	}
	return NP_OK;
}

int
np_pk_box_pk(const uint8_t pk[NP_PK_LEN], uint8_t out[32])
{
	if (np_crypto_init() != NP_OK) {
		return NP_ERR_CRYPTO;
	}
	if (crypto_sign_ed25519_pk_to_curve25519(out, pk) != 0) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

/* ---- key file ---- */

/* Next '\n'-terminated line (the last one may lack it). */
static int
next_line(const uint8_t **p, const uint8_t *end, const char **line,
    size_t *len)
{
	const uint8_t *nl;

	if (*p >= end) {
		return NP_ERR_TRUNCATED;
	}
	*line = (const char *)*p;
	if ((nl = memchr(*p, '\n', (size_t)(end - *p))) == NULL) {
		*len = (size_t)(end - *p);
		*p = end;
	} else {
		*len = (size_t)(nl - *p);
		*p = nl + 1;
	}
	return NP_OK;
}

/* line must be pfx followed by at least one byte; *rest gets the rest. */
static int
line_field(const char *line, size_t len, const char *pfx, const char **rest,
    size_t *restlen)
{
	size_t n = strlen(pfx);

	if (len <= n || memcmp(line, pfx, n) != 0) {
		return NP_ERR_INVALID;
	}
	*rest = line + n;
	*restlen = len - n;
	return NP_OK;
}

static int
parse_name(const char *line, size_t len, char name[NP_IDENT_MAX + 1])
{
	const char *v;
	size_t n;

	if (line_field(line, len, KEY_NAME_PFX, &v, &n) != NP_OK ||
	    n > NP_IDENT_MAX || memchr(v, '\0', n) != NULL) {
		return NP_ERR_INVALID;
	}
	memcpy(name, v, n);
	name[n] = '\0';
	return np_ident_valid(name) ? NP_OK : NP_ERR_INVALID;
}

static int
parse_secret(const char *line, size_t len, uint8_t sk[ED_SK_LEN])
{
	const char *v;
	size_t n, got;

	if (line_field(line, len, KEY_SECRET_PFX, &v, &n) != NP_OK ||
	    n != SECRET_B64_LEN) {
		return NP_ERR_INVALID;
	}
	if (b64_decode_n(v, n, sk, ED_SK_LEN, &got) != NP_OK ||
	    got != ED_SK_LEN) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

int
np_key_parse(const uint8_t *data, size_t len, struct np_key **out)
{
	const uint8_t *p = data, *end;
	char name[NP_IDENT_MAX + 1];
	const char *line;
	size_t n;
	uint8_t *sk = NULL;
	int r;

	*out = NULL;
	if ((r = np_crypto_init()) != NP_OK) {
		return r;
	}
	if (len > NP_KEYFILE_MAX) {
		return NP_ERR_TOO_BIG;
	}
	if (data == NULL) {
		return NP_ERR_INVALID; /* and no NULL + 0 below */
	}
	end = data + len;
	if ((sk = sodium_malloc(ED_SK_LEN)) == NULL) {
		return NP_ERR_ALLOC;
	}
	r = NP_ERR_INVALID;
	if (next_line(&p, end, &line, &n) != NP_OK ||
	    n != strlen(KEY_MAGIC) || memcmp(line, KEY_MAGIC, n) != 0) {
		goto out;
	}
	if (next_line(&p, end, &line, &n) != NP_OK ||
	    parse_name(line, n, name) != NP_OK) {
		goto out;
	}
	if (next_line(&p, end, &line, &n) != NP_OK ||
	    parse_secret(line, n, sk) != NP_OK) {
		goto out;
	}
	if (p != end) {
		goto out; /* anything after the third line */
	}
	r = key_from_seed(name, sk, sk, out);
out:
	sodium_free(sk);
	return r;
}

int
np_key_serialize(const struct np_key *k, struct np_buf *b)
{
	const size_t elen = sodium_base64_ENCODED_LEN(ED_SK_LEN,
	    sodium_base64_VARIANT_ORIGINAL);
	uint8_t *dst;
	int r;

	if ((r = np_buf_putf(b, "%s\n%s%s\n%s", KEY_MAGIC, KEY_NAME_PFX,
	    k->name, KEY_SECRET_PFX)) != NP_OK) {
		return r;
	}
	if ((r = np_buf_reserve(b, elen, &dst)) != NP_OK) {
		return r;
	}
	sodium_bin2base64((char *)dst, elen, k->sec, ED_SK_LEN,
	    sodium_base64_VARIANT_ORIGINAL);
	dst[elen - 1] = '\n'; /* replaces the NUL */
	return NP_OK;
}

int
np_key_save(const struct np_key *k, const char *path, int force)
{
	struct np_buf *b;
	int r;

	if ((b = np_buf_new_secure(NP_KEYFILE_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_key_serialize(k, b)) == NP_OK) {
		r = np_file_write_atomic(path, np_buf_ptr(b), np_buf_len(b),
		    force);
	}
	np_buf_free(b); /* wipes */
	return r;
}

int
np_key_load(const char *path, struct np_key **out)
{
	struct np_buf *b = NULL;
	int r;

	*out = NULL;
	if ((r = np_file_read_checked(path, NP_KEYFILE_MAX, 077, 1, &b)) !=
	    NP_OK) {
		return r;
	}
	r = np_key_parse(np_buf_ptr(b), np_buf_len(b), out);
	np_buf_free(b); /* wipes */
	return r;
}

/* ---- signed protocol messages ---- */

int
np_auth_message(const uint8_t nonce[32], const uint8_t cb[32],
    const char *id, struct np_buf *out)
{
	int r;

	if (!np_ident_valid(id)) {
		return NP_ERR_INVALID;
	}
	if ((r = np_buf_put(out, NP_AUTH_LABEL, sizeof(NP_AUTH_LABEL))) !=
	    NP_OK ||
	    (r = np_buf_put(out, nonce, 32)) != NP_OK ||
	    (r = np_buf_put(out, cb, 32)) != NP_OK ||
	    (r = np_buf_put(out, id, strlen(id))) != NP_OK) {
		return r;
	}
	return NP_OK;
}

int
np_enroll_message(const uint8_t nonce[32], const uint8_t cb[32],
    const uint8_t pk[32], const char *id, struct np_buf *out)
{
	int r;

	if (!np_ident_valid(id)) {
		return NP_ERR_INVALID;
	}
	if ((r = np_buf_put(out, NP_ENROLL_LABEL,
	    sizeof(NP_ENROLL_LABEL))) != NP_OK ||
	    (r = np_buf_put(out, nonce, 32)) != NP_OK ||
	    (r = np_buf_put(out, cb, 32)) != NP_OK ||
	    (r = np_buf_put(out, pk, 32)) != NP_OK ||
	    (r = np_buf_put(out, id, strlen(id))) != NP_OK) {
		return r;
	}
	return NP_OK;
}

/* ---- files ---- */

static int
errno_to_np(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return NP_ERR_NOT_FOUND;
	case ELOOP:
	case EACCES:
	case EPERM:
		return NP_ERR_PERM;
	case EEXIST:
		return NP_ERR_EXISTS;
	default:
		return NP_ERR_SYSTEM;
	}
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			return NP_ERR_SYSTEM;
		}
		p += w;
		len -= (size_t)w;
	}
	return NP_OK;
}

/* The directory part of path ("." when none). */
static int
dir_of(const char *path, char dir[PATH_MAX])
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		snprintf(dir, PATH_MAX, ".");
		return NP_OK;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= PATH_MAX) {
		return NP_ERR_TOO_BIG;
	}
	memcpy(dir, path, n);
	dir[n] = '\0';
	return NP_OK;
}

/* Make a rename or link in path's directory durable. */
static int
sync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd, r;

	if ((r = dir_of(path, dir)) != NP_OK) {
		return r;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		return errno_to_np(errno);
	}
	r = fsync(fd) == 0 || errno == EINVAL ? NP_OK : NP_ERR_SYSTEM;
	close(fd);
	return r;
}

/* The directory part of path ("." when none) must be a directory. */
static int
check_dir(const char *path)
{
	char dir[PATH_MAX];
	struct stat st;
	int r;

	if ((r = dir_of(path, dir)) != NP_OK) {
		return r;
	}
	if (stat(dir, &st) != 0) {
		return errno_to_np(errno);
	}
	return S_ISDIR(st.st_mode) ? NP_OK : NP_ERR_NOT_FOUND;
}

static int
write_temp(const char *tmp, const uint8_t *p, size_t len)
{
	int fd, r;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		return errno_to_np(errno);
	}
	if (fchmod(fd, 0600) != 0 || (r = write_all(fd, p, len)) != NP_OK ||
	    fsync(fd) != 0) {
		r = NP_ERR_SYSTEM;
		close(fd);
		return r;
	}
	return close(fd) == 0 ? NP_OK : NP_ERR_SYSTEM;
}

int
np_file_write_atomic(const char *path, const uint8_t *p, size_t len,
    int replace)
{
	char tmp[PATH_MAX], rnd[17];
	uint8_t rb[8];
	struct stat st;
	int r;

	if (path == NULL || *path == '\0') {
		return NP_ERR_INVALID;
	}
	if ((r = np_crypto_init()) != NP_OK || (r = check_dir(path)) != NP_OK) {
		return r;
	}
	if (!replace && lstat(path, &st) == 0) {
		return NP_ERR_EXISTS;
	}
	randombytes_buf(rb, sizeof(rb));
	sodium_bin2hex(rnd, sizeof(rnd), rb, sizeof(rb));
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%s", path, rnd) >=
	    sizeof(tmp)) {
		return NP_ERR_TOO_BIG;
	}
	if ((r = write_temp(tmp, p, len)) != NP_OK) {
		goto out;
	}
	if (replace) {
		r = rename(tmp, path) == 0 ? NP_OK : errno_to_np(errno);
	} else {
		/* link(2) fails if path appeared meanwhile: no overwrite. */
		r = link(tmp, path) == 0 ? NP_OK : errno_to_np(errno);
	}
	if (r == NP_OK) {
		r = sync_dir(path);
	}
out:
	if (r != NP_OK || !replace) {
		unlink(tmp);
	}
	return r;
}

/* Read to EOF into b (cap max + 1, so that "over max" shows). */
static int
read_all(int fd, struct np_buf *b, size_t max)
{
	uint8_t *dst;
	size_t want;
	ssize_t n;

	for (;;) {
		if ((want = np_buf_avail(b)) == 0) {
			return NP_ERR_TOO_BIG;
		}
		if (want > 4096) {
			want = 4096;
		}
		if (np_buf_reserve(b, want, &dst) != NP_OK) {
			return NP_ERR_TOO_BIG;
		}
		n = read(fd, dst, want);
		if (n < 0) {
			np_buf_unreserve(b, want);
			if (errno == EINTR) {
				continue;
			}
			return NP_ERR_SYSTEM;
		}
		np_buf_unreserve(b, want - (size_t)n);
		if (n == 0) {
			break;
		}
	}
	return np_buf_len(b) > max ? NP_ERR_TOO_BIG : NP_OK;
}

static int
check_stat(int fd, size_t max, unsigned badmode)
{
	struct stat st;

	if (fstat(fd, &st) != 0) {
		return NP_ERR_SYSTEM;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & badmode) != 0) {
		return NP_ERR_PERM;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		return NP_ERR_PERM;
	}
	if (st.st_size < 0 || (uintmax_t)st.st_size > max) {
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

int
np_file_read_checked(const char *path, size_t max, unsigned badmode,
    int secure, struct np_buf **out)
{
	struct np_buf *b = NULL;
	int fd, r;

	*out = NULL;
	if (max == 0 || max >= NP_BUF_MAX_CAP) {
		return NP_ERR_INVALID;
	}
	/* O_NONBLOCK: a FIFO must not block the open. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		return errno_to_np(errno);
	}
	if ((r = check_stat(fd, max, badmode)) != NP_OK) {
		goto out;
	}
	b = secure ? np_buf_new_secure(max + 1) : np_buf_new(max + 1);
	if (b == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((r = read_all(fd, b, max)) != NP_OK) {
		goto out;
	}
	*out = b;
	b = NULL;
out:
	np_buf_free(b);
	close(fd);
	return r;
}
