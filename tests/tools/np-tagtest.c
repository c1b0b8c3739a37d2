/*
 * np-tagtest: reply-tag routing on the real control plane (tests only).
 * Boxes are opaque to the server, so this tool sends plain text as the
 * "box" and never encrypts: it exercises routing, not the box format.
 *
 *   np-tagtest -F CONFIG send @TO [-t TAG] [-n COUNT] [-p PREFIX]
 *	Send COUNT boxes "PREFIX-1" .. "PREFIX-COUNT" (tagged with TAG, or
 *	untagged), each with a fresh mid.
 *   np-tagtest -F CONFIG recv [-t TAG] [-n COUNT] [-w SECONDS]
 *	[-l LINGER_MS] [-k]
 *	Monitor with TAG (or untagged); print each pushed box as
 *	"TAG CONTENT" ("-" for no tag), one line each, and ack it (-k: never
 *	ack).  Writes "monitoring" to stderr once the monitor is accepted.
 *	Exits 0 once COUNT boxes came and LINGER_MS more passed (so extra
 *	boxes show), 1 when SECONDS pass first (default 20).  COUNT 0 with
 *	-w: run until SECONDS, then exit 0.
 *
 * Exit codes: 0 success, 1 failure or timeout, 2 usage.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "box.h"
#include "conf.h"
#include "cpc.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "log.h"
#include "msg.h"

struct tconf {
	char *identity;
	char *identity_file;
	struct np_hostport server;
	char *server_fingerprint;
	char *known_identities;
	long connect_timeout;
};

static const struct np_conf_kw tconf_table[] = {
	{ "Identity", NP_CONF_IDENT, offsetof(struct tconf, identity), 0,
	    0, 0, "" },
	{ "IdentityFile", NP_CONF_PATH,
	    offsetof(struct tconf, identity_file), 0, 0, 0, "" },
	{ "Server", NP_CONF_HOSTPORT, offsetof(struct tconf, server), 0,
	    0, 0, "" },
	{ "ServerFingerprint", NP_CONF_STR,
	    offsetof(struct tconf, server_fingerprint), 0, 0, 0, "" },
	{ "KnownIdentities", NP_CONF_PATH,
	    offsetof(struct tconf, known_identities), 0, 0, 0, "" },
	{ "ConnectTimeout", NP_CONF_DURATION,
	    offsetof(struct tconf, connect_timeout), 0, 1, 3600, "" },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

struct opts {
	const char *cfg;
	const char *cmd;
	const char *to;
	const char *tag;
	const char *prefix;
	long count;
	long wait_s;
	long linger_ms;
	int noack;
};

struct rx {
	long got;
	int noack;
	int failed;
};

/* ~/.config/noports/identity.key, malloc'ed (NULL without HOME). */
static char *
default_key(void)
{
	const char *home = getenv("HOME");
	char p[PATH_MAX];
	int n;

	if (home == NULL || *home == '\0') {
		return NULL;
	}
	n = snprintf(p, sizeof(p), "%s/.config/noports/identity.key", home);
	if (n < 0 || (size_t)n >= sizeof(p)) {
		return NULL;
	}
	return strdup(p);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: np-tagtest -F CONFIG send @TO [-t TAG] [-n COUNT] "
	    "[-p PREFIX]\n"
	    "       np-tagtest -F CONFIG recv [-t TAG] [-n COUNT] "
	    "[-w SECONDS] [-l LINGER_MS] [-k]\n");
	exit(2);
}

static long
num(const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "np-tagtest: bad number: %s\n", s);
		exit(2);
	}
	return v;
}

static void
parse(int argc, char **argv, struct opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->prefix = "box";
	o->count = 1;
	o->wait_s = 20;
	o->linger_ms = 500;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "-k") == 0) {
			o->noack = 1;
			continue;
		}
		if (a[0] != '-') {
			if (o->cmd == NULL) {
				o->cmd = a;
			} else if (o->to == NULL) {
				o->to = a;
			} else {
				usage();
			}
			continue;
		}
		if (v == NULL || a[1] == '\0' || a[2] != '\0') {
			usage();
		}
		i++;
		switch (a[1]) {
		case 'F': o->cfg = v; break;
		case 't': o->tag = v; break;
		case 'p': o->prefix = v; break;
		case 'n': o->count = num(v, 0, 100000); break;
		case 'w': o->wait_s = num(v, 1, 3600); break;
		case 'l': o->linger_ms = num(v, 0, 600000); break;
		default: usage();
		}
	}
	if (o->cfg == NULL || o->cmd == NULL ||
	    (o->tag != NULL && !np_tag_valid(o->tag))) {
		usage();
	}
	if (strcmp(o->cmd, "send") == 0 ? !np_ident_valid(o->to != NULL ?
	    o->to : "") : strcmp(o->cmd, "recv") != 0 || o->to != NULL) {
		usage();
	}
}

