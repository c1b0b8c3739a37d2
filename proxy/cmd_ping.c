/*
 * np ping DEVICE: an np.ping box to the device's identity, its np.pong
 * back; prints what the device says about itself and the round trip,
 * then tries the relay a session would use (the configured Rendezvous):
 * how long it took to grant a session, and the round trip of a TCP
 * connect + token line through its client endpoint.  Exit 1 only when
 * the device did not answer (docs/CLI.md).
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "diag.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "session.h"
#include "srpick.h"

#define PING_USAGE "np [-F CONFIG] [-v] ping [--no-relay] DEVICE"

static long
ping_timeout(const struct np_cli *cli)
{
	return cli->cfg.session_timeout > 0 ? cli->cfg.session_timeout :
	    NP_CONFIG_DEFAULT_SESSION_TIMEOUT;
}

/* The relay line: "relay @sr: granted ... " or "relay @sr: FAIL: ...". */
static void
relay_line(struct np_cli *cli, struct np_sctx *x, const struct np_target *t,
    const char *sr, const uint8_t *sr_pk)
{
	struct np_relay_try rt;
	char why[512], line[1024];
	int r;

	if (sr == NULL) {
		snprintf(line, sizeof(line), "relay: FAIL: no Rendezvous "
		    "configured (set 'Rendezvous @sr' in %s)",
		    cli->config_path != NULL ? cli->config_path :
		    "the config");
	} else if (sr_pk == NULL) {
		snprintf(line, sizeof(line), "relay %s: FAIL: cannot look up "
		    "%s (the message above says why)", sr, sr);
	} else {
		x->deadline = np_now_mono_ms() +
		    (uint64_t)ping_timeout(cli) * 1000;
		r = np_diag_relay(x, t, sr, sr_pk, &rt, why, sizeof(why));
		if (r == NP_ERR_TIMEOUT && !rt.granted) {
			snprintf(why + strlen(why), sizeof(why) - strlen(why),
			    " (is np-srd running, and does its Allow line "
			    "name %s?)", np_key_name(x->key));
		}
		if (r == NP_OK) {
			snprintf(line, sizeof(line), "relay %s: granted %s in "
			    "%llu ms, connect+token round trip %llu ms", sr,
			    rt.endpoint, (unsigned long long)rt.grant_ms,
			    (unsigned long long)rt.rtt_ms);
		} else if (rt.granted) {
			snprintf(line, sizeof(line), "relay %s: FAIL: granted "
			    "%s in %llu ms, but connecting to it failed: %s",
			    sr, rt.endpoint, (unsigned long long)rt.grant_ms,
			    why);
		} else {
			snprintf(line, sizeof(line), "relay %s: FAIL: %s", sr,
			    why);
		}
	}
	cli_sanitize_inplace(line);
	printf("%s\n", line);
}

/* The device line, or its error on stderr; the verdict on it. */
static int
device_line(const struct np_target *t, struct np_sctx *x, int r,
    const struct np_pong *pong, const char *why)
{
	if (r == NP_OK && strcmp(pong->devices, "-") != 0 &&
	    !pong->has_device) {
		/* It answered, but serves no device of that name. */
		cli_err("%s: %s answered, but serves no device '%s' (it "
		    "serves: %s)", t->host, t->ident, t->device,
		    pong->devices);
		r = NP_ERR_NOT_FOUND;
	} else if (r == NP_OK) {
		printf("%s (%s): np-deviced %s, devices: %s, features: %s, "
		    "rtt %llu ms\n", t->host, t->ident, pong->version,
		    pong->devices, pong->features,
		    (unsigned long long)pong->rtt_ms);
	} else if (r == NP_ERR_TIMEOUT) {
		cli_err("%s: %s (is np-deviced running, and does its Allow "
		    "line name %s?)", t->host, why, np_key_name(x->key));
	} else {
		cli_err("%s: %s", t->host, why);
	}
	fflush(stdout);
	return r;
}

/*
 * Several Rendezvous: their tickets, the device's np.ping carrying them
 * (its line, and its round trips), our probes; one line per rendezvous,
 * best first, the one a session would take marked; the measurement is
 * cached as a session's would be.  *chosen: the relay line's, -1 when
 * none.  The verdict on the device, as for one Rendezvous.
 */
static int
ping_several(struct np_cli *cli, struct np_sctx *x,
    const struct np_target *t, const uint8_t (*pk)[NP_PK_LEN],
    struct np_srpick *p, int *chosen)
{
	const struct np_strlist *l = &cli->cfg.rendezvous_list;
	struct np_srpick_dev dev;
	char line[512], dms[48], cpath[PATH_MAX];
	int known[NP_SRPICK_MAX], r;
	size_t i;

