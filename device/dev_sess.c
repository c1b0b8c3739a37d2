/*
 * Sessions: for each accepted np.session.req, the client's session key
 * (its "pubkey") is authorized for the user until KeyTTL ahead (spool
 * entry, or a line in the user's authorized_keys), the reply goes out
 * (tagged with the request's "rt", as is every later np.session.err of
 * the session), and two non-blocking connections
 * are made on the event loop: to the rendezvous' device endpoint (token
 * line, then "NPSR1 OK\n", read without taking a byte past it) and to the
 * local sshd.  Once both are up they are joined by the relay pump.  A
 * session that cannot connect is told to the client (np.session.err) and
 * its key is taken out at once; other keys stay until their expiry and
 * the next sweep.  One log line per session when it ends.
 */
#include <sys/socket.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "buf.h"
#include "dev.h"
#include "err.h"
#include "ev.h"
#include "log.h"
#include "relay.h"
#include "spool.h"
#include "srec.h"
#include "sshkey.h"
#include "srproto.h"

#define AK_USERS_MAX 256
#define DEV_TARGET_ADDRS 4	/* addresses of a tunnel's host tried */
#define PWBUF_MAX 16384

enum sr_state {
	SR_CONNECTING = 0,
	SR_SENDING = 1,	 /* token line partly written */
	SR_ANSWER = 2,	 /* waiting for "NPSR1 OK\n" */
	SR_READY = 3,
};

struct dev_sess {
	struct dev *d;
	struct dev_sess *prev, *next;
	char sid[NP_SR_SID_LEN + 1];
	char from[NP_IDENT_MAX + 1];
	uint8_t pk[NP_PK_LEN];
	char rt[DEV_TAG_MAX + 1];	/* reply tag, "" = none */
	char user[NP_USER_MAX + 1];
	char device[DEV_DEVNAME_MAX + 1];
	char sr_host[sizeof(((struct np_sr_endpoint *)0)->host)];
	uint16_t sr_port;
	int sr_fd, ssh_fd;
	enum sr_state sr_state;
	int ssh_ready;
	struct np_buf *line;	/* token line (secret) */
	char ans[NP_SRLINE_MAX];
	size_t ans_len;
	uint8_t *kx_sk;		/* crypto_kx secret, sodium_malloc */
	uint8_t kx_pk[DEV_KX_LEN];
	struct np_srec *seal;	/* device -> client, NULL: plain relay */
	struct np_srec *open;	/* client -> device */
	int cipher;
	uint32_t handoff;	/* records for this many bytes each way, then
				   ssh's own transport; 0: all the way */
	int tunnel;		/* to host:port instead of sshd */
	char host[DEV_TUNNEL_HOST_MAX + 1];
	long port;
	struct sockaddr_storage to[DEV_TARGET_ADDRS]; /* tunnel: addresses */
	socklen_t tolen[DEV_TARGET_ADDRS];
	int nto, ito;		/* how many, which one is being tried */
	int64_t expires;
	int keyed;		/* key authorized (spool or authorized_keys) */
	uint64_t started;
	uint64_t timer;
	struct np_relay *relay;
};

static void sess_fail(struct dev_sess *, const char *);
static int target_next(struct dev_sess *);

/* ---- list ---- */

static void
sess_link(struct dev *d, struct dev_sess *s)
{
	s->next = d->sessions;
	if (s->next != NULL) {
		s->next->prev = s;
	}
	d->sessions = s;
	d->nsessions++;
}

static void
sess_unlink(struct dev *d, struct dev_sess *s)
{
	if (s->prev != NULL) {
		s->prev->next = s->next;
	} else {
		d->sessions = s->next;
	}
	if (s->next != NULL) {
		s->next->prev = s->prev;
	}
	if (--d->nsessions == 0) {
		dev_mem_idle(d);
	}
}

