/*
 * Control-plane client against a tiny scripted TLS server in a child
 * process (lib/tls.h, blocking with poll), plus the pure helpers.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>
#include <sodium.h>

#include "buf.h"
#include "cpc.h"
#include "err.h"
#include "ev.h"
#include "frame.h"
#include "key.h"
#include "log.h"
#include "msg.h"
#include "tls.h"

/* ---------- the scripted server (child side) ---------- */

struct fix {
	char dir[64];
	char crt[128];
	char key[128];
	char fp[NP_FP_MAX];
	int lfd;
	char port[8];
	struct np_key *client;
	pid_t pid;
};

struct sconn {
	int fd;
	struct np_tls *t;
	struct np_buf *in;
	uint8_t cb[NP_TLS_CB_LEN];
	uint8_t nonce[32];
	size_t app_bytes; /* application bytes read */
};

static int
wait_fd(int fd, uint32_t want, int ms)
{
	struct pollfd p = { .fd = fd, .events = 0 };

	if (want & NP_EV_READ) {
		p.events |= POLLIN;
	}
	if (want & NP_EV_WRITE) {
		p.events |= POLLOUT;
	}
	return poll(&p, 1, ms) > 0 ? 0 : -1;
}

/* Accept one connection within ms and finish the TLS handshake. */
static int
s_accept(struct fix *f, struct sconn *s, int ms)
{
	struct np_tls_ctx *ctx = NULL;
	int r;

	memset(s, 0, sizeof(*s));
	if (wait_fd(f->lfd, NP_EV_READ, ms) != 0) {
		return -1;
	}
	s->fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s->fd == -1 || np_tls_server_ctx(f->crt, f->key, &ctx) != NP_OK ||
	    np_tls_new(ctx, s->fd, 1, &s->t) != NP_OK) {
		return -1;
	}
	s->in = np_buf_new(4 + NP_FRAME_MAX);
	while ((r = np_tls_handshake(s->t)) == NP_ERR_AGAIN) {
		if (wait_fd(s->fd, np_tls_want(s->t), 3000) != 0) {
			return -1;
		}
	}
	if (r != NP_OK) {
		return -1;
	}
	return np_tls_channel_binding(s->t, s->cb) == NP_OK ? 0 : -1;
}

static int
s_send_raw(struct sconn *s, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t n;
	int r;

	while (len > 0) {
		r = np_tls_write(s->t, b, len, &n);
		if (r == NP_ERR_AGAIN) {
			if (wait_fd(s->fd, np_tls_want(s->t), 3000) != 0) {
				return -1;
			}
			continue;
		}
		if (r != NP_OK) {
			return -1;
		}
		b += n;
		len -= n;
	}
	return 0;
}

/* Send one frame holding the JSON text. */
static int
s_send(struct sconn *s, const char *json)
{
	uint8_t hdr[4];
	size_t n = strlen(json);

	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
	if (s_send_raw(s, hdr, 4) != 0) {
		return -1;
	}
	return s_send_raw(s, json, n);
}

/* Receive one frame that must validate as client -> server.  Returns
 * 0, or -2 on a clean close, -1 on anything else. */
static int
s_recv(struct sconn *s, struct json_object **out, const char **type, int ms)
{
	uint8_t *p;
	size_t n;
	int r;

	*out = NULL;
	for (;;) {
		r = np_frame_decode(s->in, out);
		if (r == NP_OK) {
			return np_msg_validate(*out, NP_MSG_TO_SERVER, type) ==
			    NP_OK ? 0 : -1;
		}
		if (r != NP_ERR_AGAIN ||
		    np_buf_reserve(s->in, 4096, &p) != NP_OK) {
			return -1;
		}
		r = np_tls_read(s->t, p, 4096, &n);
		if (r != NP_OK) {
			n = 0;
		}
		np_buf_unreserve(s->in, 4096 - n);
		s->app_bytes += n;
		if (r == NP_ERR_AGAIN) {
			if (wait_fd(s->fd, np_tls_want(s->t), ms) != 0) {
				return -1;
			}
			continue;
		}
		if (r == NP_ERR_CLOSED) {
			return -2;
		}
		if (r != NP_OK) {
			/* A reset after the client's close also counts. */
			return s->app_bytes == 0 ? -2 : -1;
		}
	}
}

static void
s_close(struct sconn *s)
{
	np_tls_free(s->t);
	if (s->fd > 0) {
		close(s->fd);
	}
	np_buf_free(s->in);
	s->t = NULL;
	s->in = NULL;
}

static int
s_hello(struct sconn *s)
{
	char b64[64], json[160];

	randombytes_buf(s->nonce, sizeof(s->nonce));
	np_b64_encode(s->nonce, sizeof(s->nonce), b64, sizeof(b64));
	snprintf(json, sizeof(json),
	    "{\"t\":\"hello\",\"v\":1,\"nonce\":\"%s\"}", b64);
	return s_send(s, json);
}

