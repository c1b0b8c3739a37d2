/*
 * `np-server run`: listeners (accept4 until EAGAIN, back off on EMFILE),
 * the once-a-second tick (another process changed the database? expire
 * old boxes and tokens), signals and a bounded graceful stop.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "notify.h"
#include "key.h"
#include "log.h"
#include "srv.h"
#include "srv_int.h"

static void
listeners_mask(struct srv *s, uint32_t mask)
{
	size_t i;

	for (i = 0; i < s->nlfd; i++) {
		(void)np_ev_mod(s->ev, s->lfds[i], mask);
	}
}

static void
accept_resume_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srv *s = arg;

	s->accept_timer = 0;
	s->accept_paused = 0;
	if (!s->stopping) {
		listeners_mask(s, NP_EV_READ);
	}
}

/* Out of descriptors or memory: stop accepting for a moment. */
static void
accept_backoff(struct srv *s, int err)
{
	unsigned sup;

	if (srv_ratelog_ok(&s->rl_accept, &sup)) {
		np_warn("accept: %s: pausing for %d ms (%u similar)",
			strerror(err), SRV_ACCEPT_BACKOFF_MS, sup);
	}
	if (s->accept_paused) {
		return;
	}
	s->accept_paused = 1;
	listeners_mask(s, 0);
	s->accept_timer =
	    np_ev_timer_add(s->ev, SRV_ACCEPT_BACKOFF_MS, accept_resume_cb, s);
}

static void
accept_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct srv *s = arg;
	struct sockaddr_storage ss;
	socklen_t len;
	int cfd, i;

	for (i = 0; i < SRV_ACCEPT_BURST && !s->stopping; i++) {
		len = sizeof(ss);
		cfd = accept4(fd, (struct sockaddr *)&ss, &len,
			      SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd != -1) {
			(void)srv_conn_new(s, cfd, &ss, len);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			accept_backoff(s, errno);
			return;
		default:
			np_error("accept: %s", strerror(errno));
			return;
		}
	}
}

static int
listen_one(struct srv *s, const struct addrinfo *ai)
{
	int fd, one = 1, defer;

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd == -1) {
		return NP_ERR_SYSTEM;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6) {
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				 sizeof(one));
	}
	/*
	 * A client speaks first (its TLS ClientHello): the kernel hands over
	 * a connection only once bytes have arrived, so connections that
	 * send nothing never take one of a source's unauthenticated slots,
	 * and a real client is accepted with its ClientHello in hand.
	 */
	defer = (int)s->conf->auth_timeout;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer,
			 sizeof(defer));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(fd, SOMAXCONN) == -1) {
		np_error("bind/listen: %s", strerror(errno));
		close(fd);
		return NP_ERR_SYSTEM;
	}
	if (np_ev_add(s->ev, fd, NP_EV_READ, accept_cb, s) != NP_OK) {
		close(fd);
		return NP_ERR_SYSTEM;
	}
	s->lfds[s->nlfd++] = fd;
	return NP_OK;
}

static unsigned
listen_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		return 0;
	}
	if (ss.ss_family == AF_INET) {
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int
srv_listen(struct srv *s, const char *addr, unsigned *port)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct np_hostport hp;
	int rc, r;

	if ((r = srv_listen_parse(addr, &hp)) != NP_OK) {
		np_error("bad listen address '%s'", addr);
		return r;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(hp.host, hp.port, &hints, &res)) != 0) {
		np_error("%s: %s", addr, gai_strerror(rc));
		np_hostport_free(&hp);
		return NP_ERR_INVALID;
	}
	for (ai = res; ai != NULL && s->nlfd < 16; ai = ai->ai_next) {
		if (listen_one(s, ai) == NP_OK && strcmp(hp.port, "0") == 0) {
			break; /* one socket: each would get its own port */
		}
	}
	freeaddrinfo(res);
	np_hostport_free(&hp);
	if (s->nlfd == 0) {
		np_error("cannot listen on %s", addr);
		return NP_ERR_SYSTEM;
	}
	*port = listen_port(s->lfds[0]);
	return NP_OK;
}

static int
write_port_file(const char *path, unsigned port)
{
	char text[16];
	int n, r;

	n = snprintf(text, sizeof(text), "%u\n", port);
	if ((r = np_file_write_atomic(path, (const uint8_t *)text, (size_t)n,
				      1)) != NP_OK) {
		np_error_r(r, "cannot write port file %s", path);
	}
	return r;
}

