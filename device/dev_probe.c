/*
 * Probes for a client with several rendezvous (docs/PROTOCOL.md,
 * "Probes"): the np.ping of such a client carries its probe tickets; for
 * each rendezvous whose host RendezvousHost allows, np-deviced connects
 * (non-blocking, on the loop), sends "NPSR1 PROBE <ticket>\n" and times
 * the "NPSR1 PONG\n"; after the last answer, or DEV_PROBE_MS, np.pong
 * goes out with "rtt":{"@sr":MS,...} for those that answered.  At most
 * DEV_PROBE_JOBS_MAX pings are probed at once; nothing a probe returns
 * but its timing is used.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "box.h"
#include "dev.h"
#include "err.h"
#include "ev.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "srproto.h"

#define PROBE_LINE_MAX 96
#define PONG_LEN (sizeof(NP_SR_PONG_LINE) - 1)

struct probe {
	struct dev_probe_job *j;
	char sr[NP_IDENT_MAX + 1];
	int fd;
	char line[PROBE_LINE_MAX];
	size_t len, sent;
	char ans[PONG_LEN];
	size_t got;
	uint64_t t0;
	long ms;	/* -1: no answer (yet) */
};

struct dev_probe_job {
	struct dev_probe_job *next;
	struct dev *d;
	char to[NP_IDENT_MAX + 1];
	uint8_t pk[NP_PK_LEN];
	char rt[DEV_TAG_MAX + 1];
	char session[NP_BOX_SESSION_MAX + 1];
	struct json_object *pong;
	struct probe p[DEV_PROBE_MAX];
	size_t n, left;
	uint64_t timer;
};

static void
probe_close(struct dev *d, struct probe *p)
{
	if (p->fd >= 0) {
		(void)np_ev_del(d->ev, p->fd);
		close(p->fd);
		p->fd = -1;
	}
	sodium_memzero(p->line, sizeof(p->line));
}

static void
job_unlink_free(struct dev_probe_job *j)
{
	struct dev *d = j->d;
	struct dev_probe_job **pp;
	size_t i;

	for (pp = &d->probes; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			d->nprobes--;
			break;
		}
	}
	for (i = 0; i < j->n; i++) {
		probe_close(d, &j->p[i]);
	}
	np_ev_timer_del(d->ev, j->timer);
	json_object_put(j->pong);
	free(j);
}

/* Every probe answered or failed, or time is up: the pong. */
static void
job_finish(struct dev_probe_job *j)
{
	struct json_object *rtt;
	struct dev *d = j->d;
	size_t i, k = 0;
	int r = NP_ERR_ALLOC;

	if ((rtt = json_object_new_object()) != NULL) {
		for (i = 0; i < j->n; i++) {
			if (j->p[i].ms >= 0 && json_object_object_add(rtt,
			    j->p[i].sr, json_object_new_int64(j->p[i].ms)) ==
			    0) {
				k++;
			}
		}
		if (json_object_object_add(j->pong, "rtt", rtt) == 0) {
			r = dev_ctl_send(d, j->to, j->pk, j->rt, "np.pong",
			    j->session, j->pong);
		} else {
			json_object_put(rtt);
		}
	}
	if (r != NP_OK) {
		np_warn_r(r, "cannot answer the ping of %s", j->to);
	} else {
		np_debug("pong to %s: %zu of %zu rendezvous answered our "
		    "probe", j->to, k, j->n);
	}
	job_unlink_free(j);
}

static void
probe_done(struct probe *p, long ms)
{
	struct dev_probe_job *j = p->j;

	p->ms = ms;
	probe_close(j->d, p);
	if (--j->left == 0) {
		job_finish(j);
	}
}