/* hello, then the client's auth (checked against f->client), welcome. */
static int
s_auth(struct fix *f, struct sconn *s)
{
	struct json_object *o;
	struct np_buf *m = np_buf_new(1024);
	const char *t;
	uint8_t sig[NP_SIG_LEN];
	size_t n;
	int ok;

	if (s_hello(s) != 0 || s_recv(s, &o, &t, 3000) != 0) {
		return -1;
	}
	ok = strcmp(t, "auth") == 0 &&
	    strcmp(np_msg_str(o, "id"), np_key_name(f->client)) == 0 &&
	    np_msg_b64(o, "sig", sig, sizeof(sig), &n) == NP_OK &&
	    np_auth_message(s->nonce, s->cb, np_key_name(f->client), m) ==
	    NP_OK &&
	    np_sig_verify(np_key_pk(f->client), np_buf_ptr(m), np_buf_len(m),
	    sig) == NP_OK;
	json_object_put(o);
	np_buf_free(m);
	if (!ok) {
		return -1;
	}
	return s_send(s, "{\"t\":\"welcome\",\"id\":\"@alice\"}");
}

/* Expect a request of type want; *rid gets its rid. */
static int
s_expect(struct sconn *s, const char *want, int64_t *rid)
{
	struct json_object *o;
	const char *t;
	int ok;

	if (s_recv(s, &o, &t, 3000) != 0) {
		return -1;
	}
	ok = strcmp(t, want) == 0 &&
	    (rid == NULL || np_msg_int(o, "rid", rid) == NP_OK);
	json_object_put(o);
	return ok ? 0 : -1;
}

/* ---------- fixture (parent side) ---------- */

static void
fix_setup(struct fix *f)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	uint8_t seed[32];

	memset(f, 0, sizeof(*f));
	ck_assert_int_eq(np_crypto_init(), NP_OK);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_cpc.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->crt, sizeof(f->crt), "%s/tls.crt", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/tls.key", f->dir);
	ck_assert_int_eq(np_tls_make_selfsigned(f->crt, f->key, "test"),
	    NP_OK);
	ck_assert_int_eq(np_tls_cert_fingerprint(f->crt, f->fp,
	    sizeof(f->fp)), NP_OK);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 8), 0);
	ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
	snprintf(f->port, sizeof(f->port), "%u", ntohs(sa.sin_port));
	memset(seed, 7, sizeof(seed));
	ck_assert_int_eq(np_key_from_seed("@alice", seed, &f->client), NP_OK);
}

/* Run scenario in a child; it exits with the scenario's result. */
static void
fix_serve(struct fix *f, int (*scenario)(struct fix *))
{
	f->pid = fork();
	ck_assert_int_ge(f->pid, 0);
	if (f->pid == 0) {
		_exit(scenario(f) == 0 ? 0 : 1);
	}
}