static void
expire(struct srv *s)
{
	int64_t nb = 0, nt = 0;
	int r;

	if ((r = np_store_expire(s->store, np_now_real_ms(), &nb, &nt)) !=
	    NP_OK) {
		np_error_r(r, "expiring boxes and tokens");
	} else if (nb > 0 || nt > 0) {
		np_info("expired %lld box(es), %lld token(s)", (long long)nb,
			(long long)nt);
	}
}

static void
watch_box_cb(const char *recipient, const char *tag, void *arg)
{
	srv_proto_route(arg, recipient, tag, 1);
}

static void
watch_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	(void)ev;
	(void)fd;
	(void)events;
	srv_watch_poll(arg);
}

/* Both fds refer to one socket. */
static int
same_socket(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * The store's fd can change (or go) when it reconnects.  The loop watches
 * a dup of it that is ours to close: libpq closing its own fd, and the
 * number being reused (by an accepted connection, say) before we notice,
 * cannot then touch another registration.
 */
static void
watch_sync(struct srv *s)
{
	int fd = s->stopping ? -1 : np_store_watch_fd(s->store), d;

	if (s->watch_fd >= 0) {
		if (fd >= 0 && same_socket(fd, s->watch_fd)) {
			return;
		}
		(void)np_ev_del(s->ev, s->watch_fd);
		close(s->watch_fd);
		s->watch_fd = -1;
	}
	if (fd < 0 || (d = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		return;
	}
	if (np_ev_add(s->ev, d, NP_EV_READ, watch_cb, s) != NP_OK) {
		close(d);
		return;
	}
	s->watch_fd = d;
}

void
srv_watch_poll(struct srv *s)
{
	int changed = 0, r;

	if (s->store == NULL) {
		return;
	}
	if (s->stopping) {
		watch_sync(s); /* takes the watch away */
		return;
	}
	if (np_store_in_batch(s->store)) {
		return; /* the commit at the start of the next pass calls us */
	}
	r = np_store_watch_read(s->store, watch_box_cb, s, &changed);
	if (r != NP_OK) {
		if (!s->watch_down) {
			np_warn_r(r, "cannot hear other instances' commits "
				  "(retrying)");
		}
		s->watch_down = 1;
	} else {
		if (s->watch_down) {
			np_info("hearing other instances' commits again");
		}
		s->watch_down = 0;
		if (changed) {
			srv_proto_check_revoked(s);
		}
	}
	watch_sync(s);
}

static void
tick_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srv *s = arg;
	int changed = 0, r;

	s->tick_timer = 0;
	if (s->stopping) {
		return;
	}
	if ((r = np_store_changed(s->store, &changed)) != NP_OK) {
		np_error_r(r, "checking the database for changes");
	} else if (changed) {
		np_debug("database changed: re-checking %zu identities",
			 srv_htab_count(s->idents));
		srv_proto_check_revoked(s);
	}
	srv_watch_poll(s);
	if (++s->ticks % SRV_EXPIRE_TICKS == 0) {
		expire(s);
	}
	s->tick_timer = np_ev_timer_add(s->ev, SRV_TICK_MS, tick_cb, s);
}

static void
close_listeners(struct srv *s)
{
	size_t i;

	for (i = 0; i < s->nlfd; i++) {
		np_ev_del(s->ev, s->lfds[i]);
		close(s->lfds[i]);
	}
	s->nlfd = 0;
	np_ev_timer_del(s->ev, s->accept_timer);
	s->accept_timer = 0;
}

static void
close_all(struct srv *s, const char *why)
{
	while (s->conns != NULL) {
		srv_conn_close(s->conns, NP_LOG_DEBUG, "%s", why);
	}
}

static void
stop_timeout_cb(struct np_ev *ev, uint64_t id, void *arg)
{
	struct srv *s = arg;

	s->stop_timer = 0;
	if (s->nconns > 0) {
		np_info("closing %zu connection(s) that did not flush in time",
			s->nconns);
	}
	close_all(s, "server stopped");
	np_ev_stop(s->ev);
}

static void
signal_cb(struct np_ev *ev, int signo, void *arg)
{
	struct srv *s = arg;
	struct conn *c, *next;

	if (s->stopping) {
		np_info("signal %d again: stopping now", signo);
		close_all(s, "server stopped");
		np_ev_stop(s->ev);
		return;
	}
	np_info("signal %d: stopping (%zu connection(s) open)", signo,
		s->nconns);
	s->stopping = 1;
	close_listeners(s);
	np_ev_timer_del(s->ev, s->tick_timer);
	s->tick_timer = 0;
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (srv_conn_outlen(c) == 0 || c->state == C_HANDSHAKE) {
			srv_conn_close(c, NP_LOG_DEBUG, "server stopping");
			continue;
		}
		c->state = C_CLOSING;
		srv_conn_flush(c);
	}
	if (s->nconns == 0) {
		np_ev_stop(s->ev);
		return;
	}
	s->stop_timer =
	    np_ev_timer_add(s->ev, SRV_CLOSE_FLUSH_MS, stop_timeout_cb, s);
}

