/*
 * np ping DEVICE: an np.ping box to the device's identity, its np.pong
 * back; prints what the device says about itself and the round trip,
 * then tries the relay a session would use (the configured Rendezvous):
 * how long it took to grant a session, and the round trip of a TCP
 * connect + token line through its client endpoint.  Exit 1 only when
 * the device did not answer (docs/CLI.md).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "diag.h"
#include "err.h"
#include "ev.h"
#include "key.h"
#include "session.h"

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

static int
ping_run(struct np_cli *cli, const struct np_target *t, int no_relay)
{
	struct np_sctx *x = NULL;
	struct np_pong pong;
	const char *sr = no_relay ? NULL : cli->cfg.rendezvous;
	const char *ids[2] = { t->ident, sr };
	uint8_t pk[2][NP_PK_LEN];
	char why[512];
	long to = ping_timeout(cli);
	size_t n = sr != NULL ? 2 : 1;
	int r, sr_known;

	if ((r = np_sctx_open(cli, np_now_mono_ms() + (uint64_t)to * 1000,
	    to, &x)) != NP_OK) {
		goto out;
	}
	/* Both at once, as a session set-up does; then the device alone
	 * when that failed (@sr's failure must not hide the device). */
	r = np_sctx_lookup(x, ids, n, pk);
	sr_known = r == NP_OK && n == 2;
	if (r != NP_OK && n == 2) {
		r = np_sctx_lookup(x, ids, 1, pk);
	}
	if (r != NP_OK) {
		goto out;
	}
	r = np_diag_ping(x, t, pk[0], &pong, why, sizeof(why));
	if (r == NP_OK && strcmp(pong.devices, "-") != 0 && !pong.has_device) {
		/* It answered, but serves no device of that name. */
		cli_err("%s: %s answered, but serves no device '%s' (it "
		    "serves: %s)", t->host, t->ident, t->device, pong.devices);
		r = NP_ERR_NOT_FOUND;
	} else if (r == NP_OK) {
		printf("%s (%s): np-deviced %s, devices: %s, features: %s, "
		    "rtt %llu ms\n", t->host, t->ident, pong.version,
		    pong.devices, pong.features,
		    (unsigned long long)pong.rtt_ms);
	} else if (r == NP_ERR_TIMEOUT) {
		cli_err("%s: %s (is np-deviced running, and does its Allow "
		    "line name %s?)", t->host, why, np_key_name(x->key));
	} else {
		cli_err("%s: %s", t->host, why);
	}
	fflush(stdout);
	if (!no_relay) {
		relay_line(cli, x, t, sr, sr_known ? pk[1] : NULL);
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