/* The child's exit status (0: the server saw what it expected). */
static int
fix_done(struct fix *f)
{
	int st = 0;
	char cmd[128];

	ck_assert_int_eq(waitpid(f->pid, &st, 0), f->pid);
	close(f->lfd);
	np_key_free(f->client);
	snprintf(cmd, sizeof(cmd), "%s/tls.crt", f->dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/tls.key", f->dir);
	unlink(cmd);
	rmdir(f->dir);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

static void
conf_for(struct fix *f, struct np_cpc_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->host = "127.0.0.1";
	c->port = f->port;
	c->fingerprint = f->fp;
	c->key = f->client;
	c->connect_timeout_ms = 3000;
}

/* ---------- scenarios ---------- */

/* The client must close without sending one application byte, and not
 * come back. */
static int
sc_no_bytes(struct fix *f)
{
	struct sconn s, s2;
	struct json_object *o;
	const char *t;
	int r;

	if (s_accept(f, &s, 3000) != 0) {
		return -1;
	}
	r = s_recv(&s, &o, &t, 3000);
	json_object_put(o);
	if (r != -2 || s.app_bytes != 0) {
		return -1;
	}
	s_close(&s);
	if (s_accept(f, &s2, 800) == 0) {
		return -1; /* retried: wrong */
	}
	return 0;
}

struct states {
	int ups;
	int downs;
	int last_err;
	int stopped;
	int free_on_down;
};

static void
state_cb(struct np_cpc *c, int up, int err, int stopped, void *arg)
{
	struct states *st = arg;

	if (up) {
		st->ups++;
	} else {
		st->downs++;
		st->last_err = err;
		st->stopped = stopped;
		if (st->free_on_down) {
			np_cpc_free(c);
		}
	}
}

START_TEST(fingerprint_mismatch)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct states st = { 0 };
	char wrong[NP_FP_MAX];
	uint8_t junk[32] = { 1 };

	fix_setup(&f);
	fix_serve(&f, sc_no_bytes);
	np_fingerprint(junk, sizeof(junk), wrong, sizeof(wrong));
	conf_for(&f, &conf);
	conf.fingerprint = wrong;
	conf.reconnect = 1;
	conf.backoff_min_ms = 10;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_ERR_FINGERPRINT);
	ck_assert_int_eq(st.last_err, NP_ERR_FINGERPRINT);
	ck_assert_int_eq(st.stopped, 1);
	ck_assert_ptr_nonnull(strstr(np_cpc_detail(c), wrong));
	ck_assert_ptr_nonnull(strstr(np_cpc_detail(c), f.fp));
	/* No retry even with reconnect on: run the loop a while. */
	for (int i = 0; i < 10; i++) {
		np_ev_run_once(ev, 50);
	}
	ck_assert_int_eq(st.downs, 1);
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

static int
sc_lookup_ping(struct fix *f)
{
	struct sconn s;
	char json[512], pk[64], old[64], sig[128];
	uint8_t raw[64];
	int64_t rid;

	if (s_accept(f, &s, 3000) != 0 || s_auth(f, &s) != 0 ||
	    s_expect(&s, "lookup", &rid) != 0) {
		return -1;
	}
	np_b64_encode(np_key_pk(f->client), 32, pk, sizeof(pk));
	memset(raw, 3, sizeof(raw));
	np_b64_encode(raw, 32, old, sizeof(old));
	np_b64_encode(raw, 64, sig, sizeof(sig));
	snprintf(json, sizeof(json), "{\"t\":\"result\",\"rid\":%lld,"
	    "\"id\":\"@alice\",\"pk\":\"%s\",\"rot\":[{\"old\":\"%s\","
	    "\"new\":\"%s\",\"sig\":\"%s\"}]}", (long long)rid, pk, old, pk,
	    sig);
	if (s_send(&s, json) != 0 || s_expect(&s, "ping", &rid) != 0) {
		return -1;
	}
	snprintf(json, sizeof(json), "{\"t\":\"result\",\"rid\":%lld,"
	    "\"ts\":12345}", (long long)rid);
	if (s_send(&s, json) != 0 || s_expect(&s, "lookup", &rid) != 0) {
		return -1;
	}
	snprintf(json, sizeof(json), "{\"t\":\"error\",\"rid\":%lld,"
	    "\"code\":\"not_found\",\"msg\":\"no such identity\"}",
	    (long long)rid);
	if (s_send(&s, json) != 0) {
		return -1;
	}
	/* Then the client closes cleanly. */
	struct json_object *o;
	const char *t;
	return s_recv(&s, &o, &t, 3000) == -2 ? 0 : -1;
}

START_TEST(auth_lookup_ping)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc_lookup_res res;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	int64_t ts = 0;

	fix_setup(&f);
	fix_serve(&f, sc_lookup_ping);
	conf_for(&f, &conf);
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	ck_assert(np_cpc_is_up(c));
	ck_assert_int_eq(np_cpc_lookup_sync(c, "@alice", 3000, &res), NP_OK);
	ck_assert_str_eq(res.id, "@alice");
	ck_assert_mem_eq(res.pk, np_key_pk(f.client), NP_PK_LEN);
	ck_assert_uint_eq(res.nrot, 1);
	ck_assert_uint_eq(res.rot[0].old_pk[0], 3);
	ck_assert_int_eq(np_cpc_ping_sync(c, 3000, &ts), NP_OK);
	ck_assert_int_eq(ts, 12345);
	ck_assert_int_eq(np_cpc_lookup_sync(c, "@alice", 3000, &res),
	    NP_ERR_NOT_FOUND);
	ck_assert_ptr_nonnull(strstr(np_cpc_detail(c), "not_found"));
	np_cpc_stop(c);
	ck_assert(!np_cpc_is_up(c));
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

/* Read a ping, then drop the connection without answering. */
static int
sc_drop_pending(struct fix *f)
{
	struct sconn s;
	int64_t rid;

	if (s_accept(f, &s, 3000) != 0 || s_auth(f, &s) != 0 ||
	    s_expect(&s, "ping", &rid) != 0) {
		return -1;
	}
	s_close(&s);
	return 0;
}

struct got {
	int n;
	int r;
};

static void
got_cb(struct np_cpc *c, const struct np_cpc_result *res, void *arg)
{
	struct got *g = arg;

	g->n++;
	g->r = res->r;
}

START_TEST(pending_fails_closed)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct got g = { 0, 0 };
	struct states st = { 0 };

	fix_setup(&f);
	fix_serve(&f, sc_drop_pending);
	conf_for(&f, &conf);
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	ck_assert_int_eq(st.ups, 1);
	ck_assert_int_eq(np_cpc_ping(c, got_cb, &g, NULL), NP_OK);
	for (int i = 0; i < 100 && g.n == 0; i++) {
		np_ev_run_once(ev, 50);
	}
	ck_assert_int_eq(g.n, 1);
	ck_assert_int_eq(g.r, NP_ERR_CLOSED);
	ck_assert_int_eq(st.downs, 1);
	ck_assert_int_eq(st.stopped, 1); /* reconnect is off */
	/* Requests on a closed client fail at once. */
	ck_assert_int_eq(np_cpc_ping(c, got_cb, &g, NULL), NP_ERR_CLOSED);
	ck_assert_int_eq(np_cpc_ack(c, 1), NP_ERR_CLOSED);
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

static int
sc_auth_refused(struct fix *f)
{
	struct sconn s, s2;
	struct json_object *o;
	const char *t;

	if (s_accept(f, &s, 3000) != 0 || s_hello(&s) != 0 ||
	    s_recv(&s, &o, &t, 3000) != 0) {
		return -1;
	}
	json_object_put(o);
	if (s_send(&s, "{\"t\":\"error\",\"code\":\"auth\","
	    "\"msg\":\"bad signature\"}") != 0) {
		return -1;
	}
	s_close(&s);
	/* backoff_max is 5 s: no second attempt within 1 s. */
	return s_accept(f, &s2, 1000) == 0 ? -1 : 0;
}

START_TEST(auth_refused_backs_off)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct states st = { 0 };

	fix_setup(&f);
	fix_serve(&f, sc_auth_refused);
	conf_for(&f, &conf);
	conf.reconnect = 1;
	conf.backoff_min_ms = 10;
	conf.backoff_max_ms = 5000;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_state_cb(c, state_cb, &st);
	np_cpc_start(c);
	for (int i = 0; i < 60 && st.downs == 0; i++) {
		np_ev_run_once(ev, 50);
	}
	ck_assert_int_eq(st.last_err, NP_ERR_AUTH);
	ck_assert_int_eq(st.stopped, 0);
	ck_assert_ptr_nonnull(strstr(np_cpc_detail(c), "bad signature"));
	for (int i = 0; i < 20; i++) {
		np_ev_run_once(ev, 50);
	}
	ck_assert_int_eq(st.downs, 1);
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

static int
sc_enroll(struct fix *f)
{
	struct sconn s;
	struct json_object *o;
	struct np_buf *m = np_buf_new(1024);
	const char *t;
	uint8_t sig[NP_SIG_LEN], pk[NP_PK_LEN];
	size_t n;
	int ok;

	if (s_accept(f, &s, 3000) != 0 || s_hello(&s) != 0) {
		return -1;
	}
	if (s_recv(&s, &o, &t, 3000) != 0) {
		return -1;
	}
	ok = strcmp(t, "enroll") == 0 &&
	    strcmp(np_msg_str(o, "token"), "tok-123") == 0 &&
	    np_msg_b64(o, "pk", pk, sizeof(pk), &n) == NP_OK &&
	    memcmp(pk, np_key_pk(f->client), NP_PK_LEN) == 0 &&
	    np_msg_b64(o, "sig", sig, sizeof(sig), &n) == NP_OK &&
	    np_enroll_message(s.nonce, s.cb, pk, "@alice", m) == NP_OK &&
	    np_sig_verify(pk, np_buf_ptr(m), np_buf_len(m), sig) == NP_OK;
	json_object_put(o);
	np_buf_free(m);
	if (!ok) {
		return -1;
	}
	return s_send(&s, "{\"t\":\"welcome\",\"id\":\"@alice\"}");
}

START_TEST(enroll_signs_pk_and_binding)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();

	fix_setup(&f);
	fix_serve(&f, sc_enroll);
	conf_for(&f, &conf);
	conf.token = "tok-123";
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

static int
sc_token_refused(struct fix *f)
{
	struct sconn s;
	struct json_object *o;
	const char *t;

	if (s_accept(f, &s, 3000) != 0 || s_hello(&s) != 0 ||
	    s_recv(&s, &o, &t, 3000) != 0) {
		return -1;
	}
	json_object_put(o);
	return s_send(&s, "{\"t\":\"error\",\"code\":\"token\","
	    "\"msg\":\"token already used\"}");
}

START_TEST(token_refused_stops)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct states st = { 0 };

	fix_setup(&f);
	fix_serve(&f, sc_token_refused);
	conf_for(&f, &conf);
	conf.token = "tok-123";
	conf.reconnect = 1;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_ERR_TOKEN);
	ck_assert_int_eq(st.stopped, 1);
	ck_assert_ptr_nonnull(strstr(np_cpc_detail(c), "server: token"));
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

