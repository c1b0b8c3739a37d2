/*
 * Relay stream records: the codec (srec.c) and the relay's record mode
 * (relay.c XFORM) end to end through real sockets, with the ciphertext
 * tampered at many offsets: a flipped, dropped, repeated, reordered or
 * truncated byte must end the stream with an error and never deliver a
 * byte that was not sent.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "ev.h"
#include "relay.h"
#include "srec.h"

static uint8_t key_a[NP_SREC_KEY_LEN], key_b[NP_SREC_KEY_LEN];

static void
setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
	randombytes_buf(key_a, sizeof(key_a));
	randombytes_buf(key_b, sizeof(key_b));
	signal(SIGPIPE, SIG_IGN);
}

static struct np_srec *
mk(int cipher, const uint8_t *key, int sealing)
{
	struct np_srec *s = NULL;

	ck_assert_int_eq(np_srec_new(cipher, key, sealing, &s), NP_OK);
	return s;
}

/* ---- the codec ---- */

static void
roundtrip(int cipher)
{
	struct np_srec *w = mk(cipher, key_a, 1), *rd = mk(cipher, key_a, 0);
	uint8_t rec[NP_SREC_MAX + NP_SREC_OVERHEAD], msg[NP_SREC_MAX];
	size_t sizes[] = { 0, 1, 15, 16, 17, 1000, NP_SREC_MAX }, len, i;
	int final;

	randombytes_buf(msg, sizeof(msg));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memcpy(rec + NP_SREC_HDR, msg, sizes[i]);
		ck_assert_int_eq(np_srec_seal(w, rec, sizes[i], 0), NP_OK);
		if (sizes[i] >= 16) /* encrypted, not copied */
			ck_assert(memcmp(rec + NP_SREC_HDR, msg, 16) != 0);
		ck_assert_int_eq(np_srec_header(rec, &len, &final), NP_OK);
		ck_assert_uint_eq(len, sizes[i]);
		ck_assert_int_eq(final, 0);
		ck_assert_int_eq(np_srec_open(rd, rec, len + NP_SREC_OVERHEAD,
		    &final), NP_OK);
		ck_assert_int_eq(memcmp(rec + NP_SREC_HDR, msg, len), 0);
	}
	ck_assert_int_eq(np_srec_seal(w, rec, 0, 1), NP_OK);
	ck_assert_int_eq(np_srec_done(w), 1);
	ck_assert_int_eq(np_srec_seal(w, rec, 0, 0), NP_ERR_INVALID);
	ck_assert_int_eq(np_srec_open(rd, rec, NP_SREC_OVERHEAD, &final),
	    NP_OK);
	ck_assert_int_eq(final, 1);
	ck_assert_int_eq(np_srec_open(rd, rec, NP_SREC_OVERHEAD, &final),
	    NP_ERR_PROTO);
	np_srec_free(w);
	np_srec_free(rd);
}

START_TEST(codec_aes)
{
	roundtrip(NP_SREC_AES256GCM);
}
END_TEST

START_TEST(codec_chacha)
{
	roundtrip(NP_SREC_CHACHA20POLY1305);
}
END_TEST

