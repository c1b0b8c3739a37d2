/*
 * np ping DEVICE: an np.ping box to the device's identity, its np.pong
 * back; prints what the device says about itself and the round trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "box.h"
#include "cli.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "session.h"

#define PING_USAGE "np [-F CONFIG] [-v] ping DEVICE"
#define PONG_LIST_MAX 64
#define PONG_STR_MAX 64

struct ping_wait {
	char nonce[NP_MID_LEN + 1];
	struct json_object *body; /* own reference once answered */
};

static int
ping_match(struct np_sctx *x, const struct np_push *p,
    const struct np_box_msg *m, void *arg)
{
	struct ping_wait *pw = arg;

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

/* A string member, sanitised and cut to PONG_STR_MAX; "?" when absent. */
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
	snprintf(out, outlen, "%.*s", PONG_STR_MAX, s);
	free(s);
}

/* An array of strings as "a,b,c" (sanitised, capped); "-" when empty. */
static void
pong_list(struct json_object *o, const char *k, char *out, size_t outlen)
{
	struct json_object *v, *e;
	size_t i, n, off = 0;
	char *s;

	snprintf(out, outlen, "-");
	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_array)) {
		return;
	}
	n = json_object_array_length(v);
	for (i = 0; i < n && i < PONG_LIST_MAX && off + 1 < outlen; i++) {
		e = json_object_array_get_idx(v, i);
		if (!json_object_is_type(e, json_type_string) ||
		    (s = cli_sanitize(json_object_get_string(e))) == NULL) {
			continue;
		}
		off += (size_t)snprintf(out + off, outlen - off, "%s%.*s",
		    off > 0 ? "," : "", PONG_STR_MAX, s);
		free(s);
	}
}

static int
ping_send(struct np_sctx *x, const struct np_target *t,
    const uint8_t pk[NP_PK_LEN], struct ping_wait *pw,
    struct np_cpc_waiter *w, uint32_t *rid)
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
	} else {
		r = np_sctx_send(x, t->ident, pk, "np.ping", pw->nonce, body,
		    w, rid);
	}
	json_object_put(body);
	return r;
}

static int
ping_run(struct np_cli *cli, const struct np_target *t)
{
	struct np_sctx *x = NULL;
	struct np_cpc_waiter w;
	struct ping_wait pw;
	const char *ids[1] = { t->ident };
	uint8_t pk[1][NP_PK_LEN];
	char ver[PONG_STR_MAX + 1], devs[1024], feats[1024], msg[512];
	uint64_t t0;
	uint32_t rid = 0;
	long to = cli->cfg.session_timeout > 0 ? cli->cfg.session_timeout :
	    NP_CONFIG_DEFAULT_SESSION_TIMEOUT;
	int r, send_failed = 0;

	memset(&w, 0, sizeof(w));
	memset(&pw, 0, sizeof(pw));
	if ((r = np_sctx_open(cli, np_now_mono_ms() + (uint64_t)to * 1000,
	    to, &x)) != NP_OK || (r = np_sctx_lookup(x, ids, 1, pk)) != NP_OK) {
		goto out;
	}
	if ((r = np_mid_new(pw.nonce)) != NP_OK) {
		goto out;
	}
	t0 = np_now_mono_ms();
	if ((r = ping_send(x, t, pk[0], &pw, &w, &rid)) != NP_OK) {
		cli_err("%s: cannot send to %s: %s", t->host, t->ident,
		    np_strerror(r));
		goto out;
	}
	x->want_session = pw.nonce;
	r = np_sctx_wait(x, t->ident, pk[0], ping_match, &pw, &w,
	    &send_failed);
	x->want_session = NULL;
	if (r == NP_ERR_STALE && x->stale) {
		np_sctx_stale_msg(x, t->ident, msg, sizeof(msg));
		cli_err("%s: %s", t->host, msg);
	} else if (r == NP_ERR_TIMEOUT) {
		cli_err("%s: no answer from %s within %ld s (is np-deviced "
		    "running, and does its Allow line name %s?)", t->host,
		    t->ident, to, np_key_name(x->key));
	} else if (r != NP_OK) {
		cli_err("%s: %s%s: %s", t->host, send_failed ?
		    "cannot send to " : "", t->ident, np_strerror(r));
	} else {
		pong_str(pw.body, "version", ver, sizeof(ver));
		pong_list(pw.body, "devices", devs, sizeof(devs));
		pong_list(pw.body, "features", feats, sizeof(feats));
		printf("%s (%s): np-deviced %s, devices: %s, features: %s, "
		    "rtt %llu ms\n", t->host, t->ident, ver, devs, feats,
		    (unsigned long long)(np_now_mono_ms() - t0));
		r = fflush(stdout) == 0 ? NP_OK : NP_ERR_SYSTEM;
	}
 out:
	if (!w.done && rid != 0 && x != NULL) {
		np_cpc_cancel(x->c, rid);
	}
	np_cpc_waiter_clear(&w);
	json_object_put(pw.body);
	np_sctx_free(x);
	return r;
}

int
cmd_ping(struct np_cli *cli, int argc, char **argv)
{
	struct np_target t;
	char why[256];

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		printf("usage: %s\n", PING_USAGE);
		return NP_EXIT_OK;
	}
	if (cli->ev == NULL || argc != 2 || argv[1][0] == '-') {
		return cli_usage(PING_USAGE);
	}
	if (np_target_resolve(argv[1], cli->cfg.aliases, cli->cfg.naliases,
	    &t, why, sizeof(why)) != NP_OK) {
		cli_err("bad device name '%.80s': %s", argv[1], why);
		return NP_EXIT_FAIL;
	}
	return ping_run(cli, &t) == NP_OK ? NP_EXIT_OK : NP_EXIT_FAIL;
}