	*chosen = -1;
	memset(&dev, 0, sizeof(dev));
	dev.t = t;
	dev.pk = pk[0];
	dev.wait_ms = (uint64_t)ping_timeout(cli) * 1000;
	for (i = 0; i < l->n; i++) {
		known[i] = 1;
	}
	/* The tickets, the device (SessionTimeout), then our probes, each
	 * step within RendezvousTimeout: a device that does not answer must
	 * not leave the probes without time. */
	x->deadline = np_now_mono_ms() + (uint64_t)ping_timeout(cli) * 1000 +
	    2 * (uint64_t)cli->cfg.rendezvous_timeout * 1000;
	r = np_srpick_measure(x, l, pk + 1, known, &dev, p);
	if (r == NP_OK && dev.r == NP_ERR_AGAIN) {
		/* no tickets came: the device alone */
		x->deadline = np_now_mono_ms() +
		    (uint64_t)ping_timeout(cli) * 1000;
		dev.r = np_diag_ping(x, t, pk[0], &dev.pong, dev.why,
		    sizeof(dev.why));
	}
	if (r != NP_OK) {
		cli_err("%s: control-plane connection lost while probing the "
		    "rendezvous", t->host);
		return r;
	}
	r = device_line(t, x, dev.r, &dev.pong, dev.why);
	for (i = 0; i < p->n; i++) {
		dms[0] = '\0';
		if (p->e[i].dev_ms >= 0) {
			snprintf(dms, sizeof(dms), ", device %ld ms",
			    p->e[i].dev_ms);
		}
		if (p->e[i].rtt_ms >= 0) {
			snprintf(line, sizeof(line), "rendezvous %s: probe "
			    "round trip %ld ms%s%s", p->e[i].id,
			    p->e[i].rtt_ms, dms, i == 0 ? " (chosen)" : "");
		} else {
			snprintf(line, sizeof(line), "rendezvous %s: FAIL: "
			    "%s%s", p->e[i].id, p->e[i].why, i == 0 ?
			    " (chosen: none answered)" : "");
		}
		cli_sanitize_inplace(line);
		printf("%s\n", line);
	}
	*chosen = (int)p->e[0].order;
	if (cli->cfg.rendezvous_cache > 0 && np_srcache_path(&cli->cfg,
	    t->ident, cpath, sizeof(cpath)) == NP_OK) {
		(void)np_srcache_save(cpath, p);
	}
	return r;
}

static int
ping_run(struct np_cli *cli, const struct np_target *t, int no_relay)
{
	struct np_sctx *x = NULL;
	struct np_pong pong;
	struct np_srpick pick;
	const char *sr = no_relay ? NULL : cli->cfg.rendezvous;
	const char *ids[1 + NP_SRPICK_MAX] = { t->ident, sr };
	uint8_t pk[1 + NP_SRPICK_MAX][NP_PK_LEN];
	char why[512];
	long to = ping_timeout(cli);
	size_t n = sr != NULL ? 2 : 1, i;
	int r, sr_known, chosen;

	if ((r = np_sctx_open(cli, np_now_mono_ms() + (uint64_t)to * 1000,
	    to, &x)) != NP_OK) {
		goto out;
	}
	/* All at once, as a session set-up does; then the device alone
	 * when that failed (@sr's failure must not hide the device). */
	if (sr != NULL && cli->cfg.rendezvous_list.n > 1) {
		for (i = 0; i < cli->cfg.rendezvous_list.n; i++) {
			ids[1 + i] = cli->cfg.rendezvous_list.v[i];
		}
		n = 1 + cli->cfg.rendezvous_list.n;
	}
	r = np_sctx_lookup(x, ids, n, pk);
	sr_known = r == NP_OK && n >= 2;
	if (r != NP_OK && n >= 2) {
		r = np_sctx_lookup(x, ids, 1, pk);
	}
	if (r != NP_OK) {
		goto out;
	}
	if (sr_known && n > 2) {
		r = ping_several(cli, x, t, (const uint8_t (*)[NP_PK_LEN])pk,
		    &pick, &chosen);
		if (chosen >= 0) {
			relay_line(cli, x, t, pick.e[0].id, pk[1 + chosen]);
		}
	} else {
		r = np_diag_ping(x, t, pk[0], &pong, why, sizeof(why));
		r = device_line(t, x, r, &pong, why);
		if (!no_relay) {
			relay_line(cli, x, t, sr, sr_known ? pk[1] : NULL);
		}
	}
	if (fflush(stdout) != 0 && r == NP_OK) {
		r = NP_ERR_SYSTEM;
	}
 out:
	np_sctx_free(x);
	return r;
}

int
cmd_ping(struct np_cli *cli, int argc, char **argv)
{
	struct np_target t;
	char why[256];
	int no_relay = 0;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0)) {
		printf("usage: %s\n", PING_USAGE);
		return NP_EXIT_OK;
	}
	/* --no-relay: the device only (scripts that wait for a device);
	 * before or after DEVICE. */
	if (argc == 3 && strcmp(argv[1], "--no-relay") == 0) {
		no_relay = 1;
		argv++;
		argc--;
	} else if (argc == 3 && strcmp(argv[2], "--no-relay") == 0) {
		no_relay = 1;
		argc--;
	}
	if (cli->ev == NULL || argc != 2 || argv[1][0] == '-') {
		return cli_usage(PING_USAGE);
	}
	if (np_target_resolve(argv[1], cli->cfg.aliases, cli->cfg.naliases,
	    &t, why, sizeof(why)) != NP_OK) {
		cli_err("bad device name '%.80s': %s", argv[1], why);
		return NP_EXIT_FAIL;
	}
	return ping_run(cli, &t, no_relay) == NP_OK ? NP_EXIT_OK :
	    NP_EXIT_FAIL;
}