START_TEST(codec_refusals)
{
	struct np_srec *w = mk(NP_SREC_AES256GCM, key_a, 1);
	struct np_srec *rd = mk(NP_SREC_AES256GCM, key_b, 0);
	struct np_srec *s = NULL;
	uint8_t rec[64] = { 0 }, big[NP_SREC_HDR] = { 0, 0, 0x80, 0x01 };
	uint8_t fin[NP_SREC_HDR] = { 0x80, 0, 0, 1 };
	size_t len;
	int final;

	ck_assert_int_eq(np_srec_new(NP_SREC_NONE, key_a, 1, &s),
	    NP_ERR_INVALID);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(np_srec_seal(w, rec, NP_SREC_MAX + 1, 0),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_srec_seal(w, rec, 3, 1), NP_ERR_INVALID);
	/* Length over the cap, final record with data. */
	ck_assert_int_eq(np_srec_header(big, &len, &final), NP_ERR_PROTO);
	ck_assert_int_eq(np_srec_header(fin, &len, &final), NP_ERR_PROTO);
	/* The wrong key: no authentication, plaintext wiped. */
	memset(rec + NP_SREC_HDR, 'x', 10);
	ck_assert_int_eq(np_srec_seal(w, rec, 10, 0), NP_OK);
	ck_assert_int_eq(np_srec_open(rd, rec, 10 + NP_SREC_OVERHEAD,
	    &final), NP_ERR_CRYPTO);
	/* A sealer does not open and an opener does not seal. */
	ck_assert_int_eq(np_srec_open(w, rec, 10 + NP_SREC_OVERHEAD,
	    &final), NP_ERR_INVALID);
	ck_assert_int_eq(np_srec_seal(rd, rec, 1, 0), NP_ERR_INVALID);
	np_srec_free(w);
	np_srec_free(rd);
	np_srec_free(NULL);
}
END_TEST

START_TEST(codec_counter)
{
	/* The same record twice: the second is opened with the next
	 * counter and fails (replay / repeat). */
	struct np_srec *w = mk(NP_SREC_CHACHA20POLY1305, key_a, 1);
	struct np_srec *rd = mk(NP_SREC_CHACHA20POLY1305, key_a, 0);
	uint8_t rec[64], copy[64];
	int final;

	memset(rec + NP_SREC_HDR, 'y', 20);
	ck_assert_int_eq(np_srec_seal(w, rec, 20, 0), NP_OK);
	memcpy(copy, rec, sizeof(copy));
	ck_assert_int_eq(np_srec_open(rd, rec, 20 + NP_SREC_OVERHEAD,
	    &final), NP_OK);
	ck_assert_int_eq(np_srec_open(rd, copy, 20 + NP_SREC_OVERHEAD,
	    &final), NP_ERR_CRYPTO);
	np_srec_free(w);
	np_srec_free(rd);
}
END_TEST

START_TEST(names_and_keys)
{
	uint8_t cpk[32], csk[32], dpk[32], dsk[32];
	uint8_t crx[32], ctx[32], drx[32], dtx[32], zero[32] = { 0 };

	ck_assert_int_eq(np_srec_cipher_parse("aes-256-gcm"),
	    NP_SREC_AES256GCM);
	ck_assert_int_eq(np_srec_cipher_parse("ChaCha20-Poly1305"),
	    NP_SREC_CHACHA20POLY1305);
	ck_assert_int_eq(np_srec_cipher_parse("rc4"), NP_SREC_NONE);
	ck_assert_int_eq(np_srec_cipher_parse(NULL), NP_SREC_NONE);
	ck_assert_str_eq(np_srec_cipher_name(NP_SREC_AES256GCM),
	    "aes-256-gcm");
	ck_assert_str_eq(np_srec_cipher_name(99), "none");
	ck_assert(np_srec_cipher_pref() == NP_SREC_AES256GCM ||
	    np_srec_cipher_pref() == NP_SREC_CHACHA20POLY1305);
	crypto_kx_keypair(cpk, csk);
	crypto_kx_keypair(dpk, dsk);
	ck_assert_int_eq(np_srec_keys_client(crx, ctx, cpk, csk, dpk), NP_OK);
	ck_assert_int_eq(np_srec_keys_device(drx, dtx, dpk, dsk, cpk), NP_OK);
	ck_assert_int_eq(memcmp(ctx, drx, 32), 0);
	ck_assert_int_eq(memcmp(crx, dtx, 32), 0);
	ck_assert(memcmp(ctx, crx, 32) != 0);
	/* A low-order peer key is refused. */
	ck_assert_int_eq(np_srec_keys_client(crx, ctx, cpk, csk, zero),
	    NP_ERR_CRYPTO);
}
END_TEST

/* ---- through the relay ---- */

struct feeder {
	int fd;
	const uint8_t *p;
	size_t len;
};