size_t
dev_sess_relaying(const struct dev *d)
{
	const struct dev_sess *s;
	size_t n = 0;

	for (s = d->sessions; s != NULL; s = s->next) {
		n += s->relay != NULL;
	}
	return n;
}

static void
close_fd(struct dev *d, int *fd)
{
	if (*fd >= 0) {
		(void)np_ev_del(d->ev, *fd);
		close(*fd);
		*fd = -1;
	}
}

static void
sess_free(struct dev_sess *s)
{
	struct dev *d = s->d;

	np_ev_timer_del(d->ev, s->timer);
	np_relay_free(s->relay);
	close_fd(d, &s->sr_fd);
	close_fd(d, &s->ssh_fd);
	np_buf_free(s->line);
	if (s->kx_sk != NULL) {
		sodium_free(s->kx_sk); /* wipes */
	}
	np_srec_free(s->seal);
	np_srec_free(s->open);
	sess_unlink(d, s);
	sodium_memzero(s, sizeof(*s));
	free(s);
	dev_check_done(d);
}

/* ---- session keys ---- */

/* Home directory, uid and gid of user (getpwnam_r). */
static int
user_lookup(const char *user, char *home, size_t homelen, uid_t *uid,
    gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char *buf;
	int e, r = NP_ERR_NOT_FOUND;

	if ((buf = malloc(PWBUF_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	e = getpwnam_r(user, &pw, buf, PWBUF_MAX, &res);
	if (e == 0 && res != NULL && pw.pw_dir != NULL &&
	    pw.pw_dir[0] == '/') {
		if ((size_t)snprintf(home, homelen, "%s", pw.pw_dir) <
		    homelen) {
			*uid = pw.pw_uid;
			*gid = pw.pw_gid;
			r = NP_OK;
		} else {
			r = NP_ERR_TOO_BIG;
		}
	}
	free(buf);
	return r;
}

static void
ak_user_note(struct dev *d, const char *user)
{
	struct np_strlist *l = &d->ak_users;
	char **nv;
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], user) == 0) {
			return;
		}
	}
	if (l->n >= AK_USERS_MAX ||
	    (nv = realloc(l->v, (l->n + 1) * sizeof(*nv))) == NULL) {
		return;
	}
	l->v = nv;
	if ((l->v[l->n] = strdup(user)) != NULL) {
		l->n++;
	}
}

