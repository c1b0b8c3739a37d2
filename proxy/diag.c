/*
 * Diagnostics shared by np ping and np doctor: np.ping / np.pong with a
 * device, and a try of the relay (docs/CLI.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "box.h"
#include "cli.h"
#include "diag.h"
#include "ident.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "session.h"
#include "srproto.h"

static int
ping_match(struct np_sctx *x, const struct np_push *p,
    const struct np_box_msg *m, void *arg)
{
	struct np_diag_pinging *pw = arg;

	if (strcmp(m->type, "np.pong") != 0) {
		return NP_ERR_AGAIN;
	}
	/* Our nonce, or none (a device that does not echo the session). */
	if (m->session[0] != '\0' && strcmp(m->session, pw->nonce) != 0) {
		return NP_ERR_AGAIN;
	}
	if (m->body == NULL ||
	    !json_object_is_type(m->body, json_type_object)) {
		return NP_ERR_PROTO;
	}
	pw->body = json_object_get(m->body);
	return NP_OK;
}

/* A string member, sanitised and cut to NP_PONG_STR_MAX; "?" when
 * absent. */
static void
pong_str(struct json_object *o, const char *k, char *out, size_t outlen)
{
	struct json_object *v;
	char *s;

	snprintf(out, outlen, "?");
	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    (s = cli_sanitize(json_object_get_string(v))) == NULL) {
		return;
	}
	snprintf(out, outlen, "%.*s", NP_PONG_STR_MAX, s);
	free(s);
}

/* An array of strings as "a,b,c" (sanitised, capped); "-" when empty.
 * *has: one entry is exactly want. */
static void
pong_list(struct json_object *o, const char *k, const char *want,
    char *out, size_t outlen, int *has)
{
	struct json_object *v, *e;
	size_t i, n, off = 0;
	const char *raw;
	char *s;

	snprintf(out, outlen, "-");
	*has = 0;
	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_array)) {
		return;
	}
	n = json_object_array_length(v);
	/* Membership over the whole list (the device allows 64 names);
	 * only the text shown is capped. */
	for (i = 0; want != NULL && i < n && i < 4 * NP_PONG_LIST_MAX; i++) {
		e = json_object_array_get_idx(v, i);
		if (json_object_is_type(e, json_type_string) &&
		    strcmp(json_object_get_string(e), want) == 0) {
			*has = 1;
		}
	}
	for (i = 0; i < n && i < NP_PONG_LIST_MAX && off + 1 < outlen; i++) {
		e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string)) {
			continue;
		}
		raw = json_object_get_string(e);
		if ((s = cli_sanitize(raw)) == NULL) {
			continue;
		}
		off += (size_t)snprintf(out + off, outlen - off, "%s%.*s",
		    off > 0 ? "," : "", NP_PONG_STR_MAX, s);
		free(s);
	}
}

void
np_pong_rtt(struct json_object *body, struct np_pong *out)
{
	struct json_object *o;
	int64_t ms;

	out->nrtt = 0;
	if (body == NULL || !json_object_object_get_ex(body, "rtt", &o) ||
	    !json_object_is_type(o, json_type_object) ||
	    json_object_object_length(o) > NP_PONG_RTT_MAX) {
		return;
	}
	json_object_object_foreach(o, k, v) {
		if (out->nrtt >= NP_PONG_RTT_MAX || strlen(k) > NP_IDENT_MAX ||
		    !np_ident_valid(k) || !json_object_is_type(v,
		    json_type_int) || (ms = json_object_get_int64(v)) < 0 ||
		    ms > NP_PONG_RTT_MS_MAX) {
			continue;
		}
		snprintf(out->rtt_sr[out->nrtt], sizeof(out->rtt_sr[0]), "%s",
		    k);
		out->rtt_dev_ms[out->nrtt++] = (long)ms;
	}
}

static int
ping_send(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct json_object *probe,
    struct np_diag_pinging *pw, struct np_cpc_waiter *w, uint32_t *rid)
{
	struct json_object *body, *v;
	int r = NP_ERR_ALLOC;

	if ((body = json_object_new_object()) == NULL) {
		return r;
	}
	if ((v = json_object_new_string(t->device)) == NULL ||
	    json_object_object_add(body, "device", v) != 0) {
		json_object_put(v);
	} else if ((v = json_object_new_string(x->tag)) == NULL ||
	    json_object_object_add(body, "rt", v) != 0) {
		json_object_put(v);
	} else if (probe != NULL && json_object_object_add(body, "probe",
	    json_object_get(probe)) != 0) {
		json_object_put(probe);
	} else {
		r = np_sctx_send(x, t->ident, pk, "np.ping", pw->nonce, body,
		    w, rid);
	}
	json_object_put(body);
	return r;
}

static void
pong_fill(const struct np_diag_pinging *pw, const struct np_target *t,
    struct np_pong *out)
{
	int has = 0;

	pong_str(pw->body, "version", out->version, sizeof(out->version));
	pong_list(pw->body, "devices", t->device, out->devices,
	    sizeof(out->devices), &out->has_device);
	pong_list(pw->body, "features", NULL, out->features,
	    sizeof(out->features), &has);
}

int
np_diag_ping(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct np_pong *out, char *why,
    size_t whylen)
{
	return np_diag_ping_probe(x, t, pk, NULL, out, why, whylen);
}