static void
srv_free(struct srv *s)
{
	struct conn *c;
	struct ident *id;

	if (s == NULL) {
		return;
	}
	if (s->store != NULL && s->ev != NULL) {
		srv_batch_commit(s); /* what the last pass wrote */
	}
	if (s->ev != NULL) {
		close_all(s, "server stopped");
		close_listeners(s);
	}
	while ((c = s->dead) != NULL) {
		s->dead = c->dnext;
		free(c);
	}
	while ((id = s->ident_list) != NULL) { /* none left: belt and braces */
		s->ident_list = id->next;
		free(id);
	}
	srv_htab_free(s->idents);
	srv_htab_free(s->srcs); /* empty once every connection is closed */
	if (s->watch_fd >= 0) {
		close(s->watch_fd);
	}
	np_ev_free(s->ev);
	np_store_close(s->store);
	np_tls_ctx_free(s->tls);
	free(s->boxbuf);
	free(s);
}

static int
srv_open(struct srv *s, const char *dir)
{
	char db[SRV_STORE_MAX + 4096], key[4096], crt[4096];
	int r;

	if (srv_store_target(s->conf, dir, db, sizeof(db)) != NP_OK ||
	    srv_path(key, sizeof(key), dir, SRV_KEY_FILE) != NP_OK ||
	    srv_path(crt, sizeof(crt), dir, SRV_CERT_FILE) != NP_OK) {
		np_error("%s: path too long", dir);
		return NP_ERR_TOO_BIG;
	}
	if ((r = np_tls_server_ctx(crt, key, &s->tls)) != NP_OK) {
		np_error_r(r, "cannot load %s / %s", crt, key);
		return r;
	}
	r = srv_open_store_at(db, 0, &s->store);
	sodium_memzero(db, sizeof(db)); /* a URI may carry a password */
	if (r != NP_OK) {
		return r;
	}
	np_info("store: %s", np_store_backend(s->store));
	if ((s->ev = np_ev_new()) == NULL ||
	    (s->idents = srv_htab_new()) == NULL ||
	    (s->srcs = srv_htab_new()) == NULL) {
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

static int
srv_start(struct srv *s, const struct srv_opts *o)
{
	char crt[4096], fp[NP_FP_MAX];
	unsigned port;
	int r;

	if ((r = srv_listen(s, o->conf->listen, &port)) != NP_OK) {
		return r;
	}
	if ((r = np_ev_signal_add(s->ev, SIGTERM, signal_cb, s)) != NP_OK ||
	    (r = np_ev_signal_add(s->ev, SIGINT, signal_cb, s)) != NP_OK) {
		np_error_r(r, "cannot handle signals");
		return r;
	}
	expire(s);
	watch_sync(s);
	if ((s->tick_timer = np_ev_timer_add(s->ev, SRV_TICK_MS, tick_cb, s)) ==
	    0) {
		return NP_ERR_ALLOC;
	}
	if (o->port_file != NULL &&
	    (r = write_port_file(o->port_file, port)) != NP_OK) {
		return r;
	}
	if (srv_path(crt, sizeof(crt), o->dir, SRV_CERT_FILE) != NP_OK ||
	    np_tls_cert_fingerprint(crt, fp, sizeof(fp)) != NP_OK) {
		snprintf(fp, sizeof(fp), "?");
	}
	np_info("listening on %s (port %u), certificate %s", o->conf->listen,
		port, fp);
	/* Type=notify: ready once clients can connect. */
	if (np_notify("READY=1") != NP_OK) {
		np_warn("cannot tell systemd that the server is ready");
	}
	return NP_OK;
}

int
srv_run(const struct srv_opts *o)
{
	struct srv *s;
	int r;

	signal(SIGPIPE, SIG_IGN);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return NP_ERR_ALLOC;
	}
	s->conf = o->conf;
	s->watch_fd = -1;
	if ((r = srv_open(s, o->dir)) != NP_OK ||
	    (r = srv_start(s, o)) != NP_OK) {
		goto out;
	}
	if ((r = np_ev_run(s->ev)) != NP_OK) {
		np_error_r(r, "event loop");
		goto out;
	}
	np_info("stopped");
out:
	srv_free(s);
	return r;
}