static int
ak_path(const char *user, char *path, size_t len, uid_t *uid, gid_t *gid)
{
	char home[PATH_MAX];
	int r;

	if ((r = user_lookup(user, home, sizeof(home), uid, gid)) != NP_OK) {
		return r;
	}
	if ((size_t)snprintf(path, len, "%s/.ssh/authorized_keys", home) >=
	    len) {
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

/* Authorize e: a spool entry, or a line in the user's authorized_keys. */
static int
key_install(struct dev *d, const struct np_spool_entry *e)
{
	char path[PATH_MAX];
	uid_t uid;
	gid_t gid;
	int r;

	if (d->conf->keymode == DEV_KEYMODE_SPOOL) {
		return np_spool_write(d->conf->spool_dir, e);
	}
	if ((r = ak_path(e->user, path, sizeof(path), &uid, &gid)) !=
	    NP_OK) {
		return r;
	}
	ak_user_note(d, e->user);
	return np_authkeys_install(path, uid, gid, 1, e, (int64_t)time(NULL));
}

/* Take a session's key out at once (it failed before relaying, or the
 * daemon exits): its spool entry, or its line in authorized_keys. */
static void
key_remove(struct dev_sess *s)
{
	char path[PATH_MAX];
	uid_t uid;
	gid_t gid;
	int r;

	if (!s->keyed) {
		return;
	}
	s->keyed = 0;
	if (s->d->conf->keymode == DEV_KEYMODE_SPOOL) {
		r = np_spool_remove(s->d->conf->spool_dir, s->sid);
	} else if ((r = ak_path(s->user, path, sizeof(path), &uid,
	    &gid)) == NP_OK) {
		r = np_authkeys_remove(path, uid, s->sid, (int64_t)time(NULL),
		    NULL);
	}
	if (r != NP_OK && r != NP_ERR_NOT_FOUND) {
		np_warn_r(r, "session %s: cannot remove its key", s->sid);
	}
}

void
dev_keys_init(struct dev *d)
{
	const char *u[AK_USERS_MAX];
	size_t i, n;

	if (d->conf->keymode != DEV_KEYMODE_AUTHKEYS) {
		return;
	}
	n = dev_conf_users(d->conf, u, AK_USERS_MAX);
	for (i = 0; i < n; i++) {
		ak_user_note(d, u[i]);
	}
}

void
dev_keys_sweep(struct dev *d)
{
	char path[PATH_MAX];
	int64_t now = (int64_t)time(NULL);
	unsigned n = 0;
	uid_t uid;
	gid_t gid;
	size_t i;
	int r;

	if (d->conf->keymode == DEV_KEYMODE_SPOOL) {
		r = np_spool_sweep(d->conf->spool_dir, now, &n);
		if (r != NP_OK) {
			np_warn_r(r, "spool sweep of %s", d->conf->spool_dir);
		} else if (n > 0) {
			np_debug("swept %u expired spool entries", n);
		}
		return;
	}
	for (i = 0; i < d->ak_users.n; i++) {
		if (ak_path(d->ak_users.v[i], path, sizeof(path), &uid,
		    &gid) != NP_OK) {
			continue;
		}
		r = np_authkeys_sweep(path, uid, now, &n);
		if (r != NP_OK && r != NP_ERR_NOT_FOUND) {
			np_warn_r(r, "sweep of %s", path);
		}
	}
}

/* ---- the end of a session ---- */

static const char *
relay_how(int result, const struct np_relay_stats *st, char *buf,
    size_t len)
{
	switch (result) {
	case NP_RELAY_DONE:
		return "done";
	case NP_RELAY_IDLE:
		return "idle";
	case NP_RELAY_STOPPED:
		return "stopped";
	default:
		snprintf(buf, len, "error on %s side: %s",
		    st->err_side == 1 ? "rendezvous" : st->err_side == 2 ?
		    "local" : "unknown", st->err_what != NULL ? st->err_what :
		    st->err_errno != 0 ? strerror(st->err_errno) : "-");
		return buf;
	}
}

static void
relay_done(struct np_relay *r, int result, void *arg)
{
	struct dev_sess *s = arg;
	const struct np_relay_stats *st = np_relay_stats(r);
	char buf[200];

	np_info("session %s from %s user %s device %s: %s, %llu bytes in, "
	    "%llu bytes out, %llu ms", s->sid, s->from, s->user, s->device,
	    relay_how(result, st, buf, sizeof(buf)),
	    (unsigned long long)st->a_to_b, (unsigned long long)st->b_to_a,
	    (unsigned long long)(np_now_mono_ms() - s->started));
	/* The key stays until its expiry (KeyTTL) and the next sweep: sshd
	 * checked it at login, and taking it out here would gain little. */
	sess_free(s);
}

/* Before relaying: tell the client, log, take the key out, free. */
static void
sess_fail(struct dev_sess *s, const char *why)
{
	struct dev *d = s->d;

	np_info("session %s from %s user %s device %s: failed: %s, %llu ms",
	    s->sid, s->from, s->user, s->device, why,
	    (unsigned long long)(np_now_mono_ms() - s->started));
	dev_ctl_send_err(d, s->from, s->pk, s->rt, s->sid, why);
	key_remove(s);
	sess_free(s);
}

/* ---- relaying ---- */

static void
sess_relay(struct dev_sess *s)
{
	struct dev *d = s->d;
	struct np_relay_end a, b;
	struct np_relay_opts o;
	long ka = d->conf->keepalive;
	int r;

	np_ev_timer_del(d->ev, s->timer);
	s->timer = 0;
	(void)np_ev_del(d->ev, s->sr_fd);
	(void)np_ev_del(d->ev, s->ssh_fd);
	if (ka > 0) {
		(void)np_sock_keepalive(s->sr_fd, (int)ka,
		    (int)(ka * 3 * 1000));
		(void)np_sock_keepalive(s->ssh_fd, (int)ka,
		    (int)(ka * 3 * 1000));
	}
	np_buf_free(s->line);
	s->line = NULL;
	a.rfd = a.wfd = s->sr_fd;
	b.rfd = b.wfd = s->ssh_fd;
	memset(&o, 0, sizeof(o));
	o.xf[0] = s->open;	/* a (the rendezvous) -> b (sshd, target) */
	o.xf[1] = s->seal;
	o.handoff = s->handoff;
	if ((r = np_relay_start_ex(d->ev, a, b, &o, relay_done, s,
	    &s->relay)) != NP_OK) {
		np_error_r(r, "session %s: cannot start the relay", s->sid);
		sess_fail(s, "device error");
		return;
	}
	s->open = s->seal = NULL; /* the relay's now */
	np_debug("session %s: relaying", s->sid);
}

static void
sess_maybe_relay(struct dev_sess *s)
{
	if (s->sr_state == SR_READY && s->ssh_ready) {
		sess_relay(s);
	}
}

/* ---- connections ---- */

static int
sock_error(int fd)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
		return errno;
	}
	return soerr;
}