int
np_diag_ping_start(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct json_object *probe,
    struct np_diag_pinging *pg, char *why, size_t whylen)
{
	int r;

	memset(pg, 0, sizeof(*pg));
	snprintf(why, whylen, "?");
	if ((r = np_mid_new(pg->nonce)) != NP_OK) {
		snprintf(why, whylen, "%s", np_strerror(r));
		return r;
	}
	pg->t0 = np_now_mono_ms();
	if ((r = ping_send(x, t, pk, probe, pg, &pg->w, &pg->rid)) != NP_OK) {
		snprintf(why, whylen, "cannot send to %s: %s", t->ident,
		    np_strerror(r));
		np_diag_ping_clear(x, pg);
	}
	return r;
}

int
np_diag_ping_finish(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct np_diag_pinging *pg,
    struct np_pong *out, char *why, size_t whylen)
{
	int r, send_failed = 0;

	memset(out, 0, sizeof(*out));
	x->want_session = pg->nonce;
	r = np_sctx_wait(x, t->ident, pk, ping_match, pg, &pg->w,
	    &send_failed);
	x->want_session = NULL;
	if (r == NP_ERR_STALE && x->stale) {
		np_sctx_stale_msg(x, t->ident, why, whylen);
	} else if (r == NP_ERR_TIMEOUT) {
		snprintf(why, whylen, "no answer from %s within %ld s",
		    t->ident, x->timeout_s);
	} else if (r != NP_OK) {
		snprintf(why, whylen, "%s%s: %s", send_failed ?
		    "cannot send to " : "", t->ident, np_strerror(r));
	} else {
		out->rtt_ms = np_now_mono_ms() - pg->t0;
		pong_fill(pg, t, out);
		np_pong_rtt(pg->body, out);
	}
	np_diag_ping_clear(x, pg);
	return r;
}

void
np_diag_ping_clear(struct np_sctx *x, struct np_diag_pinging *pg)
{
	if (!pg->w.done && pg->rid != 0) {
		np_cpc_cancel(x->c, pg->rid);
	}
	pg->rid = 0;
	np_cpc_waiter_clear(&pg->w);
	json_object_put(pg->body);
	pg->body = NULL;
}

int
np_diag_ping_probe(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct json_object *probe,
    struct np_pong *out, char *why, size_t whylen)
{
	struct np_diag_pinging pg;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = np_diag_ping_start(x, t, pk, probe, &pg, why, whylen)) !=
	    NP_OK) {
		return r;
	}
	return np_diag_ping_finish(x, t, pk, &pg, out, why, whylen);
}

/* ---------------- the relay ---------------- */

static void
grant_why(const struct np_sctx *x, int r, char *why, size_t whylen)
{
	switch (r) {
	case NP_ERR_TIMEOUT:
		snprintf(why, whylen, "no answer within %ld s", x->timeout_s);
		break;
	case NP_ERR_AUTH:
		snprintf(why, whylen, "it refused the session (its reason is "
		    "on stderr)");
		break;
	case NP_ERR_CLOSED:
		snprintf(why, whylen, "the control-plane connection was lost");
		break;
	default:
		snprintf(why, whylen, "%s", np_strerror(r));
		break;
	}
}

int
np_diag_relay(struct np_sctx *x, const struct np_target *t,
    const char *sr, const uint8_t sr_pk[NP_PK_LEN], struct np_relay_try *out,
    char *why, size_t whylen)
{
	struct np_sr_session s;
	const struct np_sr_endpoint *ep;
	char cwhy[256];
	uint64_t t0;
	int r, fd = -1, ms;

	memset(out, 0, sizeof(*out));
	memset(&s, 0, sizeof(s));
	snprintf(why, whylen, "?");
	t0 = np_now_mono_ms();
	if ((r = np_session_srd_open(x, t, sr, sr_pk, &s)) != NP_OK) {
		grant_why(x, r, why, whylen);
		goto out;
	}
	out->grant_ms = np_now_mono_ms() - t0;
	out->granted = 1;
	ep = &s.side[NP_SR_CLIENT];
	snprintf(out->endpoint, sizeof(out->endpoint), "%s%s%s:%u",
	    strchr(ep->host, ':') != NULL ? "[" : "", ep->host,
	    strchr(ep->host, ':') != NULL ? "]" : "", (unsigned)ep->port);
	if ((ms = np_sctx_left_ms(x)) == 0) {
		r = NP_ERR_TIMEOUT;
		snprintf(why, whylen, "no time left to connect");
		goto out;
	}
	t0 = np_now_mono_ms();
	cwhy[0] = '\0';
	r = np_sr_connect(ep, s.sid, NP_SR_CLIENT, ms, &fd, cwhy,
	    sizeof(cwhy));
	if (r == NP_OK) {
		out->rtt_ms = np_now_mono_ms() - t0;
	} else if (r == NP_ERR_AUTH) {
		snprintf(why, whylen, "np-srd refused the token: %s", cwhy);
	} else {
		snprintf(why, whylen, "%s%s%s", np_strerror(r),
		    cwhy[0] != '\0' ? ": " : "", cwhy);
	}
 out:
	if (fd >= 0) {
		close(fd);
	}
	sodium_memzero(&s, sizeof(s));
	return r;
}
