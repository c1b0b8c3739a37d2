/*
 * Several rendezvous, the nearest chosen (see srpick.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <sodium.h>

#include "box.h"
#include "buf.h"
#include "cli.h"
#include "config.h"
#include "cpc.h"
#include "diag.h"
#include "err.h"
#include "ev.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "session.h"
#include "srpick.h"
#include "srproto.h"

#define SRCACHE_MAGIC "np-rendezvous-cache 1 "
#define SR_HOST_MAX 255

/* ---------------- ranking ---------------- */

/* 1 when a goes before b. */
static int
ent_before(const struct np_srpick_ent *a, const struct np_srpick_ent *b)
{
	long ca, cb;

	if ((a->rtt_ms < 0) != (b->rtt_ms < 0)) {
		return a->rtt_ms >= 0;
	}
	if (a->rtt_ms >= 0) {
		ca = a->rtt_ms + (a->dev_ms >= 0 ? a->dev_ms : 0);
		cb = b->rtt_ms + (b->dev_ms >= 0 ? b->dev_ms : 0);
		if (ca != cb) {
			return ca < cb;
		}
	}
	return a->order < b->order;
}

void
np_srpick_rank(struct np_srpick *p)
{
	struct np_srpick_ent tmp;
	size_t i, j;

	/* insertion sort: at most NP_SRPICK_MAX entries */
	for (i = 1; i < p->n && i < NP_SRPICK_MAX; i++) {
		tmp = p->e[i];
		for (j = i; j > 0 && ent_before(&tmp, &p->e[j - 1]); j--) {
			p->e[j] = p->e[j - 1];
		}
		p->e[j] = tmp;
	}
}

void
np_srpick_demote(struct np_srpick *p, const char *id)
{
	struct np_srpick_ent tmp;
	size_t i;

	for (i = 0; i < p->n && strcmp(p->e[i].id, id) != 0; i++) {
		continue;
	}
	if (i >= p->n) {
		return;
	}
	tmp = p->e[i];
	memmove(&p->e[i], &p->e[i + 1], (p->n - i - 1) * sizeof(p->e[0]));
	tmp.rtt_ms = -1;
	p->e[p->n - 1] = tmp;
}

void
np_srpick_summary(const struct np_srpick *p, char *buf, size_t len)
{
	size_t i, o = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < p->n && o < len; i++) {
		if (p->e[i].rtt_ms >= 0 && p->e[i].dev_ms >= 0) {
			n = snprintf(buf + o, len - o, "%s%s %ld ms + device "
			    "%ld ms", i > 0 ? ", " : "", p->e[i].id,
			    p->e[i].rtt_ms, p->e[i].dev_ms);
		} else if (p->e[i].rtt_ms >= 0) {
			n = snprintf(buf + o, len - o, "%s%s %ld ms",
			    i > 0 ? ", " : "", p->e[i].id, p->e[i].rtt_ms);
		} else {
			n = snprintf(buf + o, len - o, "%s%s no answer",
			    i > 0 ? ", " : "", p->e[i].id);
		}
		if (n < 0) {
			return;
		}
		o += (size_t)n;
	}
}

/* ---------------- the cache file ---------------- */

/* A round trip (capped) or "-", then end. */
static int
put_ms(struct np_buf *out, long ms, const char *end)
{
	if (ms < 0) {
		return np_buf_putf(out, "-%s", end);
	}
	return np_buf_putf(out, "%ld%s", ms > NP_SRPICK_RTT_MAX ?
	    (long)NP_SRPICK_RTT_MAX : ms, end);
}

int
np_srcache_format(const struct np_srpick *p, struct np_buf *out)
{
	size_t i;
	int r;

	if (p->n > NP_SRPICK_MAX || p->when_ms < 0) {
		return NP_ERR_INVALID;
	}
	if ((r = np_buf_putf(out, SRCACHE_MAGIC "%lld\n",
	    (long long)p->when_ms)) != NP_OK) {
		return r;
	}
	for (i = 0; i < p->n; i++) {
		if (!np_ident_valid(p->e[i].id)) {
			return NP_ERR_INVALID;
		}
		if ((r = np_buf_putf(out, "%s ", p->e[i].id)) != NP_OK ||
		    (r = put_ms(out, p->e[i].rtt_ms, " ")) != NP_OK ||
		    (r = put_ms(out, p->e[i].dev_ms, "\n")) != NP_OK) {
			return r;
		}
	}
	return NP_OK;
}