/* Non-blocking connect; NP_OK with *fd (connecting or connected). */
static int
connect_start(const struct sockaddr *sa, socklen_t salen, int *fdp, int *e)
{
	int fd, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		*e = errno;
		return NP_ERR_SYSTEM;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, sa, salen) != 0 && errno != EINPROGRESS) {
		*e = errno;
		close(fd);
		return NP_ERR_UNREACHABLE;
	}
	*fdp = fd;
	return NP_OK;
}

static void
ssh_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct dev_sess *s = arg;
	char why[DEV_TUNNEL_HOST_MAX + 96];
	int e;

	if ((e = sock_error(fd)) != 0) {
		if (s->tunnel && s->ito + 1 < s->nto &&
		    target_next(s) == NP_OK) {
			return; /* the next address of the host */
		}
		if (s->tunnel) {
			snprintf(why, sizeof(why), "%s port %ld unreachable "
			    "from the device: %s", s->host, s->port,
			    strerror(e));
		} else {
			snprintf(why, sizeof(why), "sshd unreachable: %s",
			    strerror(e));
		}
		sess_fail(s, why);
		return;
	}
	(void)np_ev_del(ev, fd);
	s->ssh_ready = 1;
	sess_maybe_relay(s);
}

/* Send what is left of the token line. */
static int
sr_send_line(struct dev_sess *s)
{
	const uint8_t *p = np_buf_ptr(s->line);
	size_t len = np_buf_len(s->line);
	ssize_t n;

	while (len > 0) {
		n = send(s->sr_fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return errno == EAGAIN ? NP_ERR_AGAIN : NP_ERR_CLOSED;
		}
		(void)np_buf_consume(s->line, (size_t)n);
		p = np_buf_ptr(s->line);
		len = np_buf_len(s->line);
	}
	np_buf_free(s->line);
	s->line = NULL;
	return NP_OK;
}

/*
 * Read the answer line without taking a byte after its "\n": peek, take
 * up to the "\n" (or all of it when there is none yet).
 */
