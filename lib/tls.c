/*
 * TLS 1.3 over OpenSSL 3 for the control plane.  Non-blocking only: every
 * call maps OpenSSL's result onto NP_OK / NP_ERR_AGAIN (with the direction
 * to wait for) / NP_ERR_CLOSED / NP_ERR_TLS, and clears the thread's error
 * queue before and after, so one connection's failure never leaks into
 * another's.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "err.h"
#include "ev.h"
#include "log.h"
#include "tls.h"

#define FP_PREFIX "SHA256:"
#define CERT_DAYS (20 * 365 + 5)

struct np_tls_ctx {
	SSL_CTX *ctx;
};

struct np_tls {
	SSL *ssl;
	uint32_t want;
};

/* Log (debug) and drop whatever OpenSSL queued. */
static void
tls_drain_errors(const char *what)
{
	char msg[256];
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, msg, sizeof(msg));
		np_debug("%s: %s", what, msg);
	}
}

/* Is there an "unexpected EOF" in the error queue? */
static int
tls_unexpected_eof(void)
{
	unsigned long e;
	int i;

	for (i = 0; i < 16 && (e = ERR_peek_error()) != 0; i++) {
		if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			return 1;
		(void)ERR_get_error();
	}
	return 0;
}

/* Map the result of an SSL_* call that failed. */
static int
tls_result(struct np_tls *t, int ret, const char *what)
{
	int saved = errno, r;

	switch (SSL_get_error(t->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		t->want = NP_EV_READ;
		r = NP_ERR_AGAIN;
		break;
	case SSL_ERROR_WANT_WRITE:
		t->want = NP_EV_WRITE;
		r = NP_ERR_AGAIN;
		break;
	case SSL_ERROR_ZERO_RETURN:
		r = NP_ERR_CLOSED;
		break;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() == 0 &&
		    (saved == 0 || saved == ECONNRESET || saved == EPIPE))
			r = NP_ERR_CLOSED;
		else if (saved == EAGAIN || saved == EWOULDBLOCK) {
			t->want = NP_EV_READ;
			r = NP_ERR_AGAIN;
		} else
			r = NP_ERR_TLS;
		break;
	case SSL_ERROR_SSL:
		r = tls_unexpected_eof() ? NP_ERR_CLOSED : NP_ERR_TLS;
		break;
	default:
		r = NP_ERR_TLS;
		break;
	}
	tls_drain_errors(what);
	errno = saved;
	return r;
}

static int
ctx_new(const SSL_METHOD *method, SSL_CTX **out)
{
	SSL_CTX *ctx;

	*out = NULL;
	if ((ctx = SSL_CTX_new(method)) == NULL)
		return NP_ERR_TLS;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		SSL_CTX_free(ctx);
		return NP_ERR_TLS;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
				  SSL_MODE_ENABLE_PARTIAL_WRITE |
				  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	*out = ctx;
	return NP_OK;
}