static void
probe_cb(struct np_ev *ev, int fd, uint32_t events, void *arg)
{
	struct probe *p = arg;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	ssize_t n;

	if (p->sent < p->len) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
		    soerr != 0) {
			probe_done(p, -1);
			return;
		}
		n = send(fd, p->line + p->sent, p->len - p->sent,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			return;
		}
		if (n <= 0) {
			probe_done(p, -1);
			return;
		}
		p->sent += (size_t)n;
		if (p->sent == p->len &&
		    np_ev_mod(ev, fd, NP_EV_READ) != NP_OK) {
			probe_done(p, -1);
		}
		return;
	}
	n = recv(fd, p->ans + p->got, sizeof(p->ans) - p->got, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n <= 0) {
		probe_done(p, -1);
		return;
	}
	p->got += (size_t)n;
	if (memcmp(p->ans, NP_SR_PONG_LINE, p->got) != 0) {
		probe_done(p, -1); /* an error line, or garbage */
	} else if (p->got == sizeof(p->ans)) {
		probe_done(p, (long)(np_now_mono_ms() - p->t0));
	}
}

static void
job_timeout(struct np_ev *ev, uint64_t id, void *arg)
{
	struct dev_probe_job *j = arg;

	j->timer = 0;
	job_finish(j);
}

/* Start one probe; -1 when it cannot even start (counted as done). */
static int
probe_begin(struct dev *d, struct probe *p, const struct dev_probe_tgt *t)
{
	struct addrinfo hints, *res = NULL;
	char port[8];
	int n, one = 1;

	p->fd = -1;
	p->ms = -1;
	snprintf(p->sr, sizeof(p->sr), "%s", t->sr);
	n = snprintf(p->line, sizeof(p->line), "NPSR1 PROBE %s\n", t->ticket);
	if (n < 0 || (size_t)n >= sizeof(p->line)) {
		return -1;
	}
	p->len = (size_t)n;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST; /* never blocks */
	snprintf(port, sizeof(port), "%u", (unsigned)t->port);
	if (getaddrinfo(t->host, port, &hints, &res) != 0) {
		return -1;
	}
	p->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	p->t0 = np_now_mono_ms();
	if (p->fd < 0 || (connect(p->fd, res->ai_addr, res->ai_addrlen) != 0 &&
	    errno != EINPROGRESS)) {
		freeaddrinfo(res);
		probe_close(d, p);
		return -1;
	}
	freeaddrinfo(res);
	(void)setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (np_ev_add(d->ev, p->fd, NP_EV_WRITE, probe_cb, p) != NP_OK) {
		close(p->fd);
		p->fd = -1;
		return -1;
	}
	return 0;
}

int
dev_probe_start(struct dev *d, const char *to,
    const uint8_t pk[NP_PK_LEN], const char *rt, const char *session,
    const struct dev_probe_tgt *t, size_t n, struct json_object *pong)
{
	struct dev_probe_job *j;
	size_t i;

	if (d->nprobes >= DEV_PROBE_JOBS_MAX || n == 0 || n > DEV_PROBE_MAX) {
		return NP_ERR_LIMIT;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		return NP_ERR_ALLOC;
	}
	j->d = d;
	snprintf(j->to, sizeof(j->to), "%s", to);
	memcpy(j->pk, pk, NP_PK_LEN);
	snprintf(j->rt, sizeof(j->rt), "%s", rt != NULL ? rt : "");
	snprintf(j->session, sizeof(j->session), "%s",
	    session != NULL ? session : "");
	j->n = n;
	for (i = 0; i < n; i++) {
		j->p[i].j = j;
		j->p[i].fd = -1;
	}
	if ((j->timer = np_ev_timer_add(d->ev, DEV_PROBE_MS, job_timeout,
	    j)) == 0) {
		free(j);
		return NP_ERR_ALLOC;
	}
	j->pong = pong;
	j->next = d->probes;
	d->probes = j;
	d->nprobes++;
	for (i = 0; i < n; i++) {
		if (probe_begin(d, &j->p[i], &t[i]) == 0) {
			j->left++;
		}
	}
	if (j->left == 0) {
		job_finish(j); /* none could start: the pong now */
	}
	return NP_OK;
}

void
dev_probe_free_all(struct dev *d)
{
	while (d->probes != NULL) {
		job_unlink_free(d->probes);
	}
}