static int
sr_read_answer(struct dev_sess *s)
{
	char *p = s->ans + s->ans_len;
	size_t room = sizeof(s->ans) - s->ans_len, take, i;
	ssize_t n;

	n = recv(s->sr_fd, p, room, MSG_PEEK);
	if (n == 0) {
		return NP_ERR_CLOSED;
	}
	if (n < 0) {
		return errno == EAGAIN || errno == EINTR ? NP_ERR_AGAIN :
		    NP_ERR_CLOSED;
	}
	take = (size_t)n;
	for (i = 0; i < (size_t)n; i++) {
		if (p[i] == '\n') {
			take = i + 1;
			break;
		}
	}
	if (recv(s->sr_fd, p, take, 0) != (ssize_t)take) {
		return NP_ERR_CLOSED;
	}
	s->ans_len += take;
	if (s->ans[s->ans_len - 1] == '\n') {
		return NP_OK;
	}
	return s->ans_len < sizeof(s->ans) ? NP_ERR_AGAIN : NP_ERR_PROTO;
}

/* "NPSR1 OK\n", or the (printable) reason of "NPSR1 ERR ...". */
static int
sr_check_answer(struct dev_sess *s, char *why, size_t whylen)
{
	static const char errp[] = "NPSR1 ERR ";
	size_t i, o = 0, plen = sizeof(errp) - 1;

	if (s->ans_len == strlen(NP_SR_OK_LINE) &&
	    memcmp(s->ans, NP_SR_OK_LINE, s->ans_len) == 0) {
		return NP_OK;
	}
	o = (size_t)snprintf(why, whylen, "rendezvous refused: ");
	if (s->ans_len > plen && memcmp(s->ans, errp, plen) == 0) {
		for (i = plen; i + 1 < s->ans_len && o + 1 < whylen; i++) {
			why[o++] = s->ans[i] >= 0x20 && s->ans[i] < 0x7f ?
			    s->ans[i] : '?';
		}
		why[o] = '\0';
	} else {
		snprintf(why, whylen, "rendezvous: bad answer");
	}
	return NP_ERR_AUTH;
}

static void
sr_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct dev_sess *s = arg;
	char why[128];
	int r, e;

	if (s->sr_state == SR_CONNECTING) {
		if ((e = sock_error(fd)) != 0) {
			snprintf(why, sizeof(why), "rendezvous unreachable: "
			    "%s", strerror(e));
			sess_fail(s, why);
			return;
		}
		s->sr_state = SR_SENDING;
	}
	if (s->sr_state == SR_SENDING) {
		if ((r = sr_send_line(s)) == NP_ERR_AGAIN) {
			return;
		}
		if (r != NP_OK) {
			sess_fail(s, "rendezvous closed the connection");
			return;
		}
		s->sr_state = SR_ANSWER;
		(void)np_ev_mod(ev, fd, NP_EV_READ);
		return;
	}
	if ((r = sr_read_answer(s)) == NP_ERR_AGAIN) {
		return;
	}
	if (r != NP_OK) {
		sess_fail(s, r == NP_ERR_PROTO ? "rendezvous: bad answer" :
		    "rendezvous closed the connection");
		return;
	}
	if (sr_check_answer(s, why, sizeof(why)) != NP_OK) {
		sess_fail(s, why);
		return;
	}
	(void)np_ev_del(ev, fd);
	s->sr_state = SR_READY;
	np_debug("session %s: rendezvous accepted the token", s->sid);
	sess_maybe_relay(s);
}

static void
timeout_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct dev_sess *s = arg;

	s->timer = 0;
	sess_fail(s, s->sr_state != SR_READY ? "rendezvous unreachable: "
	    "timed out" : s->tunnel ? "tunnel target unreachable from the "
	    "device: timed out" : "sshd unreachable: timed out");
}

/* Resolve the rendezvous host (a literal needs no lookup). */
static int
sr_resolve(const struct np_sr_endpoint *ep, struct sockaddr_storage *ss,
    socklen_t *sl)
{
	struct addrinfo hints, *res = NULL;
	char port[8];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
	snprintf(port, sizeof(port), "%u", (unsigned)ep->port);
	if (getaddrinfo(ep->host, port, &hints, &res) != 0) {
		/* A name: this lookup blocks the loop (keep names out of
		 * the rendezvous' PublicHost where that matters). */
		hints.ai_flags = AI_NUMERICSERV;
		if (getaddrinfo(ep->host, port, &hints, &res) != 0) {
			return NP_ERR_UNREACHABLE;
		}
	}
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return NP_ERR_INTERNAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sl = res->ai_addrlen;
	freeaddrinfo(res);
	return NP_OK;
}