/* Two connections: the client must re-issue monitor on the second. */
static int
sc_monitor_twice(struct fix *f)
{
	struct sconn s;
	struct json_object *o;
	const char *t;
	char json[256];
	int64_t rid, seq;
	int ok;

	for (int i = 1; i <= 2; i++) {
		if (s_accept(f, &s, 3000) != 0 || s_auth(f, &s) != 0 ||
		    s_expect(&s, "monitor", &rid) != 0) {
			return -1;
		}
		snprintf(json, sizeof(json), "{\"t\":\"result\",\"rid\":%lld}",
		    (long long)rid);
		if (s_send(&s, json) != 0) {
			return -1;
		}
		snprintf(json, sizeof(json), "{\"t\":\"msg\",\"seq\":%d,"
		    "\"from\":\"@bob\",\"mid\":\"%032d\",\"ts\":5,"
		    "\"box\":\"AAEC\"}", 10 + i, i);
		if (s_send(&s, json) != 0 || s_recv(&s, &o, &t, 3000) != 0) {
			return -1;
		}
		ok = strcmp(t, "ack") == 0 &&
		    np_msg_int(o, "seq", &seq) == NP_OK && seq == 10 + i;
		json_object_put(o);
		if (!ok) {
			return -1;
		}
		s_close(&s);
	}
	return 0;
}

struct pushes {
	int n;
	int64_t seq[4];
	size_t len;
	uint8_t box[3];
};