/* Decimal digits only, at most max; -1 when not. */
static int64_t
dec_parse(const char *s, size_t len, int64_t max)
{
	int64_t v = 0;
	size_t i;

	if (len == 0 || len > 18) {
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* "-" (-1) or a round trip within NP_SRPICK_RTT_MAX. */
static int
ms_parse(const char *s, size_t len, long *ms)
{
	int64_t v;

	if (len == 1 && s[0] == '-') {
		*ms = -1;
	} else if ((v = dec_parse(s, len, NP_SRPICK_RTT_MAX)) >= 0) {
		*ms = (long)v;
	} else {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

/* One "@id RTT|- DEVICE_RTT|-" line (without its newline) into e. */
static int
cache_line(const char *s, size_t len, struct np_srpick_ent *e)
{
	const char *sp = memchr(s, ' ', len), *sp2;
	size_t idlen;

	if (sp == NULL || (idlen = (size_t)(sp - s)) > NP_IDENT_MAX) {
		return NP_ERR_INVALID;
	}
	memset(e, 0, sizeof(*e));
	memcpy(e->id, s, idlen);
	e->id[idlen] = '\0';
	if (!np_ident_valid(e->id)) {
		return NP_ERR_INVALID;
	}
	s = sp + 1;
	len -= idlen + 1;
	if ((sp2 = memchr(s, ' ', len)) == NULL ||
	    ms_parse(s, (size_t)(sp2 - s), &e->rtt_ms) != NP_OK ||
	    ms_parse(sp2 + 1, len - (size_t)(sp2 - s) - 1, &e->dev_ms) !=
	    NP_OK) {
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

/* Place of id in ids, or ids->n. */
static size_t
ids_find(const struct np_strlist *ids, const char *id)
{
	size_t i;

	for (i = 0; i < ids->n && strcmp(ids->v[i], id) != 0; i++) {
		continue;
	}
	return i;
}

int
np_srcache_parse(const uint8_t *p, size_t len,
    const struct np_strlist *ids, int64_t now_ms, long max_age_s,
    struct np_srpick *out)
{
	const char *s = (const char *)p, *nl;
	size_t ml = sizeof(SRCACHE_MAGIC) - 1, i, k, seen = 0;
	struct np_srpick tmp;
	int64_t when;

	memset(out, 0, sizeof(*out));
	if (p == NULL || len > NP_SRCACHE_MAX || ids->n > NP_SRPICK_MAX ||
	    len < ml || memcmp(s, SRCACHE_MAGIC, ml) != 0 ||
	    memchr(s, '\0', len) != NULL || s[len - 1] != '\n') {
		return NP_ERR_INVALID;
	}
	memset(&tmp, 0, sizeof(tmp));
	nl = memchr(s + ml, '\n', len - ml);
	if ((when = dec_parse(s + ml, (size_t)(nl - s) - ml,
	    ((int64_t)1 << 53))) < 0) {
		return NP_ERR_INVALID;
	}
	tmp.when_ms = when;
	for (i = (size_t)(nl - s) + 1; i < len; i = (size_t)(nl - s) + 1) {
		nl = memchr(s + i, '\n', len - i); /* found: s ends in \n */
		if (tmp.n >= ids->n || cache_line(s + i, (size_t)(nl - s) - i,
		    &tmp.e[tmp.n]) != NP_OK) {
			return NP_ERR_INVALID;
		}
		if ((k = ids_find(ids, tmp.e[tmp.n].id)) >= ids->n ||
		    (seen & ((size_t)1 << k)) != 0) {
			return NP_ERR_INVALID; /* not ours, or twice */
		}
		seen |= (size_t)1 << k;
		tmp.e[tmp.n].order = k;
		tmp.n++;
	}
	if (tmp.n != ids->n) {
		return NP_ERR_INVALID;
	}
	if (when > now_ms + NP_SRCACHE_SKEW_MS ||
	    (now_ms > when && now_ms - when > (int64_t)max_age_s * 1000)) {
		return NP_ERR_STALE;
	}
	*out = tmp;
	return NP_OK;
}

int
np_srcache_path(const struct np_config *cfg, const char *ident, char *out,
    size_t outlen)
{
	const char *kh = cfg->known_hosts, *sl;
	int n;

	if (kh == NULL || (sl = strrchr(kh, '/')) == NULL ||
	    ident == NULL || !np_ident_valid(ident)) {
		return NP_ERR_CONF;
	}
	n = snprintf(out, outlen, "%.*s/rendezvous-%s.cache", (int)(sl - kh),
	    kh, ident + 1);
	return n < 0 || (size_t)n >= outlen ? NP_ERR_TOO_BIG : NP_OK;
}

int
np_srcache_load(const char *path, const struct np_strlist *ids,
    int64_t now_ms, long max_age_s, struct np_srpick *out)
{
	struct np_buf *b = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = np_file_read_checked(path, NP_SRCACHE_MAX, 022, 0, &b)) !=
	    NP_OK) {
		return r;
	}
	r = np_srcache_parse(np_buf_ptr(b), np_buf_len(b), ids, now_ms,
	    max_age_s, out);
	np_buf_free(b);
	return r;
}

int
np_srcache_save(const char *path, const struct np_srpick *p)
{
	struct np_buf *b;
	int r;

	if ((b = np_buf_new(NP_SRCACHE_MAX)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = np_srcache_format(p, b)) == NP_OK &&
	    (r = np_mkdir_parent(path)) == NP_OK) {
		r = np_file_write_atomic(path, np_buf_ptr(b), np_buf_len(b),
		    1);
	}
	np_buf_free(b);
	return r;
}

/* ---------------- measuring ---------------- */

struct probe_info {
	int got;	/* 1: srd.probeinfo, -1: srd.error */
	char host[SR_HOST_MAX + 1];
	uint16_t port;
	char ticket[NP_SR_TICKET_B64_LEN + 1];
};

struct probe_wait {
	const struct np_strlist *ids;
	const int *known;
	struct probe_info *pi;
	struct np_srpick *out;
	size_t left;
};

static int
str_member(struct json_object *o, const char *k, const char **s,
    size_t max)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    (size_t)json_object_get_string_len(v) > max ||
	    (*s = json_object_get_string(v)) == NULL ||
	    strlen(*s) != (size_t)json_object_get_string_len(v)) {
		return NP_ERR_PROTO;
	}
	return NP_OK;
}

/* srd.probeinfo body: host (printable, no space), port, ticket. */
static int
probeinfo_parse(struct json_object *b, struct probe_info *pi)
{
	struct json_object *v;
	const char *host, *ticket;
	uint8_t raw[NP_SR_TICKET_LEN];
	int64_t port;
	size_t i;

	if (!json_object_is_type(b, json_type_object) ||
	    str_member(b, "host", &host, SR_HOST_MAX) != NP_OK ||
	    host[0] == '\0' ||
	    str_member(b, "ticket", &ticket, NP_SR_TICKET_B64_LEN) != NP_OK ||
	    np_sr_ticket_decode(ticket, strlen(ticket), raw) != NP_OK ||
	    !json_object_object_get_ex(b, "port", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    (port = json_object_get_int64(v)) < 1 || port > 65535) {
		return NP_ERR_PROTO;
	}
	for (i = 0; host[i] != '\0'; i++) {
		if (host[i] <= 0x20 || host[i] >= 0x7f) {
			return NP_ERR_PROTO;
		}
	}
	snprintf(pi->host, sizeof(pi->host), "%s", host);
	snprintf(pi->ticket, sizeof(pi->ticket), "%s", ticket);
	pi->port = (uint16_t)port;
	return NP_OK;
}

static int
probe_match(struct np_sctx *x, const struct np_push *p,
    const struct np_box_msg *m, void *arg)
{
	struct probe_wait *pw = arg;
	struct json_object *v;
	size_t i = ids_find(pw->ids, p->from);
	int err = strcmp(m->type, "srd.error") == 0;

	if (i >= pw->ids->n || !pw->known[i] || pw->pi[i].got != 0 ||
	    (!err && strcmp(m->type, "srd.probeinfo") != 0)) {
		return NP_ERR_AGAIN;
	}
	if (err) {
		snprintf(pw->out->e[i].why, sizeof(pw->out->e[i].why),
		    "refused: %s", json_object_object_get_ex(m->body,
		    "reason", &v) && json_object_is_type(v, json_type_string) ?
		    json_object_get_string(v) : "(no reason given)");
		cli_sanitize_inplace(pw->out->e[i].why);
		pw->pi[i].got = -1;
	} else if (probeinfo_parse(m->body, &pw->pi[i]) != NP_OK) {
		snprintf(pw->out->e[i].why, sizeof(pw->out->e[i].why),
		    "malformed srd.probeinfo");
		pw->pi[i].got = -1;
	} else {
		pw->pi[i].got = 1;
	}
	return --pw->left == 0 ? NP_OK : NP_ERR_AGAIN;
}

/* srd.probe to each known one; their answers into pi. */
static int
probe_ask(struct np_sctx *x, const struct np_strlist *ids,
    const uint8_t (*pks)[NP_PK_LEN], const int *known,
    struct probe_info *pi, struct np_srpick *out)
{
	struct np_cpc_waiter w[NP_SRPICK_MAX];
	uint32_t rid[NP_SRPICK_MAX];
	struct json_object *body;
	struct probe_wait pw;
	const char *from[NP_SRPICK_MAX];
	size_t i;
	int r = NP_OK;

	memset(w, 0, sizeof(w));
	memset(rid, 0, sizeof(rid));
	memset(&pw, 0, sizeof(pw));
	pw.ids = ids;
	pw.known = known;
	pw.pi = pi;
	pw.out = out;
	if ((body = np_sctx_rt_body(x->tag)) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (i = 0; i < ids->n; i++) {
		from[i] = ids->v[i];
		if (!known[i]) {
			continue;
		}
		if (np_sctx_send(x, ids->v[i], pks[i], "srd.probe", NULL, body,
		    &w[i], &rid[i]) != NP_OK) {
			snprintf(out->e[i].why, sizeof(out->e[i].why),
			    "cannot send to it");
			pi[i].got = -1;
			continue;
		}
		pw.left++;
	}
	if (pw.left > 0) {
		r = np_sctx_wait_multi(x, from, pks, ids->n, probe_match, &pw);
	}
	for (i = 0; i < ids->n; i++) {
		if (!w[i].done && rid[i] != 0) {
			np_cpc_cancel(x->c, rid[i]);
		}
		np_cpc_waiter_clear(&w[i]);
	}
	json_object_put(body);
	return r == NP_ERR_TIMEOUT ? NP_OK : r;
}

/* The "probe" array for the device: the tickets that came. */
static struct json_object *
probe_array(const struct np_strlist *ids, const struct probe_info *pi)
{
	struct json_object *a, *o;
	size_t i, n = 0;

	if ((a = json_object_new_array()) == NULL) {
		return NULL;
	}
	for (i = 0; i < ids->n; i++) {
		if (pi[i].got != 1) {
			continue;
		}
		if ((o = json_object_new_object()) == NULL ||
		    json_object_array_add(a, o) != 0 ||
		    json_object_object_add(o, "sr",
		    json_object_new_string(ids->v[i])) != 0 ||
		    json_object_object_add(o, "host",
		    json_object_new_string(pi[i].host)) != 0 ||
		    json_object_object_add(o, "port",
		    json_object_new_int(pi[i].port)) != 0 ||
		    json_object_object_add(o, "ticket",
		    json_object_new_string(pi[i].ticket)) != 0) {
			json_object_put(a);
			return NULL;
		}
		n++;
	}
	if (n == 0) {
		json_object_put(a);
		return NULL;
	}
	return a;
}

/*
 * np.ping with the tickets, sent now (the loop run once to write it), so
 * that the device probes while we do; NP_OK when it went.
 */
static int
dev_send(struct np_sctx *x, const struct np_strlist *ids,
    const struct probe_info *pi, struct np_srpick_dev *dev,
    struct np_diag_pinging *pg)
{
	struct json_object *a;
	int r;

	dev->r = NP_ERR_AGAIN;
	if ((a = probe_array(ids, pi)) == NULL) {
		return NP_ERR_AGAIN;
	}
	r = np_diag_ping_start(x, dev->t, dev->pk, a, pg, dev->why,
	    sizeof(dev->why));
	json_object_put(a);
	if (r != NP_OK) {
		dev->r = r;
		return r;
	}
	(void)np_ev_run_once(x->cli->ev, 0);
	return NP_OK;
}

/* Its np.pong, within dev->wait_ms of the send: the device's round
 * trips into out. */
static void
dev_finish(struct np_sctx *x, const struct np_strlist *ids,
    const struct probe_info *pi, struct np_srpick_dev *dev,
    struct np_diag_pinging *pg, struct np_srpick *out)
{
	uint64_t keep = x->deadline, end = pg->t0 + dev->wait_ms;
	size_t i, k;

	x->deadline = end < keep ? end : keep;
	dev->r = np_diag_ping_finish(x, dev->t, dev->pk, pg, &dev->pong,
	    dev->why, sizeof(dev->why));
	x->deadline = keep;
	for (k = 0; dev->r == NP_OK && k < dev->pong.nrtt; k++) {
		if ((i = ids_find(ids, dev->pong.rtt_sr[k])) < ids->n &&
		    pi[i].got == 1) {
			out->e[i].dev_ms = dev->pong.rtt_dev_ms[k];
		}
	}
}

/* Our probes of those whose tickets came, all at once, within
 * RendezvousTimeout (and the set-up's deadline keep). */
static void
own_probes(const struct np_strlist *ids, const struct probe_info *pi,
    long to, uint64_t keep, struct np_srpick *out)
{
	struct np_sr_probe_job j[NP_SR_PROBES_MAX];
	size_t idx[NP_SR_PROBES_MAX], i, n = 0;
	uint64_t now = np_now_mono_ms(), end;

	memset(j, 0, sizeof(j));
	for (i = 0; i < ids->n && n < NP_SR_PROBES_MAX; i++) {
		if (pi[i].got == 1) {
			j[n].host = pi[i].host;
			j[n].port = pi[i].port;
			j[n].ticket_b64 = pi[i].ticket;
			idx[n++] = i;
		}
	}
	end = now + (uint64_t)(to > 0 ? to : 1) * 1000;
	end = end < keep ? end : keep;
	if (n == 0) {
		return;
	}
	if (now >= end || np_sr_probe_many(j, n, (int)(end - now)) != NP_OK) {
		for (i = 0; i < n; i++) {
			snprintf(out->e[idx[i]].why, sizeof(out->e[0].why),
			    "no time left to probe it");
		}
		return;
	}
	for (i = 0; i < n; i++) {
		if (j[i].r == NP_OK) {
			out->e[idx[i]].rtt_ms = j[i].ms > NP_SRPICK_RTT_MAX ?
			    NP_SRPICK_RTT_MAX : (long)j[i].ms;
			continue;
		}
		snprintf(out->e[idx[i]].why, sizeof(out->e[0].why),
		    "probe of %.64s port %u: %.60s", j[i].host,
		    (unsigned)j[i].port, j[i].why);
		cli_sanitize_inplace(out->e[idx[i]].why);
	}
}

int
np_srpick_measure(struct np_sctx *x, const struct np_strlist *ids,
    const uint8_t (*pks)[NP_PK_LEN], const int *known,
    struct np_srpick_dev *dev, struct np_srpick *out)
{
	struct probe_info pi[NP_SRPICK_MAX];
	struct np_diag_pinging pg;
	long to = x->cli->cfg.rendezvous_timeout;
	uint64_t keep = x->deadline, end;
	size_t i;
	int r, sent;

	memset(out, 0, sizeof(*out));
	memset(pi, 0, sizeof(pi));
	if (ids->n > NP_SRPICK_MAX) {
		return NP_ERR_INVALID;
	}
	out->n = ids->n;
	out->when_ms = np_now_real_ms();
	for (i = 0; i < ids->n; i++) {
		snprintf(out->e[i].id, sizeof(out->e[i].id), "%s", ids->v[i]);
		out->e[i].rtt_ms = out->e[i].dev_ms = -1;
		out->e[i].order = i;
		if (!known[i]) {
			snprintf(out->e[i].why, sizeof(out->e[i].why),
			    "not looked up");
		}
	}
	end = np_now_mono_ms() + (uint64_t)(to > 0 ? to : 1) * 1000;
	x->deadline = end < keep ? end : keep;
	r = probe_ask(x, ids, pks, known, pi, out);
	x->deadline = keep;
	for (i = 0; i < ids->n && r == NP_OK; i++) {
		if (pi[i].got == 0 && known[i]) {
			snprintf(out->e[i].why, sizeof(out->e[i].why),
			    "no answer within %ld s", to);
		}
	}
	/* The device probes while we do. */
	sent = r == NP_OK && dev != NULL &&
	    dev_send(x, ids, pi, dev, &pg) == NP_OK;
	if (r == NP_OK) {
		own_probes(ids, pi, to, keep, out);
	}
	if (sent) {
		dev_finish(x, ids, pi, dev, &pg, out);
	}
	sodium_memzero(pi, sizeof(pi));
	np_srpick_rank(out);
	return r;
}