/*
 * A tunnel's host: its addresses (at most DEV_TARGET_ADDRS, tried in
 * turn).  A name other than a literal is looked up here and blocks the
 * loop meanwhile (localhost comes from /etc/hosts).
 */
static int
target_resolve(struct dev_sess *s)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%ld", s->port);
	if (getaddrinfo(s->host, port, &hints, &res) != 0) {
		return NP_ERR_NOT_FOUND;
	}
	for (ai = res; ai != NULL && s->nto < DEV_TARGET_ADDRS;
	    ai = ai->ai_next) {
		if (ai->ai_addrlen <= sizeof(s->to[0])) {
			memcpy(&s->to[s->nto], ai->ai_addr, ai->ai_addrlen);
			s->tolen[s->nto++] = ai->ai_addrlen;
		}
	}
	freeaddrinfo(res);
	return s->nto > 0 ? NP_OK : NP_ERR_NOT_FOUND;
}

/* Give up on this address of the tunnel's host and try the next. */
static int
target_next(struct dev_sess *s)
{
	int e = 0;

	close_fd(s->d, &s->ssh_fd);
	while (++s->ito < s->nto) {
		if (connect_start((struct sockaddr *)&s->to[s->ito],
		    s->tolen[s->ito], &s->ssh_fd, &e) == NP_OK &&
		    np_ev_add(s->d->ev, s->ssh_fd, NP_EV_WRITE, ssh_cb, s) ==
		    NP_OK) {
			return NP_OK;
		}
		close_fd(s->d, &s->ssh_fd);
	}
	return NP_ERR_UNREACHABLE;
}

/* The local side: sshd, or the tunnel's host (first address that
 * takes a connect()). */
static int
local_connect(struct dev_sess *s, const char **why)
{
	struct dev *d = s->d;
	int r, e = 0;

	if (!s->tunnel) {
		if ((r = connect_start((struct sockaddr *)&d->sshd_addr,
		    d->sshd_addrlen, &s->ssh_fd, &e)) != NP_OK) {
			*why = "sshd unreachable";
			np_info("session %s: sshd: %s", s->sid, strerror(e));
		}
		return r;
	}
	if ((r = target_resolve(s)) != NP_OK) {
		*why = "tunnel host not found by the device";
		return r;
	}
	for (s->ito = 0; s->ito < s->nto; s->ito++) {
		if ((r = connect_start((struct sockaddr *)&s->to[s->ito],
		    s->tolen[s->ito], &s->ssh_fd, &e)) == NP_OK) {
			return NP_OK;
		}
	}
	*why = "tunnel target unreachable from the device";
	np_info("session %s: %s port %ld: %s", s->sid, s->host, s->port,
	    strerror(e));
	return r;
}

static int
sess_connect(struct dev_sess *s, const struct dev_req *q, const char **why)
{
	struct dev *d = s->d;
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	int r, e = 0;

	if ((r = local_connect(s, why)) != NP_OK) {
		return r;
	}
	if ((r = sr_resolve(&q->sr, &ss, &sl)) != NP_OK) {
		*why = "rendezvous unreachable: cannot resolve its host";
		return r;
	}
	if ((r = connect_start((struct sockaddr *)&ss, sl, &s->sr_fd, &e)) !=
	    NP_OK) {
		*why = "rendezvous unreachable";
		np_info("session %s: rendezvous: %s", s->sid, strerror(e));
		return r;
	}
	if ((s->line = np_buf_new_secure(NP_SRLINE_MAX)) == NULL ||
	    (r = np_srline_format(q->sid, NP_SR_DEVICE, q->sr.token,
	    s->line)) != NP_OK ||
	    (r = np_ev_add(d->ev, s->ssh_fd, NP_EV_WRITE, ssh_cb, s)) !=
	    NP_OK ||
	    (r = np_ev_add(d->ev, s->sr_fd, NP_EV_WRITE, sr_cb, s)) !=
	    NP_OK ||
	    (s->timer = np_ev_timer_add(d->ev,
	    (uint64_t)d->conf->connect_timeout * 1000, timeout_cb, s)) == 0) {
		*why = "device error";
		return r != NP_OK ? r : NP_ERR_ALLOC;
	}
	return NP_OK;
}