static void
push_cb(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct pushes *p = arg;

	if (p->n < 4) {
		p->seq[p->n] = m->seq;
	}
	p->n++;
	p->len = m->box_len;
	memcpy(p->box, m->box, m->box_len < 3 ? m->box_len : 3);
	ck_assert_str_eq(m->from, "@bob");
	np_cpc_ack(c, m->seq);
}

START_TEST(monitor_reissued_after_reconnect)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct pushes p;
	struct states st = { 0 };
	struct got g = { 0, 0 };

	memset(&p, 0, sizeof(p));
	fix_setup(&f);
	fix_serve(&f, sc_monitor_twice);
	conf_for(&f, &conf);
	conf.reconnect = 1;
	conf.backoff_min_ms = 10;
	conf.backoff_max_ms = 50;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_msg_cb(c, push_cb, &p);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	ck_assert_int_eq(np_cpc_monitor(c, got_cb, &g), NP_OK);
	for (int i = 0; i < 200 && p.n < 2; i++) {
		np_ev_run_once(ev, 20);
	}
	ck_assert_int_eq(p.n, 2);
	ck_assert_int_eq(p.seq[0], 11);
	ck_assert_int_eq(p.seq[1], 12);
	ck_assert_uint_eq(p.len, 3);
	ck_assert_uint_eq(p.box[2], 2);
	ck_assert_int_eq(g.n, 1);
	ck_assert_int_eq(g.r, NP_OK);
	ck_assert_int_eq(st.ups, 2);
	/* Let the acks go out before the child checks them. */
	for (int i = 0; i < 20; i++) {
		np_ev_run_once(ev, 10);
	}
	ck_assert_int_eq(fix_done(&f), 0);
	np_cpc_free(c);
	np_ev_free(ev);
}
END_TEST

/* Reply tags: monitor carries the configured tag on every connection,
 * send_tag carries its tag, pushes hand their tag (or NULL) up. */
static int
s_expect_tag(struct sconn *s, const char *want, const char *tag,
    int64_t *rid)
{
	struct json_object *o;
	const char *t, *got;
	int ok;

	if (s_recv(s, &o, &t, 3000) != 0) {
		return -1;
	}
	got = np_msg_str(o, "tag");
	ok = strcmp(t, want) == 0 && np_msg_int(o, "rid", rid) == NP_OK &&
	    (tag == NULL ? got == NULL : got != NULL && strcmp(got, tag) == 0);
	json_object_put(o);
	return ok ? 0 : -1;
}

static int
s_result(struct sconn *s, int64_t rid)
{
	char json[64];

	snprintf(json, sizeof(json), "{\"t\":\"result\",\"rid\":%lld}",
	    (long long)rid);
	return s_send(s, json);
}

static int
sc_tags(struct fix *f)
{
	struct sconn s;
	int64_t rid;

	if (s_accept(f, &s, 3000) != 0 || s_auth(f, &s) != 0 ||
	    s_expect_tag(&s, "monitor", "mytag01", &rid) != 0 ||
	    s_result(&s, rid) != 0) {
		return -1;
	}
	if (s_send(&s, "{\"t\":\"msg\",\"seq\":1,\"from\":\"@bob\",\"mid\":"
	    "\"00000000000000000000000000000001\",\"ts\":5,\"box\":\"AAEC\","
	    "\"tag\":\"mytag01\"}") != 0 ||
	    s_send(&s, "{\"t\":\"msg\",\"seq\":2,\"from\":\"@bob\",\"mid\":"
	    "\"00000000000000000000000000000002\",\"ts\":5,"
	    "\"box\":\"AAEC\"}") != 0) {
		return -1;
	}
	if (s_expect_tag(&s, "send", "peer5", &rid) != 0 ||
	    s_result(&s, rid) != 0 ||
	    s_expect_tag(&s, "send", NULL, &rid) != 0 ||
	    s_result(&s, rid) != 0) {
		return -1;
	}
	s_close(&s);
	/* The reconnect monitors with the same tag. */
	if (s_accept(f, &s, 3000) != 0 || s_auth(f, &s) != 0 ||
	    s_expect_tag(&s, "monitor", "mytag01", &rid) != 0 ||
	    s_result(&s, rid) != 0) {
		return -1;
	}
	s_close(&s);
	return 0;
}

struct tagged {
	int n;
	char tag[2][40];
	int has[2];
};

static void
tag_push_cb(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct tagged *p = arg;

	if (p->n < 2) {
		p->has[p->n] = m->tag != NULL;
		snprintf(p->tag[p->n], sizeof(p->tag[p->n]), "%s",
		    m->tag != NULL ? m->tag : "");
	}
	p->n++;
}