/* Open a private key file that nobody but its owner can read. */
static int
load_key(const char *keyfile, EVP_PKEY **out)
{
	struct stat st;
	BIO *bio = NULL;
	int fd, r;

	*out = NULL;
	/* O_NONBLOCK: a FIFO planted as the key must not hang the open. */
	if ((fd = open(keyfile, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK)) == -1) {
		if (errno == ELOOP)
			return NP_ERR_PERM;
		return errno == ENOENT ? NP_ERR_NOT_FOUND : NP_ERR_SYSTEM;
	}
	if (fstat(fd, &st) == -1) {
		r = NP_ERR_SYSTEM;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0 ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		np_error("%s: key file must be a regular file of mode 0600 "
			 "owned by us or root", keyfile);
		r = NP_ERR_PERM;
		goto out;
	}
	if ((bio = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	if ((*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		r = NP_ERR_INVALID;
		goto out;
	}
	r = NP_OK;
out:
	BIO_free(bio);
	close(fd);
	tls_drain_errors("load key");
	return r;
}

int
np_tls_server_ctx(const char *certfile, const char *keyfile,
		  struct np_tls_ctx **out)
{
	struct np_tls_ctx *c = NULL;
	SSL_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r;

	*out = NULL;
	ERR_clear_error();
	if ((r = ctx_new(TLS_server_method(), &ctx)) != NP_OK)
		goto out;
	SSL_CTX_set_num_tickets(ctx, 0);
	if ((r = load_key(keyfile, &pkey)) != NP_OK)
		goto out;
	if (SSL_CTX_use_certificate_file(ctx, certfile, SSL_FILETYPE_PEM) !=
	    1) {
		np_error("%s: cannot load certificate", certfile);
		r = NP_ERR_INVALID;
		goto out;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		np_error("%s does not match %s", keyfile, certfile);
		r = NP_ERR_INVALID;
		goto out;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = NP_ERR_ALLOC;
		goto out;
	}
	c->ctx = ctx;
	ctx = NULL;
	*out = c;
	r = NP_OK;
out:
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	tls_drain_errors("server ctx");
	return r;
}

int
np_tls_client_ctx(struct np_tls_ctx **out)
{
	struct np_tls_ctx *c;
	SSL_CTX *ctx = NULL;
	int r;

	*out = NULL;
	ERR_clear_error();
	if ((r = ctx_new(TLS_client_method(), &ctx)) != NP_OK) {
		tls_drain_errors("client ctx");
		return r;
	}
	/* No CA: the caller pins the certificate's fingerprint. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		SSL_CTX_free(ctx);
		return NP_ERR_ALLOC;
	}
	c->ctx = ctx;
	*out = c;
	return NP_OK;
}

void
np_tls_ctx_free(struct np_tls_ctx *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

int
np_tls_new(struct np_tls_ctx *c, int fd, int is_server, struct np_tls **out)
{
	struct np_tls *t;

	*out = NULL;
	ERR_clear_error();
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NP_ERR_ALLOC;
	if ((t->ssl = SSL_new(c->ctx)) == NULL || SSL_set_fd(t->ssl, fd) != 1) {
		tls_drain_errors("new");
		np_tls_free(t);
		return NP_ERR_TLS;
	}
	if (is_server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	t->want = NP_EV_READ | NP_EV_WRITE;
	*out = t;
	return NP_OK;
}

void
np_tls_free(struct np_tls *t)
{
	if (t == NULL)
		return;
	SSL_free(t->ssl);
	free(t);
}

int
np_tls_handshake(struct np_tls *t)
{
	int ret;

	ERR_clear_error();
	errno = 0;
	if ((ret = SSL_do_handshake(t->ssl)) == 1)
		return NP_OK;
	return tls_result(t, ret, "handshake");
}

int
np_tls_read(struct np_tls *t, void *p, size_t len, size_t *n)
{
	int ret;

	*n = 0;
	if (len == 0)
		return NP_OK;
	ERR_clear_error();
	errno = 0;
	if ((ret = SSL_read_ex(t->ssl, p, len, n)) == 1)
		return NP_OK;
	*n = 0;
	return tls_result(t, ret, "read");
}

int
np_tls_write(struct np_tls *t, const void *p, size_t len, size_t *n)
{
	int ret;

	*n = 0;
	if (len == 0)
		return NP_OK;
	ERR_clear_error();
	errno = 0;
	if ((ret = SSL_write_ex(t->ssl, p, len, n)) == 1)
		return NP_OK;
	*n = 0;
	return tls_result(t, ret, "write");
}

uint32_t
np_tls_want(const struct np_tls *t)
{
	return t->want;
}

size_t
np_tls_pending(const struct np_tls *t)
{
	int n = SSL_pending(t->ssl);

	return n > 0 ? (size_t)n : 0;
}

int
np_tls_started(const struct np_tls *t)
{
	return SSL_get_state(t->ssl) != TLS_ST_BEFORE;
}

void
np_tls_shutdown(struct np_tls *t)
{
	if (t == NULL || t->ssl == NULL)
		return;
	ERR_clear_error();
	if (SSL_is_init_finished(t->ssl))
		(void)SSL_shutdown(t->ssl);
	tls_drain_errors("shutdown");
}

/* ---- fingerprints and channel binding ---- */

/* "SHA256:" + unpadded base64 of SHA-256(der). */
static int
fp_der(const uint8_t *der, size_t len, char *out, size_t outlen)
{
	uint8_t h[crypto_hash_sha256_BYTES];
	char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
					   sodium_base64_VARIANT_ORIGINAL)];
	size_t n;

	crypto_hash_sha256(h, der, len);
	sodium_bin2base64(b64, sizeof(b64), h, sizeof(h),
			  sodium_base64_VARIANT_ORIGINAL);
	n = strlen(b64);
	while (n > 0 && b64[n - 1] == '=')
		b64[--n] = '\0';
	if (outlen < sizeof(FP_PREFIX) + n)
		return NP_ERR_TOO_BIG;
	memcpy(out, FP_PREFIX, sizeof(FP_PREFIX) - 1);
	memcpy(out + sizeof(FP_PREFIX) - 1, b64, n + 1);
	return NP_OK;
}

static int
fp_x509(X509 *x, char *out, size_t outlen)
{
	unsigned char *der = NULL;
	int len, r;

	if ((len = i2d_X509(x, &der)) <= 0) {
		tls_drain_errors("i2d");
		return NP_ERR_TLS;
	}
	r = fp_der(der, (size_t)len, out, outlen);
	OPENSSL_free(der);
	return r;
}

int
np_tls_peer_fingerprint(struct np_tls *t, char *out, size_t outlen)
{
	X509 *x;

	if (outlen > 0)
		out[0] = '\0';
	if ((x = SSL_get0_peer_certificate(t->ssl)) == NULL)
		return NP_ERR_NOT_FOUND;
	return fp_x509(x, out, outlen);
}

int
np_tls_check_fingerprint(struct np_tls *t, const char *pinned)
{
	char fp[128];
	size_t n;

	if (pinned == NULL ||
	    np_tls_peer_fingerprint(t, fp, sizeof(fp)) != NP_OK)
		return NP_ERR_FINGERPRINT;
	n = strlen(fp);
	if (strlen(pinned) != n || sodium_memcmp(fp, pinned, n) != 0)
		return NP_ERR_FINGERPRINT;
	return NP_OK;
}

int
np_tls_channel_binding(struct np_tls *t, uint8_t out[NP_TLS_CB_LEN])
{
	ERR_clear_error();
	if (!SSL_is_init_finished(t->ssl) ||
	    SSL_export_keying_material(t->ssl, out, NP_TLS_CB_LEN,
				       NP_TLS_CB_LABEL, strlen(NP_TLS_CB_LABEL),
				       NULL, 0, 0) != 1) {
		tls_drain_errors("channel binding");
		return NP_ERR_TLS;
	}
	return NP_OK;
}

int
np_tls_cert_fingerprint(const char *certfile, char *out, size_t outlen)
{
	BIO *bio;
	X509 *x;
	int r;

	if (outlen > 0)
		out[0] = '\0';
	ERR_clear_error();
	if ((bio = BIO_new_file(certfile, "r")) == NULL) {
		tls_drain_errors(certfile);
		return NP_ERR_NOT_FOUND;
	}
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (x == NULL) {
		tls_drain_errors(certfile);
		return NP_ERR_INVALID;
	}
	r = fp_x509(x, out, outlen);
	X509_free(x);
	return r;
}

/* ---- self-signed certificates ---- */

static int
cert_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		return NP_ERR_TLS;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? NP_OK : NP_ERR_TLS;
}

static int
cert_serial(X509 *x)
{
	uint8_t rnd[16];
	BIGNUM *bn;
	int ok;

	randombytes_buf(rnd, sizeof(rnd));
	rnd[0] &= 0x7f; /* positive */
	rnd[0] |= 0x01; /* and non-zero */
	if ((bn = BN_bin2bn(rnd, sizeof(rnd), NULL)) == NULL)
		return NP_ERR_ALLOC;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? NP_OK : NP_ERR_TLS;
}

static int
cert_build(EVP_PKEY *pkey, const char *cn, X509 **out)
{
	X509 *x;
	X509_NAME *name;
	int r = NP_ERR_TLS;

	*out = NULL;
	if ((x = X509_new()) == NULL)
		return NP_ERR_ALLOC;
	if (X509_set_version(x, 2) != 1 || (r = cert_serial(x)) != NP_OK)
		goto out;
	r = NP_ERR_TLS;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL) == NULL)
		goto out;
	if ((name = X509_get_subject_name(x)) == NULL ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, pkey) != 1)
		goto out;
	if ((r = cert_add_ext(x, NID_basic_constraints, "critical,CA:FALSE")) !=
		NP_OK ||
	    (r = cert_add_ext(x, NID_key_usage, "critical,digitalSignature")) !=
		NP_OK ||
	    (r = cert_add_ext(x, NID_ext_key_usage, "serverAuth")) != NP_OK)
		goto out;
	r = NP_ERR_TLS;
	if (X509_sign(x, pkey, NULL) <= 0)
		goto out;
	*out = x;
	x = NULL;
	r = NP_OK;