struct drain {
	int fd;
	uint8_t *p;
	size_t len, cap;
};

static int
set_nb(int fd)
{
	return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void *
feed_main(void *arg)
{
	struct feeder *f = arg;
	size_t off = 0;
	ssize_t n;

	while (off < f->len) {
		n = send(f->fd, f->p + off, f->len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the relay ended early: fine */
		off += (size_t)n;
	}
	shutdown(f->fd, SHUT_WR);
	return NULL;
}

static void *
drain_main(void *arg)
{
	struct drain *d = arg;
	ssize_t n;

	for (;;) {
		if (d->len == d->cap) {
			d->cap = d->cap ? d->cap * 2 : 65536;
			d->p = realloc(d->p, d->cap);
		}
		n = recv(d->fd, d->p + d->len, d->cap - d->len, 0);
		if (n <= 0)
			break;
		d->len += (size_t)n;
	}
	shutdown(d->fd, SHUT_WR);
	return NULL;
}

struct run {
	int result;
	int done;
	struct np_relay_stats st;
	struct np_ev *ev;
};

static void
run_done(struct np_relay *r, int result, void *arg)
{
	struct run *rn = arg;

	rn->result = result;
	rn->st = *np_relay_stats(r);
	rn->done = 1;
	np_relay_free(r);
	np_ev_stop(rn->ev);
}

/* np_relay_opts.handoff for relay_once (0: records all the way). */
static uint32_t handoff_opt;

/*
 * Pass in[0..len) through a relay whose a -> b direction uses xf (NULL:
 * plain); the bytes that came out of b go to *out.  The result is the
 * relay's.
 */
static int
relay_once(struct np_srec *xf, const uint8_t *in, size_t len, uint8_t **out,
    size_t *outlen, struct np_relay_stats *st)
{
	int A[2], B[2];
	struct feeder f;
	struct drain d;
	struct run rn;
	struct np_relay_opts o;
	struct np_relay *r = NULL;
	struct np_relay_end ea, eb;
	pthread_t tf, td;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    A), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    B), 0);
	ck_assert_int_eq(set_nb(A[1]), 0);
	ck_assert_int_eq(set_nb(B[0]), 0);
	memset(&rn, 0, sizeof(rn));
	ck_assert_ptr_nonnull(rn.ev = np_ev_new());
	memset(&o, 0, sizeof(o));
	o.xf[0] = xf;
	o.handoff = handoff_opt;
	ea.rfd = ea.wfd = A[1];
	eb.rfd = eb.wfd = B[0];
	ck_assert_int_eq(np_relay_start_ex(rn.ev, ea, eb, &o, run_done, &rn,
	    &r), NP_OK);
	f.fd = A[0];
	f.p = in;
	f.len = len;
	memset(&d, 0, sizeof(d));
	d.fd = B[1];
	ck_assert_int_eq(pthread_create(&tf, NULL, feed_main, &f), 0);
	ck_assert_int_eq(pthread_create(&td, NULL, drain_main, &d), 0);
	while (!rn.done)
		ck_assert_int_eq(np_ev_run(rn.ev), NP_OK);
	/* The relay is over: wake threads blocked on its sockets. */
	shutdown(A[1], SHUT_RDWR);
	shutdown(B[0], SHUT_RDWR);
	pthread_join(tf, NULL);
	pthread_join(td, NULL);
	close(A[0]);
	close(A[1]);
	close(B[0]);
	close(B[1]);
	np_ev_free(rn.ev);
	*out = d.p;
	*outlen = d.len;
	if (st != NULL)
		*st = rn.st;
	return rn.result;
}

static uint8_t *plain;
static size_t plain_len;
static uint8_t *wire;
static size_t wire_len;

/* A stream to tamper with: some of it in small records (a slow sender),
 * most of it bulk. */