START_TEST(monitor_and_send_tags)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct states st = { 0 };
	struct tagged p;
	char tag[16];
	static const uint8_t box[3] = { 1, 2, 3 };

	memset(&p, 0, sizeof(p));
	fix_setup(&f);
	fix_serve(&f, sc_tags);
	conf_for(&f, &conf);
	conf.reconnect = 1;
	conf.backoff_min_ms = 10;
	conf.backoff_max_ms = 50;
	snprintf(tag, sizeof(tag), "mytag01");
	conf.monitor_tag = tag;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	memset(tag, 'X', sizeof(tag) - 1); /* copied, not borrowed */
	np_cpc_set_msg_cb(c, tag_push_cb, &p);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	ck_assert_int_eq(np_cpc_monitor_sync(c, 3000), NP_OK);
	for (int i = 0; i < 200 && p.n < 2; i++) {
		np_ev_run_once(ev, 20);
	}
	ck_assert_int_eq(p.n, 2);
	ck_assert_int_eq(p.has[0], 1);
	ck_assert_str_eq(p.tag[0], "mytag01");
	ck_assert_int_eq(p.has[1], 0);
	/* Bad tags are refused locally. */
	ck_assert_int_eq(np_cpc_send_tag(c, "@bob",
	    "0123456789abcdef0123456789abcdef", 30, "Bad", box, sizeof(box),
	    NULL, NULL, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_cpc_send_tag(c, "@bob",
	    "0123456789abcdef0123456789abcdef", 30, "", box, sizeof(box),
	    NULL, NULL, NULL), NP_ERR_INVALID);
	ck_assert_int_eq(np_cpc_send_tag_sync(c, "@bob",
	    "0123456789abcdef0123456789abcdef", 30,
	    "abcdefghijklmnopqrstuvwxyz0123456", box, sizeof(box), 3000),
	    NP_ERR_INVALID);
	ck_assert_int_eq(np_cpc_send_tag_sync(c, "@bob",
	    "0123456789abcdef0123456789abcdef", 30, "peer5", box, sizeof(box),
	    3000), NP_OK);
	ck_assert_int_eq(np_cpc_send_sync(c, "@bob",
	    "0123456789abcdef0123456789abcdee", 30, box, sizeof(box), 3000),
	    NP_OK);
	for (int i = 0; i < 300 && st.ups < 2; i++) {
		np_ev_run_once(ev, 20);
	}
	ck_assert_int_eq(st.ups, 2);
	for (int i = 0; i < 20; i++) {
		np_ev_run_once(ev, 10);
	}
	np_cpc_stop(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_cpc_free(c);
	np_ev_free(ev);
}
END_TEST

START_TEST(bad_monitor_tag)
{
	struct np_cpc_conf conf;
	struct np_cpc *c = (void *)1;
	struct np_ev *ev = np_ev_new();
	struct np_key *k;
	uint8_t seed[32];
	static const char *const bad[] = {
		"", "A", "a-b", "a b", "abcdefghijklmnopqrstuvwxyz0123456",
	};

	ck_assert_int_eq(np_crypto_init(), NP_OK);
	memset(seed, 7, sizeof(seed));
	ck_assert_int_eq(np_key_from_seed("@alice", seed, &k), NP_OK);
	memset(&conf, 0, sizeof(conf));
	conf.host = "127.0.0.1";
	conf.fingerprint = "SHA256:x";
	conf.key = k;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		conf.monitor_tag = bad[i];
		ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_ERR_INVALID);
		ck_assert_ptr_null(c);
	}
	conf.monitor_tag = "ok9";
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	/* Not connected: a valid tagged send fails CLOSED, a bad one
	 * INVALID. */
	ck_assert_int_eq(np_cpc_send_tag(c, "@bob",
	    "0123456789abcdef0123456789abcdef", 30, "t", (const uint8_t *)"x",
	    1, NULL, NULL, NULL), NP_ERR_CLOSED);
	ck_assert_int_eq(np_cpc_send_tag(c, "@bob",
	    "0123456789abcdef0123456789abcdef", 30, "T", (const uint8_t *)"x",
	    1, NULL, NULL, NULL), NP_ERR_INVALID);
	np_cpc_free(c);
	np_key_free(k);
	np_ev_free(ev);
}
END_TEST

/* A frame that fails validation closes the connection. */
static int
sc_bad_frame(struct fix *f)
{
	struct sconn s;
	struct json_object *o;
	const char *t;

	if (s_accept(f, &s, 3000) != 0 || s_auth(f, &s) != 0 ||
	    s_expect(&s, "ping", NULL) != 0 ||
	    s_send(&s, "{\"t\":\"result\",\"rid\":1,\"bogus\":true}") != 0) {
		return -1;
	}
	return s_recv(&s, &o, &t, 3000) == -2 ? 0 : -1;
}

START_TEST(bad_frame_closes)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct states st = { 0 };
	struct got g = { 0, 0 };

	fix_setup(&f);
	fix_serve(&f, sc_bad_frame);
	conf_for(&f, &conf);
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	ck_assert_int_eq(np_cpc_ping(c, got_cb, &g, NULL), NP_OK);
	for (int i = 0; i < 100 && st.downs == 0; i++) {
		np_ev_run_once(ev, 20);
	}
	ck_assert_int_eq(st.last_err, NP_ERR_PROTO);
	ck_assert_int_eq(g.n, 1);
	ck_assert_int_eq(g.r, NP_ERR_CLOSED);
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