/* ---- the reply ---- */

/* Authorization of the client's key, reply.  *why on failure. */
static int
sess_reply(struct dev_sess *s, const struct dev_req *q, const char **why)
{
	struct dev *d = s->d;
	struct np_spool_entry e;
	struct json_object *body = NULL;
	int r;

	*why = "device error";
	if (s->tunnel) {
		/* No key to authorize: the relay itself is the session. */
		if ((r = dev_body_ok(s->sid, s->expires, NULL, 0, s->kx_pk,
		    s->cipher, 0, &body)) != NP_OK ||
		    (r = dev_ctl_send(d, s->from, s->pk, s->rt,
		    "np.session.ok", s->sid, body)) != NP_OK) {
			np_error_r(r, "session %s: cannot send the reply",
			    s->sid);
		} else {
			*why = NULL;
		}
		json_object_put(body);
		return r;
	}
	memset(&e, 0, sizeof(e));
	snprintf(e.user, sizeof(e.user), "%s", s->user);
	snprintf(e.sid, sizeof(e.sid), "%s", s->sid);
	e.expires = s->expires;
	memcpy(e.pk, q->pubkey, NP_SSHKEY_PK_LEN);
	if ((r = key_install(d, &e)) != NP_OK) {
		if (r == NP_ERR_EXISTS) {
			*why = "session id in use";
		}
		np_error_r(r, "session %s: cannot authorize the key for %s",
		    s->sid, s->user);
		goto out;
	}
	s->keyed = 1;
	if ((r = dev_body_ok(s->sid, s->expires, d->hostkeys, d->nhostkeys,
	    s->kx_pk, s->cipher, s->handoff, &body)) != NP_OK ||
	    (r = dev_ctl_send(d, s->from, s->pk, s->rt, "np.session.ok",
	    s->sid, body)) != NP_OK) {
		np_error_r(r, "session %s: cannot send the reply", s->sid);
		goto out;
	}
	*why = NULL;
 out:
	json_object_put(body);
	return r;
}

/* The two direction keys from the kx exchange, then their states. */
static int
sess_keys(struct dev_sess *s, const struct dev_req *q)
{
	uint8_t *k;
	int r;

	if ((k = sodium_malloc(2 * NP_SREC_KEY_LEN)) == NULL) {
		return NP_ERR_ALLOC;
	}
	/* k: rx (client -> us), then tx (us -> client). */
	if ((r = np_srec_keys_device(k, k + NP_SREC_KEY_LEN, s->kx_pk,
	    s->kx_sk, q->kx)) == NP_OK &&
	    (r = np_srec_new(q->cipher, k, 0, &s->open)) == NP_OK &&
	    (r = np_srec_new(q->cipher, k + NP_SREC_KEY_LEN, 1, &s->seal)) ==
	    NP_OK) {
		s->cipher = q->cipher;
		s->handoff = q->tunnel ? 0 : q->handoff;
	}
	sodium_free(k); /* wipes */
	return r;
}