static void
make_stream(int cipher)
{
	struct np_relay_stats st;
	size_t i;

	plain_len = 300 * 1000 + 7;
	plain = malloc(plain_len);
	for (i = 0; i < plain_len; i++)
		plain[i] = (uint8_t)(i * 131 + (i >> 9));
	ck_assert_int_eq(relay_once(mk(cipher, key_a, 1), plain, plain_len,
	    &wire, &wire_len, &st), NP_RELAY_DONE);
	ck_assert_uint_gt(wire_len, plain_len);
	ck_assert_uint_le(wire_len, plain_len + (plain_len / 1000 + 64) *
	    NP_SREC_OVERHEAD);
}

static void
free_stream(void)
{
	free(plain);
	free(wire);
	plain = wire = NULL;
}

/* Open t[0..tlen); return the result, check the output is a prefix. */
static int
open_check(int cipher, const uint8_t *t, size_t tlen, size_t *outlen,
    const char **what)
{
	struct np_relay_stats st;
	uint8_t *out = NULL;
	size_t n = 0;
	int res;

	res = relay_once(mk(cipher, key_a, 0), t, tlen, &out, &n, &st);
	ck_assert_uint_le(n, plain_len);
	ck_assert_int_eq(memcmp(out, plain, n), 0);
	free(out);
	*outlen = n;
	*what = st.err_what;
	return res;
}

static void
tamper_all(int cipher)
{
	uint8_t *t;
	size_t offs[400], noff = 0, i, n, k;
	const char *what;

	make_stream(cipher);
	t = malloc(wire_len);
	/* Untouched: everything, cleanly. */
	ck_assert_int_eq(open_check(cipher, wire, wire_len, &n, &what),
	    NP_RELAY_DONE);
	ck_assert_uint_eq(n, plain_len);
	/* Flipped bytes: every header byte of the first records, the
	 * neighbourhood of record boundaries, the final record, random. */
	for (k = 0; k < 48; k++)
		offs[noff++] = k;
	for (k = 1; k <= 6; k++) {
		size_t b = k * (NP_SREC_MAX + NP_SREC_OVERHEAD);

		if (b + 2 < wire_len) {
			offs[noff++] = b - 1;
			offs[noff++] = b;
			offs[noff++] = b + 3;
			offs[noff++] = b + 4;
		}
	}
	for (k = 1; k <= NP_SREC_OVERHEAD; k++)
		offs[noff++] = wire_len - k;
	while (noff < sizeof(offs) / sizeof(offs[0]))
		offs[noff++] = randombytes_uniform((uint32_t)wire_len);
	for (i = 0; i < noff; i++) {
		memcpy(t, wire, wire_len);
		t[offs[i]] ^= (uint8_t)(1u << (i % 8));
		ck_assert_msg(open_check(cipher, t, wire_len, &n, &what) ==
		    NP_RELAY_ERROR, "flip at %zu delivered", offs[i]);
		ck_assert_ptr_nonnull(what);
	}
	/* Truncated anywhere, including right before the final record. */
	for (i = 0; i < 120; i++) {
		size_t cut = i < 20 ? wire_len - 1 - i :
		    randombytes_uniform((uint32_t)wire_len);

		ck_assert_msg(open_check(cipher, wire, cut, &n, &what) ==
		    NP_RELAY_ERROR, "cut at %zu passed", cut);
		ck_assert_ptr_nonnull(what);
	}
	ck_assert_int_eq(open_check(cipher, wire, wire_len - NP_SREC_OVERHEAD,
	    &n, &what), NP_RELAY_ERROR);
	ck_assert_uint_eq(n, plain_len); /* all data, but no clean end */
	ck_assert_ptr_nonnull(strstr(what, "truncated"));
	/* Bytes after the final record. */
	memcpy(t, wire, wire_len);
	t = realloc(t, wire_len + 1);
	t[wire_len] = 0;
	ck_assert_int_eq(open_check(cipher, t, wire_len + 1, &n, &what),
	    NP_RELAY_ERROR);
	free(t);
	free_stream();
}

START_TEST(tamper_aes)
{
	tamper_all(NP_SREC_AES256GCM);
}
END_TEST