START_TEST(free_from_callback)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct states st = { 0 };
	struct got g = { 0, 0 };

	fix_setup(&f);
	fix_serve(&f, sc_drop_pending);
	conf_for(&f, &conf);
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	st.free_on_down = 1;
	ck_assert_int_eq(np_cpc_ping(c, got_cb, &g, NULL), NP_OK);
	for (int i = 0; i < 100 && st.downs == 0; i++) {
		np_ev_run_once(ev, 20);
	}
	/* Freed inside the callback (ASan checks the rest). */
	ck_assert_int_eq(st.downs, 1);
	ck_assert_int_eq(g.r, NP_ERR_CLOSED);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

/* Pings arrive on their own and, unanswered, end the connection. */
static int
sc_silent(struct fix *f)
{
	struct sconn s;
	struct json_object *o;
	const char *t;

	if (s_accept(f, &s, 3000) != 0 || s_auth(f, &s) != 0 ||
	    s_expect(&s, "ping", NULL) != 0) {
		return -1;
	}
	return s_recv(&s, &o, &t, 3000) == -2 ? 0 : -1;
}

START_TEST(keepalive_unanswered)
{
	struct fix f;
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct states st = { 0 };

	fix_setup(&f);
	fix_serve(&f, sc_silent);
	conf_for(&f, &conf);
	conf.keepalive_ms = 100;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	np_cpc_set_state_cb(c, state_cb, &st);
	ck_assert_int_eq(np_cpc_connect_wait(c, 3000), NP_OK);
	for (int i = 0; i < 100 && st.downs == 0; i++) {
		np_ev_run_once(ev, 20);
	}
	ck_assert_int_eq(st.downs, 1);
	ck_assert_int_eq(st.last_err, NP_ERR_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(np_cpc_detail(c), "keepalive"));
	np_cpc_free(c);
	ck_assert_int_eq(fix_done(&f), 0);
	np_ev_free(ev);
}
END_TEST

START_TEST(unreachable_and_timeout)
{
	struct np_cpc_conf conf;
	struct np_cpc *c;
	struct np_ev *ev = np_ev_new();
	struct np_key *k;
	uint8_t seed[32] = { 0 };
	int lfd, port;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char ps[8];

	ck_assert_int_eq(np_key_from_seed("@alice", seed, &k), NP_OK);
	/* A port nobody listens on: refused. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	port = ntohs(sa.sin_port);
	snprintf(ps, sizeof(ps), "%d", port);
	memset(&conf, 0, sizeof(conf));
	conf.host = "127.0.0.1";
	conf.port = ps;
	conf.fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	conf.key = k;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	ck_assert_int_eq(np_cpc_connect_wait(c, 2000), NP_ERR_UNREACHABLE);
	ck_assert_ptr_nonnull(strstr(np_cpc_detail(c), "cannot connect"));
	np_cpc_free(c);
	/* Listening but never speaking TLS: times out. */
	ck_assert_int_eq(listen(lfd, 1), 0);
	conf.connect_timeout_ms = 300;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_OK);
	ck_assert_int_eq(np_cpc_connect_wait(c, 2000), NP_ERR_TIMEOUT);
	np_cpc_free(c);
	/* Bad configuration. */
	conf.host = NULL;
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_ERR_INVALID);
	conf.host = "127.0.0.1";
	conf.id = "alice";
	ck_assert_int_eq(np_cpc_new(ev, &conf, &c), NP_ERR_INVALID);
	close(lfd);
	np_key_free(k);
	np_ev_free(ev);
}
END_TEST

/* ---------- pure helpers ---------- */

START_TEST(backoff_bounds_and_jitter)
{
	uint32_t v, first = 0;
	int differ = 0;

	ck_assert_int_eq(np_crypto_init(), NP_OK);
	for (unsigned a = 0; a < 40; a++) {
		uint64_t cap = 250ULL << (a < 20 ? a + 1 : 20);

		if (cap > 30000) {
			cap = 30000;
		}
		for (int i = 0; i < 200; i++) {
			v = np_cpc_backoff(250, 30000, a);
			ck_assert_uint_ge(v, 250);
			ck_assert_uint_le(v, cap);
		}
	}
	ck_assert_uint_le(np_cpc_backoff(250, 30000, 0), 500);
	ck_assert_uint_eq(np_cpc_backoff(250, 250, 7), 250);
	for (int i = 0; i < 100; i++) {
		v = np_cpc_backoff(250, 30000, 10);
		if (i == 0) {
			first = v;
		} else if (v != first) {
			differ = 1;
		}
	}
	ck_assert(differ);
	/* max below min, zero min: still sane. */
	ck_assert_uint_eq(np_cpc_backoff(500, 100, 3), 500);
	ck_assert_uint_le(np_cpc_backoff(0, 0, 5), 1);
	ck_assert_uint_le(np_cpc_backoff(250, 30000, 1000), 30000);
}
END_TEST