out:
	X509_free(x);
	return r;
}

/* Create path exclusively with mode and write it through a BIO. */
static int
open_new(const char *path, mode_t mode, int *fdp)
{
	int fd;

	*fdp = -1;
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
		  mode);
	if (fd == -1)
		return errno == EEXIST ? NP_ERR_EXISTS : NP_ERR_SYSTEM;
	if (fchmod(fd, mode) == -1) {
		close(fd);
		unlink(path);
		return NP_ERR_SYSTEM;
	}
	*fdp = fd;
	return NP_OK;
}

static int
write_pem(int fd, EVP_PKEY *pkey, X509 *x)
{
	BIO *bio;
	int ok;

	if ((bio = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL)
		return NP_ERR_ALLOC;
	if (pkey != NULL)
		ok = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
					      NULL);
	else
		ok = PEM_write_bio_X509(bio, x);
	ok = ok == 1 && BIO_flush(bio) == 1;
	BIO_free(bio);
	if (!ok)
		return NP_ERR_SYSTEM;
	return fsync(fd) == 0 ? NP_OK : NP_ERR_SYSTEM;
}

int
np_tls_make_selfsigned(const char *certfile, const char *keyfile,
		       const char *cn)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	int kfd = -1, cfd = -1, made_key = 0, made_cert = 0, r;
	struct stat st;

	ERR_clear_error();
	if (cn == NULL || *cn == '\0' || strlen(cn) > 64)
		return NP_ERR_INVALID;
	if (lstat(certfile, &st) == 0 || lstat(keyfile, &st) == 0)
		return NP_ERR_EXISTS;
	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL) {
		r = NP_ERR_TLS;
		goto out;
	}
	if ((r = cert_build(pkey, cn, &x)) != NP_OK)
		goto out;
	if ((r = open_new(keyfile, 0600, &kfd)) != NP_OK)
		goto out;
	made_key = 1;
	if ((r = open_new(certfile, 0644, &cfd)) != NP_OK)
		goto out;
	made_cert = 1;
	if ((r = write_pem(kfd, pkey, NULL)) != NP_OK ||
	    (r = write_pem(cfd, NULL, x)) != NP_OK)
		goto out;
	r = NP_OK;
out:
	if (kfd != -1 && close(kfd) == -1 && r == NP_OK)
		r = NP_ERR_SYSTEM;
	if (cfd != -1 && close(cfd) == -1 && r == NP_OK)
		r = NP_ERR_SYSTEM;
	if (r != NP_OK && made_key)
		unlink(keyfile);
	if (r != NP_OK && made_cert)
		unlink(certfile);
	X509_free(x);
	EVP_PKEY_free(pkey);
	tls_drain_errors("make self-signed");
	return r;
}
