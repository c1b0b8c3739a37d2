#include <check.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "err.h"
#include "ev.h"
#include "tls.h"

static char dir[64];
static char certf[128], keyf[128];

static void
setup(void)
{
	strcpy(dir, "/tmp/np-test-tls-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(certf, sizeof(certf), "%s/cert.pem", dir);
	snprintf(keyf, sizeof(keyf), "%s/key.pem", dir);
	ck_assert_int_eq(np_tls_make_selfsigned(certf, keyf, "np-test"), NP_OK);
}

static void
teardown(void)
{
	char path[256];
	static const char *const names[] = {
	    "cert.pem", "key.pem", "c2.pem", "k2.pem", "link", "garbage.pem"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

struct conn {
	int sv[2];
	struct np_tls_ctx *sctx, *cctx;
	struct np_tls *s, *c;
};

static void
conn_open(struct conn *k)
{
	memset(k, 0, sizeof(*k));
	ck_assert_int_eq(socketpair(AF_UNIX,
				    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				    0, k->sv),
			 0);
	ck_assert_int_eq(np_tls_server_ctx(certf, keyf, &k->sctx), NP_OK);
	ck_assert_int_eq(np_tls_client_ctx(&k->cctx), NP_OK);
	ck_assert_int_eq(np_tls_new(k->sctx, k->sv[0], 1, &k->s), NP_OK);
	ck_assert_int_eq(np_tls_new(k->cctx, k->sv[1], 0, &k->c), NP_OK);
}

static void
conn_close(struct conn *k)
{
	np_tls_free(k->s);
	np_tls_free(k->c);
	np_tls_ctx_free(k->sctx);
	np_tls_ctx_free(k->cctx);
	close(k->sv[0]);
	close(k->sv[1]);
}

static short
poll_events(uint32_t want)
{
	return (short)(((want & NP_EV_READ) ? POLLIN : 0) |
		       ((want & NP_EV_WRITE) ? POLLOUT : 0));
}

/* Wait for what either side asked for (a side at NP_OK is not polled). */
static void
wait_both(struct np_tls *a, int fa, int ra, struct np_tls *b, int fb, int rb)
{
	struct pollfd p[2];

	p[0].fd = ra == NP_ERR_AGAIN ? fa : -1;
	p[0].events = poll_events(np_tls_want(a));
	p[1].fd = rb == NP_ERR_AGAIN ? fb : -1;
	p[1].events = poll_events(np_tls_want(b));
	ck_assert_int_ge(poll(p, 2, 1000), 0);
}

/* Drive both handshakes; the results of each side. */
static void
handshake(struct conn *k, int *rs, int *rc)
{
	int i;

	*rs = *rc = NP_ERR_AGAIN;
	for (i = 0; i < 200; i++) {
		if (*rc == NP_ERR_AGAIN)
			*rc = np_tls_handshake(k->c);
		if (*rs == NP_ERR_AGAIN)
			*rs = np_tls_handshake(k->s);
		if (*rs != NP_ERR_AGAIN && *rc != NP_ERR_AGAIN)
			return;
		if (*rs != NP_ERR_AGAIN && *rs != NP_OK)
			return;
		if (*rc != NP_ERR_AGAIN && *rc != NP_OK)
			return;
		wait_both(k->c, k->sv[1], *rc, k->s, k->sv[0], *rs);
	}
	ck_abort_msg("handshake did not finish");
}

static void
handshake_ok(struct conn *k)
{
	int rs, rc;

	handshake(k, &rs, &rc);
	ck_assert_int_eq(rs, NP_OK);
	ck_assert_int_eq(rc, NP_OK);
}

/* Move len bytes from w to r through non-blocking writes and reads. */
static void
transfer(struct np_tls *w, int wfd, struct np_tls *r, int rfd, const uint8_t *p,
	 size_t len)
{
	uint8_t *got = malloc(len);
	size_t off = 0, in = 0, n;
	int rw = NP_OK, rr, i;

	for (i = 0; i < 100000 && in < len; i++) {
		if (off < len) {
			rw = np_tls_write(w, p + off, len - off, &n);
			ck_assert(rw == NP_OK || rw == NP_ERR_AGAIN);
			off += n;
		}
		rr = np_tls_read(r, got + in, len - in, &n);
		ck_assert(rr == NP_OK || rr == NP_ERR_AGAIN);
		in += n;
		if (rr == NP_ERR_AGAIN && (rw == NP_ERR_AGAIN || off == len))
			wait_both(w, wfd, off < len ? NP_ERR_AGAIN : NP_OK, r,
				  rfd, NP_ERR_AGAIN);
	}
	ck_assert_uint_eq(in, len);
	ck_assert_int_eq(memcmp(got, p, len), 0);
	free(got);
}

START_TEST(selfsigned_files)
{
	struct stat st;
	char fp[NP_TLS_CB_LEN * 4], fp2[128];

	ck_assert_int_eq(stat(keyf, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(certf, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0644);
	/* Never overwrites. */
	ck_assert_int_eq(np_tls_make_selfsigned(certf, keyf, "x"),
			 NP_ERR_EXISTS);
	{
		char c2[160], k2[160];

		snprintf(c2, sizeof(c2), "%s/c2.pem", dir);
		snprintf(k2, sizeof(k2), "%s/k2.pem", dir);
		ck_assert_int_eq(np_tls_make_selfsigned(c2, keyf, "x"),
				 NP_ERR_EXISTS);
		ck_assert_int_eq(access(c2, F_OK), -1);
		ck_assert_int_eq(np_tls_make_selfsigned(certf, k2, "x"),
				 NP_ERR_EXISTS);
		ck_assert_int_eq(access(k2, F_OK), -1);
		ck_assert_int_eq(np_tls_make_selfsigned(c2, k2, ""),
				 NP_ERR_INVALID);
		/* A second certificate has another fingerprint. */
		ck_assert_int_eq(np_tls_make_selfsigned(c2, k2, "other"),
				 NP_OK);
		ck_assert_int_eq(np_tls_cert_fingerprint(c2, fp2, sizeof(fp2)),
				 NP_OK);
	}
	ck_assert_int_eq(np_tls_cert_fingerprint(certf, fp, sizeof(fp)), NP_OK);
	ck_assert_int_eq(strncmp(fp, "SHA256:", 7), 0);
	ck_assert_uint_eq(strlen(fp), 7 + 43);
	ck_assert_ptr_null(strchr(fp, '='));
	ck_assert_str_ne(fp, fp2);
	/* Too small an output buffer. */
	ck_assert_int_eq(np_tls_cert_fingerprint(certf, fp, 50),
			 NP_ERR_TOO_BIG);
}
END_TEST

START_TEST(symlink_refused)
{
	char link[160], c2[160];

	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(c2, sizeof(c2), "%s/c2.pem", dir);
	ck_assert_int_eq(symlink("/nonexistent-np-target", link), 0);
	/* A dangling symlink at the key path is not followed. */
	ck_assert_int_eq(np_tls_make_selfsigned(c2, link, "x"), NP_ERR_EXISTS);
	ck_assert_int_eq(access("/nonexistent-np-target", F_OK), -1);
}
END_TEST

START_TEST(key_mode_and_files)
{
	struct np_tls_ctx *c = NULL;
	char link[160], garbage[160];
	FILE *f;

	ck_assert_int_eq(chmod(keyf, 0640), 0);
	ck_assert_int_eq(np_tls_server_ctx(certf, keyf, &c), NP_ERR_PERM);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(chmod(keyf, 0604), 0);
	ck_assert_int_eq(np_tls_server_ctx(certf, keyf, &c), NP_ERR_PERM);
	ck_assert_int_eq(chmod(keyf, 0600), 0);
	/* A symlink to the key is refused too. */
	snprintf(link, sizeof(link), "%s/link", dir);
	ck_assert_int_eq(symlink(keyf, link), 0);
	ck_assert_int_eq(np_tls_server_ctx(certf, link, &c), NP_ERR_PERM);
	ck_assert_int_eq(np_tls_server_ctx(certf, "/nonexistent/key", &c),
			 NP_ERR_NOT_FOUND);
	/* Garbage cert, and the key passed as a certificate. */
	snprintf(garbage, sizeof(garbage), "%s/garbage.pem", dir);
	ck_assert_ptr_nonnull(f = fopen(garbage, "w"));
	fputs("-----BEGIN CERTIFICATE-----\nnope\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(garbage, 0600), 0);
	ck_assert_int_eq(np_tls_server_ctx(garbage, keyf, &c), NP_ERR_INVALID);
	ck_assert_int_eq(np_tls_server_ctx(certf, garbage, &c), NP_ERR_INVALID);
	{
		char fp[64];

		ck_assert_int_eq(
		    np_tls_cert_fingerprint(garbage, fp, sizeof(fp)),
		    NP_ERR_INVALID);
		ck_assert_int_eq(
		    np_tls_cert_fingerprint("/nonexistent/c", fp, sizeof(fp)),
		    NP_ERR_NOT_FOUND);
	}
	ck_assert_int_eq(np_tls_server_ctx(certf, keyf, &c), NP_OK);
	np_tls_ctx_free(c);
	np_tls_ctx_free(NULL);
	np_tls_free(NULL);
}
END_TEST

/* A FIFO as the key must not hang; a key owned by someone else is refused. */
START_TEST(key_fifo_and_owner)
{
	struct np_tls_ctx *c = NULL;
	char fifo[160];

	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(np_tls_server_ctx(certf, fifo, &c), NP_ERR_PERM);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(unlink(fifo), 0);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(keyf, 65534, 65534), 0);
		ck_assert_int_eq(np_tls_server_ctx(certf, keyf, &c),
				 NP_ERR_PERM);
		ck_assert_ptr_null(c);
		ck_assert_int_eq(chown(keyf, 0, 0), 0);
	}
	ck_assert_int_eq(np_tls_server_ctx(certf, keyf, &c), NP_OK);
	np_tls_ctx_free(c);
}
END_TEST

START_TEST(mismatched_key)
{
	struct np_tls_ctx *c = NULL;
	char c2[160], k2[160];

	snprintf(c2, sizeof(c2), "%s/c2.pem", dir);
	snprintf(k2, sizeof(k2), "%s/k2.pem", dir);
	ck_assert_int_eq(np_tls_make_selfsigned(c2, k2, "two"), NP_OK);
	ck_assert_int_eq(np_tls_server_ctx(c2, keyf, &c), NP_ERR_INVALID);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(handshake_and_data)
{
	struct conn k;
	static const char hello[] = "hello from the client";
	static const char answer[] = "and back from the server";
	uint8_t *big;
	size_t i, bigsz = 300 * 1024;

	conn_open(&k);
	/* Before the handshake: nothing to read, no binding. */
	{
		uint8_t cb[NP_TLS_CB_LEN];

		ck_assert_int_eq(np_tls_channel_binding(k.c, cb), NP_ERR_TLS);
	}
	handshake_ok(&k);
	transfer(k.c, k.sv[1], k.s, k.sv[0], (const uint8_t *)hello,
		 sizeof(hello));
	transfer(k.s, k.sv[0], k.c, k.sv[1], (const uint8_t *)answer,
		 sizeof(answer));
	/* Larger than the socket buffers: partial writes and AGAIN. */
	big = malloc(bigsz);
	for (i = 0; i < bigsz; i++)
		big[i] = (uint8_t)(i * 31 + 7);
	transfer(k.s, k.sv[0], k.c, k.sv[1], big, bigsz);
	transfer(k.c, k.sv[1], k.s, k.sv[0], big, bigsz);
	free(big);
	conn_close(&k);
}
END_TEST

/*
 * np_tls_started: a server that has read nothing, or only part of a
 * ClientHello, has not started; once the ClientHello is in, it has.
 */
START_TEST(started_after_client_hello)
{
	struct conn k;
	int rs, rc;

	conn_open(&k);
	ck_assert_int_eq(np_tls_started(k.s), 0);
	ck_assert_int_eq(np_tls_handshake(k.s), NP_ERR_AGAIN);
	ck_assert_int_eq(np_tls_started(k.s), 0);
	/* One byte of a record header, as a slowloris sends it. */
	ck_assert_int_eq(write(k.sv[1], "\x16", 1), 1);
	ck_assert_int_eq(np_tls_handshake(k.s), NP_ERR_AGAIN);
	ck_assert_int_eq(np_tls_started(k.s), 0);
	conn_close(&k);

	conn_open(&k);
	ck_assert_int_eq(np_tls_handshake(k.c), NP_ERR_AGAIN); /* ClientHello */
	ck_assert_int_eq(np_tls_handshake(k.s), NP_ERR_AGAIN);
	ck_assert_int_eq(np_tls_started(k.s), 1);
	handshake(&k, &rs, &rc);
	ck_assert_int_eq(rs, NP_OK);
	ck_assert_int_eq(np_tls_started(k.s), 1);
	conn_close(&k);
}
END_TEST

START_TEST(pending_and_want)
{
	struct conn k;
	uint8_t b[4];
	size_t n;

	conn_open(&k);
	handshake_ok(&k);
	ck_assert_int_eq(np_tls_read(k.s, b, sizeof(b), &n), NP_ERR_AGAIN);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(np_tls_want(k.s), NP_EV_READ);
	ck_assert_int_eq(np_tls_write(k.c, "abcdefgh", 8, &n), NP_OK);
	ck_assert_uint_eq(n, 8);
	ck_assert_int_eq(np_tls_read(k.s, b, 0, &n), NP_OK);
	ck_assert_int_eq(np_tls_read(k.s, b, sizeof(b), &n), NP_OK);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(memcmp(b, "abcd", 4), 0);
	ck_assert_uint_eq(np_tls_pending(k.s), 4);
	ck_assert_int_eq(np_tls_read(k.s, b, sizeof(b), &n), NP_OK);
	ck_assert_int_eq(memcmp(b, "efgh", 4), 0);
	ck_assert_uint_eq(np_tls_pending(k.s), 0);
	conn_close(&k);
}
END_TEST

START_TEST(fingerprints)
{
	struct conn k;
	char want[64], got[64];

	ck_assert_int_eq(np_tls_cert_fingerprint(certf, want, sizeof(want)),
			 NP_OK);
	conn_open(&k);
	handshake_ok(&k);
	ck_assert_int_eq(np_tls_peer_fingerprint(k.c, got, sizeof(got)), NP_OK);
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(np_tls_check_fingerprint(k.c, want), NP_OK);
	/* The client shows no certificate. */
	ck_assert_int_eq(np_tls_peer_fingerprint(k.s, got, sizeof(got)),
			 NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_tls_check_fingerprint(k.s, want),
			 NP_ERR_FINGERPRINT);
	conn_close(&k);
}
END_TEST

START_TEST(wrong_fingerprint)
{
	struct conn k;
	char fp[64];

	ck_assert_int_eq(np_tls_cert_fingerprint(certf, fp, sizeof(fp)), NP_OK);
	conn_open(&k);
	handshake_ok(&k);
	/* One character changed. */
	fp[10] = fp[10] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(np_tls_check_fingerprint(k.c, fp), NP_ERR_FINGERPRINT);
	fp[10] = '\0'; /* a prefix */
	ck_assert_int_eq(np_tls_check_fingerprint(k.c, fp), NP_ERR_FINGERPRINT);
	ck_assert_int_eq(np_tls_check_fingerprint(k.c, ""), NP_ERR_FINGERPRINT);
	ck_assert_int_eq(np_tls_check_fingerprint(k.c, NULL),
			 NP_ERR_FINGERPRINT);
	ck_assert_int_eq(
	    np_tls_check_fingerprint(
		k.c, "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	    NP_ERR_FINGERPRINT);
	conn_close(&k);
}
END_TEST

START_TEST(channel_binding)
{
	struct conn k1, k2;
	uint8_t s1[NP_TLS_CB_LEN], c1[NP_TLS_CB_LEN];
	uint8_t s2[NP_TLS_CB_LEN], c2[NP_TLS_CB_LEN];
	static const uint8_t zero[NP_TLS_CB_LEN];

	conn_open(&k1);
	conn_open(&k2);
	handshake_ok(&k1);
	handshake_ok(&k2);
	ck_assert_int_eq(np_tls_channel_binding(k1.s, s1), NP_OK);
	ck_assert_int_eq(np_tls_channel_binding(k1.c, c1), NP_OK);
	ck_assert_int_eq(np_tls_channel_binding(k2.s, s2), NP_OK);
	ck_assert_int_eq(np_tls_channel_binding(k2.c, c2), NP_OK);
	ck_assert_int_eq(memcmp(s1, c1, NP_TLS_CB_LEN), 0);
	ck_assert_int_eq(memcmp(s2, c2, NP_TLS_CB_LEN), 0);
	ck_assert_int_ne(memcmp(s1, s2, NP_TLS_CB_LEN), 0);
	ck_assert_int_ne(memcmp(s1, zero, NP_TLS_CB_LEN), 0);
	conn_close(&k1);
	conn_close(&k2);
}
END_TEST

START_TEST(clean_close)
{
	struct conn k;
	uint8_t b[16];
	size_t n;
	int r, i;

	conn_open(&k);
	handshake_ok(&k);
	np_tls_shutdown(k.c);
	for (i = 0; i < 100; i++) {
		r = np_tls_read(k.s, b, sizeof(b), &n);
		if (r != NP_ERR_AGAIN)
			break;
		usleep(1000);
	}
	ck_assert_int_eq(r, NP_ERR_CLOSED);
	conn_close(&k);
}
END_TEST

START_TEST(eof_without_close_notify)
{
	struct conn k;
	uint8_t b[16];
	size_t n;

	conn_open(&k);
	handshake_ok(&k);
	shutdown(k.sv[1], SHUT_RDWR);
	ck_assert_int_eq(np_tls_read(k.s, b, sizeof(b), &n), NP_ERR_CLOSED);
	conn_close(&k);
}
END_TEST

START_TEST(garbage_from_peer)
{
	struct conn k;
	uint8_t b[16];
	size_t n;
	int r;

	conn_open(&k);
	handshake_ok(&k);
	ck_assert_int_eq(write(k.sv[1], "\x17\x03\x03\x00\x05hello", 10), 10);
	r = np_tls_read(k.s, b, sizeof(b), &n);
	ck_assert_int_eq(r, NP_ERR_TLS);
	conn_close(&k);
	/* Not TLS at all during the handshake. */
	conn_open(&k);
	ck_assert_int_eq(write(k.sv[1], "SSH-2.0-OpenSSH\r\n", 17), 17);
	ck_assert_int_eq(np_tls_handshake(k.s), NP_ERR_TLS);
	conn_close(&k);
}
END_TEST

/* A client that offers TLS 1.2 at most is refused by the server. */
START_TEST(tls12_client_refused)
{
	struct np_tls_ctx *sctx;
	struct np_tls *s;
	SSL_CTX *ctx;
	SSL *ssl;
	struct pollfd p[2];
	int sv[2], rs = NP_ERR_AGAIN, rc = -1, i, e;

	ck_assert_int_eq(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	ck_assert_int_eq(np_tls_server_ctx(certf, keyf, &sctx), NP_OK);
	ck_assert_int_eq(np_tls_new(sctx, sv[0], 1, &s), NP_OK);
	ck_assert_ptr_nonnull(ctx = SSL_CTX_new(TLS_client_method()));
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
	ck_assert_ptr_nonnull(ssl = SSL_new(ctx));
	SSL_set_fd(ssl, sv[1]);
	SSL_set_connect_state(ssl);
	for (i = 0; i < 100; i++) {
		if (rc != 1) {
			rc = SSL_do_handshake(ssl);
			e = SSL_get_error(ssl, rc);
			if (rc != 1 && e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE)
				break;
		}
		if (rs == NP_ERR_AGAIN)
			rs = np_tls_handshake(s);
		if (rs != NP_ERR_AGAIN && rs != NP_OK)
			break;
		p[0].fd = sv[0];
		p[0].events = POLLIN;
		p[1].fd = sv[1];
		p[1].events = POLLIN;
		poll(p, 2, 100);
	}
	ck_assert_int_eq(rs, NP_ERR_TLS);
	ck_assert_int_ne(rc, 1);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	np_tls_free(s);
	np_tls_ctx_free(sctx);
	close(sv[0]);
	close(sv[1]);
}
END_TEST

/* An error on one connection leaves another one untouched. */
START_TEST(errors_do_not_leak)
{
	struct conn good, bad;
	static const char msg[] = "still fine";

	conn_open(&good);
	conn_open(&bad);
	handshake_ok(&good);
	ck_assert_int_eq(write(bad.sv[1], "garbage garbage\n", 16), 16);
	ck_assert_int_eq(np_tls_handshake(bad.s), NP_ERR_TLS);
	transfer(good.c, good.sv[1], good.s, good.sv[0], (const uint8_t *)msg,
		 sizeof(msg));
	conn_close(&good);
	conn_close(&bad);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *files = tcase_create("files");
	TCase *conn = tcase_create("connections");

	tcase_add_checked_fixture(files, setup, teardown);
	tcase_add_test(files, selfsigned_files);
	tcase_add_test(files, symlink_refused);
	tcase_add_test(files, key_mode_and_files);
	tcase_add_test(files, key_fifo_and_owner);
	tcase_add_test(files, mismatched_key);
	suite_add_tcase(s, files);
	tcase_add_checked_fixture(conn, setup, teardown);
	tcase_add_test(conn, handshake_and_data);
	tcase_add_test(conn, started_after_client_hello);
	tcase_add_test(conn, pending_and_want);
	tcase_add_test(conn, fingerprints);
	tcase_add_test(conn, wrong_fingerprint);
	tcase_add_test(conn, channel_binding);
	tcase_add_test(conn, clean_close);
	tcase_add_test(conn, eof_without_close_notify);
	tcase_add_test(conn, garbage_from_peer);
	tcase_add_test(conn, tls12_client_refused);
	tcase_add_test(conn, errors_do_not_leak);
	tcase_set_timeout(conn, 30);
	suite_add_tcase(s, conn);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(tls_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