static void
on_push(struct np_cpc *c, const struct np_cpc_push *m, void *arg)
{
	struct rx *rx = arg;
	size_t i;

	printf("%s ", m->tag != NULL ? m->tag : "-");
	for (i = 0; i < m->box_len; i++) {
		putchar(m->box[i] >= 0x20 && m->box[i] < 0x7f ? m->box[i] :
		    '?');
	}
	putchar('\n');
	fflush(stdout);
	rx->got++;
	if (!rx->noack && np_cpc_ack(c, m->seq) != NP_OK) {
		rx->failed = 1;
	}
}

static int
do_send(struct np_cpc *c, const struct opts *o)
{
	char mid[NP_MID_LEN + 1], text[256];
	long i;
	int r;

	for (i = 1; i <= o->count; i++) {
		snprintf(text, sizeof(text), "%s-%ld", o->prefix, i);
		if ((r = np_mid_new(mid)) != NP_OK ||
		    (r = np_cpc_send_tag_sync(c, o->to, mid, 60, o->tag,
		    (const uint8_t *)text, strlen(text), 10000)) != NP_OK) {
			fprintf(stderr, "np-tagtest: send %ld: %s (%s)\n", i,
			    np_strerror(r), np_cpc_detail(c));
			return r;
		}
	}
	return NP_OK;
}

static int
do_recv(struct np_ev *ev, struct np_cpc *c, const struct opts *o)
{
	struct rx rx = { 0, o->noack, 0 };
	uint64_t end, done_at = 0, now;
	int r;

	np_cpc_set_msg_cb(c, on_push, &rx);
	end = np_now_mono_ms() + (uint64_t)o->wait_s * 1000;
	if ((r = np_cpc_monitor_sync(c, 10000)) != NP_OK) {
		fprintf(stderr, "np-tagtest: monitor: %s (%s)\n",
		    np_strerror(r), np_cpc_detail(c));
		return r;
	}
	fprintf(stderr, "monitoring\n");
	while ((now = np_now_mono_ms()) < end && !rx.failed &&
	    np_cpc_is_up(c)) {
		if (o->count > 0 && rx.got >= o->count && done_at == 0) {
			done_at = now + (uint64_t)o->linger_ms;
		}
		if (done_at != 0 && now >= done_at) {
			return NP_OK;
		}
		np_ev_run_once(ev, 50);
	}
	if (o->count == 0 && !rx.failed && np_cpc_is_up(c)) {
		return NP_OK;
	}
	fprintf(stderr, "np-tagtest: got %ld of %ld box(es)%s\n", rx.got,
	    o->count, np_cpc_is_up(c) ? "" : " (connection lost)");
	return NP_ERR_TIMEOUT;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct tconf cf;
	struct np_cpc_conf conf;
	struct np_key *key = NULL;
	struct np_cpc *c = NULL;
	struct np_ev *ev = NULL;
	char err[1024] = "";
	int r;

	parse(argc, argv, &o);
	np_log_init("np-tagtest", 0, NP_LOG_WARN);
	memset(&cf, 0, sizeof(cf));
	cf.connect_timeout = 10;
	cf.identity_file = default_key();
	if ((r = np_conf_load(tconf_table, &cf, o.cfg, err, sizeof(err))) !=
	    NP_OK || cf.server.host == NULL || cf.identity_file == NULL ||
	    cf.server_fingerprint == NULL) {
		fprintf(stderr, "np-tagtest: %s: %s\n", o.cfg,
		    err[0] != '\0' ? err : "incomplete config");
		r = NP_ERR_CONF;
		goto out;
	}
	if ((r = np_crypto_init()) != NP_OK ||
	    (r = np_key_load(cf.identity_file, &key)) != NP_OK ||
	    (ev = np_ev_new()) == NULL) {
		fprintf(stderr, "np-tagtest: key or loop: %s\n",
		    np_strerror(r != NP_OK ? r : NP_ERR_ALLOC));
		r = r != NP_OK ? r : NP_ERR_ALLOC;
		goto out;
	}
	memset(&conf, 0, sizeof(conf));
	conf.host = cf.server.host;
	conf.port = cf.server.port;
	conf.fingerprint = cf.server_fingerprint;
	conf.key = key;
	conf.connect_timeout_ms = (int)cf.connect_timeout * 1000;
	conf.monitor_tag = strcmp(o.cmd, "recv") == 0 ? o.tag : NULL;
	if ((r = np_cpc_new(ev, &conf, &c)) != NP_OK ||
	    (r = np_cpc_connect_wait(c, 10000)) != NP_OK) {
		fprintf(stderr, "np-tagtest: connect: %s (%s)\n",
		    np_strerror(r), c != NULL ? np_cpc_detail(c) : "");
		goto out;
	}
	r = strcmp(o.cmd, "send") == 0 ? do_send(c, &o) : do_recv(ev, c, &o);
	if (r == NP_OK) {
		/* Let the last acks reach the server. */
		for (int i = 0; i < 10 && np_cpc_out_pending(c) > 0; i++) {
			np_ev_run_once(ev, 20);
		}
	}
out:
	np_cpc_free(c);
	np_ev_free(ev);
	np_key_free(key);
	np_conf_free(tconf_table, &cf);
	return r == NP_OK ? 0 : 1;
}