START_TEST(tamper_chacha)
{
	tamper_all(NP_SREC_CHACHA20POLY1305);
}
END_TEST

/* Records as the sealer makes them, laid out one by one. */
static size_t
record_at(const uint8_t *w, size_t off)
{
	size_t len;
	int final;

	ck_assert_int_eq(np_srec_header(w + off, &len, &final), NP_OK);
	return len + NP_SREC_OVERHEAD;
}

START_TEST(reorder_drop_repeat)
{
	size_t r0, r1, n;
	uint8_t *t;
	const char *what;

	make_stream(NP_SREC_AES256GCM);
	r0 = record_at(wire, 0);
	r1 = record_at(wire, r0);
	t = malloc(wire_len + r0);
	/* Swap records 0 and 1. */
	memcpy(t, wire + r0, r1);
	memcpy(t + r1, wire, r0);
	memcpy(t + r0 + r1, wire + r0 + r1, wire_len - r0 - r1);
	ck_assert_int_eq(open_check(NP_SREC_AES256GCM, t, wire_len, &n,
	    &what), NP_RELAY_ERROR);
	ck_assert_uint_eq(n, 0);
	/* Drop record 1. */
	memcpy(t, wire, r0);
	memcpy(t + r0, wire + r0 + r1, wire_len - r0 - r1);
	ck_assert_int_eq(open_check(NP_SREC_AES256GCM, t, wire_len - r1, &n,
	    &what), NP_RELAY_ERROR);
	ck_assert_uint_le(n, r0 - NP_SREC_OVERHEAD);
	/* Repeat record 0. */
	memcpy(t, wire, r0);
	memcpy(t + r0, wire, wire_len);
	ck_assert_int_eq(open_check(NP_SREC_AES256GCM, t, wire_len + r0, &n,
	    &what), NP_RELAY_ERROR);
	ck_assert_uint_le(n, r0 - NP_SREC_OVERHEAD);
	free(t);
	free_stream();
}
END_TEST

START_TEST(empty_stream)
{
	uint8_t *out = NULL, *back = NULL;
	size_t n = 0, m = 0;

	/* Nothing sent: just the final record, which opens to nothing. */
	ck_assert_int_eq(relay_once(mk(NP_SREC_AES256GCM, key_b, 1),
	    (const uint8_t *)"", 0, &out, &n, NULL), NP_RELAY_DONE);
	ck_assert_uint_eq(n, NP_SREC_OVERHEAD);
	ck_assert_int_eq(relay_once(mk(NP_SREC_AES256GCM, key_b, 0), out, n,
	    &back, &m, NULL), NP_RELAY_DONE);
	ck_assert_uint_eq(m, 0);
	free(out);
	free(back);
	/* Nothing at all: truncated. */
	ck_assert_int_eq(relay_once(mk(NP_SREC_AES256GCM, key_b, 0),
	    (const uint8_t *)"", 0, &back, &m, NULL), NP_RELAY_ERROR);
	free(back);
}
END_TEST

/*
 * Handoff: the sealer seals exactly the first H bytes, then the handoff
 * record, then passes the rest as it is; the opener that agreed gives
 * back the whole stream; one that did not refuses the handoff record.
 * Flips in the records still fail; the tail is no longer np's to check.
 */
