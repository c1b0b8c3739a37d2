/*
 * np enroll @name --token TOKEN [--server HOST:PORT]
 *     [--fingerprint SHA256:...]
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "conf.h"
#include "config.h"
#include "cpc.h"
#include "err.h"
#include "key.h"

#define ENROLL_USAGE "np enroll @name --token TOKEN [--server HOST:PORT] " \
	"[--fingerprint SHA256:...] [--key KEYFILE]"
#define TOKEN_MAX 128

struct enroll_args {
	char id[NP_IDENT_MAX + 1];
	const char *token;
	const char *server;
	const char *fp;
	const char *key; /* --key FILE: another identity's key file */
};

/* 0: parsed; otherwise the exit code. */
static int
enroll_opts(int argc, char **argv, struct enroll_args *a)
{
	static const struct option opts[] = {
		{ "token", required_argument, NULL, 't' },
		{ "server", required_argument, NULL, 's' },
		{ "fingerprint", required_argument, NULL, 'f' },
		{ "key", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			a->token = optarg;
			break;
		case 's':
			a->server = optarg;
			break;
		case 'f':
			a->fp = optarg;
			break;
		case 'k':
			a->key = optarg;
			break;
		case 'h':
			printf("usage: %s\n", ENROLL_USAGE);
			return -1;
		default:
			return cli_usage(ENROLL_USAGE);
		}
	}
	if (optind + 1 != argc || a->token == NULL) {
		return cli_usage(ENROLL_USAGE);
	}
	if (cli_ident_arg(argv[optind], a->id) != NP_OK) {
		return NP_EXIT_USAGE;
	}
	if (*a->token == '\0' || strlen(a->token) > TOKEN_MAX) {
		cli_err("bad token (1 to %d characters)", TOKEN_MAX);
		return NP_EXIT_USAGE;
	}
	if (a->fp != NULL && !np_config_fp_valid(a->fp)) {
		cli_err("bad fingerprint '%.80s' (want SHA256:...)", a->fp);
		return NP_EXIT_USAGE;
	}
	return 0;
}

static int
enroll_write_config(struct np_cli *cli, const char *id,
    const struct np_hostport *hp, const char *fp)
{
	int r;

	if (cli->config_exists || cli->config_path == NULL) {
		return NP_OK;
	}
	r = np_config_write_new(cli->config_path, id, hp->host, hp->port, fp);
	if (r == NP_ERR_EXISTS) {
		return NP_OK; /* appeared meanwhile: leave it alone */
	}
	if (r != NP_OK) {
		cli_err("%s: cannot write the config: %s", cli->config_path,
		    np_strerror(r));
		return r;
	}
	cli_step(cli, "wrote %s", cli->config_path);
	return NP_OK;
}

static int
enroll_server(struct np_cli *cli, const struct enroll_args *a,
    struct np_hostport *hp, const char **fp)
{
	if (a->server != NULL) {
		if (np_hostport_parse(a->server, hp) != NP_OK) {
			cli_err("bad server '%.80s' (want HOST:PORT)",
			    a->server);
			return NP_EXIT_USAGE;
		}
	} else if (cli->cfg.server.host != NULL) {
		if ((hp->host = strdup(cli->cfg.server.host)) == NULL ||
		    (hp->port = strdup(cli->cfg.server.port)) == NULL) {
			cli_err("out of memory");
			return NP_EXIT_FAIL;
		}
	} else {
		cli_err("no server: give --server HOST:PORT or set Server "
		    "in %s", cli->config_path != NULL ? cli->config_path :
		    "the config");
		return NP_EXIT_USAGE;
	}
	*fp = a->fp != NULL ? a->fp : cli->cfg.server_fingerprint;
	if (*fp == NULL) {
		cli_err("no server fingerprint: give --fingerprint "
		    "SHA256:... or set ServerFingerprint in %s",
		    cli->config_path != NULL ? cli->config_path :
		    "the config");
		return NP_EXIT_USAGE;
	}
	return 0;
}

int
cmd_enroll(struct np_cli *cli, int argc, char **argv)
{
	struct enroll_args a;
	struct np_hostport hp = { NULL, NULL, NULL };
	struct np_key *k = NULL;
	struct np_cpc *c = NULL;
	const char *fp = NULL;
	int rc;

	memset(&a, 0, sizeof(a));
	if ((rc = enroll_opts(argc, argv, &a)) != 0) {
		return rc < 0 ? NP_EXIT_OK : rc;
	}
	if ((rc = enroll_server(cli, &a, &hp, &fp)) != 0) {
		goto out;
	}
	rc = NP_EXIT_FAIL;
	/* A daemon's key (np-deviced, np-srd): enrolled from its own file;
	 * no client config is written for it. */
	if (a.key != NULL) {
		free(cli->cfg.identity_file);
		if ((cli->cfg.identity_file = strdup(a.key)) == NULL) {
			cli_err("out of memory");
			goto out;
		}
		free(cli->cfg.identity); /* ours, not the daemon's */
		cli->cfg.identity = NULL;
		cli->config_exists = 1;
	}
	if (cli_load_key(cli, &k) != NP_OK) {
		goto out;
	}
	if (strcmp(np_key_name(k), a.id) != 0) {
		cli_err("%s holds the key of %s, not %s",
		    cli->cfg.identity_file, np_key_name(k), a.id);
		goto out;
	}
	if (cli_connect(cli, k, a.token, hp.host, hp.port, fp, &c) != NP_OK) {
		goto out;
	}
	if (enroll_write_config(cli, a.id, &hp, fp) != NP_OK) {
		goto out;
	}
	printf("enrolled %s at %s%s%s:%s\n", a.id,
	    strchr(hp.host, ':') != NULL ? "[" : "", hp.host,
	    strchr(hp.host, ':') != NULL ? "]" : "", hp.port);
	rc = fflush(stdout) == 0 ? NP_EXIT_OK : NP_EXIT_FAIL;
 out:
	if (c != NULL) {
		np_cpc_stop(c);
	}
	np_cpc_free(c);
	np_key_free(k);
	np_hostport_free(&hp);
	return rc;
}