static struct dev_sess *
sess_new(struct dev *d, const char *from, const uint8_t pk[NP_PK_LEN],
    const struct dev_req *q, const char **why)
{
	struct dev_sess *s;

	*why = "device error";
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return NULL;
	}
	s->d = d;
	s->sr_fd = s->ssh_fd = -1;
	snprintf(s->sid, sizeof(s->sid), "%s", q->sid);
	snprintf(s->from, sizeof(s->from), "%s", from);
	memcpy(s->pk, pk, NP_PK_LEN);
	snprintf(s->rt, sizeof(s->rt), "%s", q->rt);
	snprintf(s->user, sizeof(s->user), "%s", q->user);
	snprintf(s->device, sizeof(s->device), "%s", q->device);
	snprintf(s->sr_host, sizeof(s->sr_host), "%s", q->sr.host);
	s->sr_port = q->sr.port;
	s->started = np_now_mono_ms();
	s->expires = (int64_t)time(NULL) + d->conf->key_ttl;
	s->tunnel = q->tunnel;
	s->port = q->port;
	snprintf(s->host, sizeof(s->host), "%s", q->host);
	if (s->tunnel) {
		snprintf(s->user, sizeof(s->user), "-");
	}
	sess_link(d, s);
	if ((s->kx_sk = sodium_malloc(DEV_KX_LEN)) == NULL ||
	    crypto_kx_keypair(s->kx_pk, s->kx_sk) != 0) {
		sess_free(s);
		return NULL;
	}
	if (q->enc && sess_keys(s, q) != NP_OK) {
		/* A low-order kx point, or OpenSSL without the cipher. */
		*why = "unusable key exchange value or relay cipher";
		sess_free(s);
		return NULL;
	}
	/* The secret half has done its work. */
	sodium_free(s->kx_sk);
	s->kx_sk = NULL;
	return s;
}

static int
sess_exists(const struct dev *d, const char *sid)
{
	const struct dev_sess *s;

	for (s = d->sessions; s != NULL; s = s->next) {
		if (strcmp(s->sid, sid) == 0) {
			return 1;
		}
	}
	return 0;
}

int
dev_sess_start(struct dev *d, const char *from, const uint8_t pk[NP_PK_LEN],
    const struct dev_req *q, const char **why)
{
	struct dev_sess *s;
	int r;

	if (sess_exists(d, q->sid)) {
		*why = "session id in use";
		return NP_ERR_EXISTS;
	}
	if ((s = sess_new(d, from, pk, q, why)) == NULL) {
		return NP_ERR_ALLOC;
	}
	/* Connections first (sshd refusing at once is known before the
	 * reply), then the key, then the reply. */
	if ((r = sess_connect(s, q, why)) != NP_OK ||
	    (r = sess_reply(s, q, why)) != NP_OK) {
		key_remove(s);
		sess_free(s);
		return r;
	}
	if (s->tunnel) {
		np_info("session %s from %s device %s: tunnel to %s port %ld "
		    "accepted, rendezvous %s port %u, relay %s", s->sid,
		    s->from, s->device, s->host, s->port, s->sr_host,
		    (unsigned)s->sr_port, np_srec_cipher_name(s->cipher));
		return NP_OK;
	}
	np_info("session %s from %s user %s device %s: accepted, "
	    "rendezvous %s port %u, key valid %ld s, relay %s%s", s->sid,
	    s->from, s->user, s->device, s->sr_host, (unsigned)s->sr_port,
	    d->conf->key_ttl, np_srec_cipher_name(s->cipher),
	    s->handoff != 0 ? " over ssh's handshake" : "");
	return NP_OK;
}

void
dev_sess_shutdown(struct dev *d, int stop_relays)
{
	struct dev_sess *s, *next;

	for (s = d->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->relay == NULL) {
			sess_fail(s, "device shutting down");
		} else if (stop_relays) {
			np_relay_stop(s->relay);
		}
	}
}

void
dev_sess_free_all(struct dev *d)
{
	struct dev_sess *s;

	while ((s = d->sessions) != NULL) {
		np_info("session %s from %s user %s device %s: stopped at "
		    "exit, %llu ms", s->sid, s->from, s->user, s->device,
		    (unsigned long long)(np_now_mono_ms() - s->started));
		key_remove(s);
		sess_free(s);
	}
}