START_TEST(handoff)
{
	static const uint32_t hs[] = {1, 1000, NP_SREC_MAX, 65536, 100000};
	const size_t ls[] = {0, 500, 65536, 65537, 300007};
	size_t hi, li, i, n, m, tail, rec_end;
	uint8_t *in, *w = NULL, *back = NULL;
	struct np_relay_stats st;
	size_t len, hl;
	int final, res;

	in = malloc(300007);
	for (i = 0; i < 300007; i++)
		in[i] = (uint8_t)(i * 7 + (i >> 11));
	for (hi = 0; hi < sizeof(hs) / sizeof(hs[0]); hi++) {
		for (li = 0; li < sizeof(ls) / sizeof(ls[0]); li++) {
			uint32_t h = hs[hi];
			size_t l = ls[li];

			handoff_opt = h;
			ck_assert_int_eq(relay_once(mk(NP_SREC_AES256GCM,
			    key_a, 1), in, l, &w, &n, NULL), NP_RELAY_DONE);
			if (l < h) { /* ended before the handoff: final */
				ck_assert_int_eq(np_srec_header(w + n -
				    NP_SREC_OVERHEAD, &hl, &final), NP_OK);
				ck_assert_int_eq(final, NP_SREC_IS_FINAL);
			} else {
				tail = l - h;
				rec_end = n - tail;
				ck_assert_int_eq(memcmp(w + rec_end, in + h,
				    tail), 0);
				ck_assert_int_eq(np_srec_header(w + rec_end -
				    NP_SREC_OVERHEAD, &hl, &final), NP_OK);
				ck_assert_int_eq(final, NP_SREC_IS_HANDOFF);
				/* the records carried exactly h bytes */
				for (i = 0, m = 0; i < rec_end;
				    i += len + NP_SREC_OVERHEAD) {
					ck_assert_int_eq(np_srec_header(w + i,
					    &len, &final), NP_OK);
					m += len;
				}
				ck_assert_uint_eq(m, h);
			}
			res = relay_once(mk(NP_SREC_AES256GCM, key_a, 0), w,
			    n, &back, &m, NULL);
			ck_assert_msg(res == NP_RELAY_DONE && m == l &&
			    memcmp(back, in, l) == 0, "handoff %u, %zu bytes",
			    (unsigned)h, l);
			free(back);
			if (l >= h && h == 1000 && l == 300007) {
				/* An opener that did not agree. */
				handoff_opt = 0;
				res = relay_once(mk(NP_SREC_AES256GCM, key_a,
				    0), w, n, &back, &m, &st);
				ck_assert_int_eq(res, NP_RELAY_ERROR);
				ck_assert_ptr_nonnull(strstr(st.err_what,
				    "handoff"));
				ck_assert_uint_le(m, h);
				free(back);
				handoff_opt = h;
				/* A flip in a record, in the handoff record's
				 * header: refused; in the tail: np passes it
				 * (ssh's transport is what checks it there). */
				tail = l - h;
				rec_end = n - tail;
				w[10] ^= 1;
				ck_assert_int_eq(relay_once(mk(
				    NP_SREC_AES256GCM, key_a, 0), w, n, &back,
				    &m, NULL), NP_RELAY_ERROR);
				free(back);
				w[10] ^= 1;
				w[rec_end - NP_SREC_OVERHEAD] ^= 0x40;
				ck_assert_int_eq(relay_once(mk(
				    NP_SREC_AES256GCM, key_a, 0), w, n, &back,
				    &m, NULL), NP_RELAY_ERROR);
				ck_assert_uint_le(m, h);
				free(back);
				w[rec_end - NP_SREC_OVERHEAD] ^= 0x40;
				w[rec_end + 5] ^= 1;
				ck_assert_int_eq(relay_once(mk(
				    NP_SREC_AES256GCM, key_a, 0), w, n, &back,
				    &m, NULL), NP_RELAY_DONE);
				ck_assert_uint_eq(m, l);
				free(back);
			}
			free(w);
		}
	}
	handoff_opt = 0;
	free(in);
}
END_TEST

static Suite *
srec_suite(void)
{
	Suite *s = suite_create("srec");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, codec_aes);
	tcase_add_test(tc, codec_chacha);
	tcase_add_test(tc, codec_refusals);
	tcase_add_test(tc, codec_counter);
	tcase_add_test(tc, names_and_keys);
	tcase_add_test(tc, tamper_aes);
	tcase_add_test(tc, tamper_chacha);
	tcase_add_test(tc, reorder_drop_repeat);
	tcase_add_test(tc, empty_stream);
	tcase_add_test(tc, handoff);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(srec_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