START_TEST(code_mapping)
{
	ck_assert_int_eq(np_cpc_code_err("auth"), NP_ERR_AUTH);
	ck_assert_int_eq(np_cpc_code_err("token"), NP_ERR_TOKEN);
	ck_assert_int_eq(np_cpc_code_err("revoked"), NP_ERR_REVOKED);
	ck_assert_int_eq(np_cpc_code_err("not_found"), NP_ERR_NOT_FOUND);
	ck_assert_int_eq(np_cpc_code_err("exists"), NP_ERR_EXISTS);
	ck_assert_int_eq(np_cpc_code_err("limit"), NP_ERR_LIMIT);
	ck_assert_int_eq(np_cpc_code_err("too_big"), NP_ERR_TOO_BIG);
	ck_assert_int_eq(np_cpc_code_err("internal"), NP_ERR_INTERNAL);
	ck_assert_int_eq(np_cpc_code_err("proto"), NP_ERR_PROTO);
	ck_assert_int_eq(np_cpc_code_err("whatever"), NP_ERR_PROTO);
	ck_assert_int_eq(np_cpc_code_err(NULL), NP_ERR_PROTO);
}
END_TEST

static int
parse_lookup_text(const char *json, struct np_cpc_lookup_res *res)
{
	struct json_object *o = json_tokener_parse(json);
	int r;

	ck_assert_ptr_nonnull(o);
	r = np_cpc_parse_lookup(o, res);
	json_object_put(o);
	return r;
}

#define PK "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define SIG "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIC" \
	"AgICAgICAgICAgICAgICAgICAg=="

START_TEST(parse_lookup)
{
	struct np_cpc_lookup_res res;
	char big[4096];
	size_t off;

	ck_assert_int_eq(parse_lookup_text("{\"t\":\"result\",\"rid\":1,"
	    "\"id\":\"@bob\",\"pk\":\"" PK "\",\"rot\":[]}", &res), NP_OK);
	ck_assert_str_eq(res.id, "@bob");
	ck_assert_uint_eq(res.pk[5], 1);
	ck_assert_uint_eq(res.nrot, 0);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\",\"pk\":\"" PK
	    "\",\"rot\":[{\"old\":\"" PK "\",\"new\":\"" PK "\",\"sig\":\""
	    SIG "\"}]}", &res), NP_OK);
	ck_assert_uint_eq(res.nrot, 1);
	ck_assert_uint_eq(res.rot[0].sig[63], 2);
	/* Missing or bad members. */
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\"}", &res),
	    NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"pk\":\"" PK "\"}", &res),
	    NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"bob\",\"pk\":\"" PK
	    "\"}", &res), NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\",\"pk\":"
	    "\"AQID\"}", &res), NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\",\"pk\":\"" PK
	    "\",\"rot\":{}}", &res), NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\",\"pk\":\"" PK
	    "\",\"rot\":[1]}", &res), NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\",\"pk\":\"" PK
	    "\",\"rot\":[{\"old\":\"" PK "\",\"new\":\"" PK "\"}]}", &res),
	    NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\",\"pk\":\"" PK
	    "\",\"rot\":[{\"old\":\"" PK "\",\"new\":\"" PK "\",\"sig\":\""
	    PK "\"}]}", &res), NP_ERR_PROTO);
	ck_assert_int_eq(parse_lookup_text("{\"id\":\"@bob\",\"pk\":\"" PK
	    "\",\"rot\":[{\"old\":\"" PK "\",\"new\":\"" PK "\",\"sig\":\""
	    SIG "\",\"x\":1}]}", &res), NP_ERR_PROTO);
	/* 17 links: over the cap. */
	off = (size_t)snprintf(big, sizeof(big), "{\"id\":\"@bob\",\"pk\":\""
	    PK "\",\"rot\":[");
	for (int i = 0; i < 17; i++) {
		off += (size_t)snprintf(big + off, sizeof(big) - off,
		    "%s{\"old\":\"" PK "\",\"new\":\"" PK "\",\"sig\":\"" SIG
		    "\"}", i ? "," : "");
	}
	snprintf(big + off, sizeof(big) - off, "]}");
	ck_assert_int_eq(parse_lookup_text(big, &res), NP_ERR_PROTO);
}
END_TEST

static Suite *
cpc_suite(void)
{
	Suite *s = suite_create("cpc");
	TCase *pure = tcase_create("pure");
	TCase *net = tcase_create("net");

	tcase_add_test(pure, backoff_bounds_and_jitter);
	tcase_add_test(pure, code_mapping);
	tcase_add_test(pure, parse_lookup);
	tcase_set_timeout(net, 20);
	tcase_add_test(net, fingerprint_mismatch);
	tcase_add_test(net, auth_lookup_ping);
	tcase_add_test(net, pending_fails_closed);
	tcase_add_test(net, auth_refused_backs_off);
	tcase_add_test(net, enroll_signs_pk_and_binding);
	tcase_add_test(net, token_refused_stops);
	tcase_add_test(net, monitor_reissued_after_reconnect);
	tcase_add_test(net, monitor_and_send_tags);
	tcase_add_test(pure, bad_monitor_tag);
	tcase_add_test(net, bad_frame_closes);
	tcase_add_test(net, free_from_callback);
	tcase_add_test(net, unreachable_and_timeout);
	tcase_add_test(net, keepalive_unanswered);
	suite_add_tcase(s, pure);
	suite_add_tcase(s, net);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(cpc_suite());
	int failed;

	np_log_init("test_cpc", 0, NP_LOG_ERROR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
