/*
 * Helpers shared by the np subcommands: messages, argument checks, key
 * loading, connecting, and pinned lookups.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cpc.h"
#include "err.h"
#include "ident.h"
#include "key.h"
#include "log.h"
#include "pin.h"

void
cli_err(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cli_sanitize_inplace(msg);
	fprintf(stderr, "np: %s\n", msg);
}

void
cli_step(const struct np_cli *cli, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!cli->verbose) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "np: %s (%llu ms)\n", msg,
	    (unsigned long long)(np_now_mono_ms() - cli->t0));
}

int
cli_usage(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	return NP_EXIT_USAGE;
}

int
cli_parse_long(const char *s, long min, long max, long *v)
{
	char *end;
	long l;

	if (s == NULL || *s < '0' || *s > '9') {
		return -1;
	}
	errno = 0;
	l = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || l < min || l > max) {
		return -1;
	}
	*v = l;
	return 0;
}

int
cli_ident_arg(const char *arg, char out[NP_IDENT_MAX + 1])
{
	if (np_ident_norm(arg, out, NP_IDENT_MAX + 1) != NP_OK) {
		cli_err("bad identity '%.64s' (want @name: a-z, 0-9, '_', "
		    "'.', '-', at most %d characters)", arg, NP_NAME_MAX);
		return NP_ERR_INVALID;
	}
	return NP_OK;
}

void
cli_sanitize_inplace(char *s)
{
	unsigned char *u = (unsigned char *)s;

	for (; *u != '\0'; u++) {
		if (*u < 0x20 || *u == 0x7f) {
			*u = '?';
		} else if (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f) {
			u[0] = u[1] = '?'; /* C1 control, e.g. U+009B CSI */
			u++;
		}
	}
}

char *
cli_sanitize(const char *s)
{
	size_t n = strlen(s), i, j;
	const unsigned char *u = (const unsigned char *)s;
	char *d;

	if ((d = malloc(n + 1)) == NULL) {
		return NULL;
	}
	for (i = j = 0; i < n; i++) {
		if (u[i] < 0x20 || u[i] == 0x7f) {
			d[j++] = '?';
		} else if (u[i] == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 &&
		    u[i + 1] <= 0x9f) {
			d[j++] = '?'; /* C1 control, e.g. U+009B CSI */
			i++;
		} else {
			d[j++] = (char)u[i];
		}
	}
	d[j] = '\0';
	return d;
}

int
cli_print_key(const char *id, const uint8_t pk[NP_PK_LEN], int with_fp)
{
	char b64[NP_PK_B64_MAX], fp[NP_FP_MAX];
	int r;

	if ((r = np_b64_encode(pk, NP_PK_LEN, b64, sizeof(b64))) != NP_OK) {
		return r;
	}
	if (with_fp) {
		if ((r = np_fingerprint(pk, NP_PK_LEN, fp, sizeof(fp))) !=
		    NP_OK) {
			return r;
		}
		printf("%s ed25519 %s %s\n", id, b64, fp);
	} else {
		printf("%s ed25519 %s\n", id, b64);
	}
	return fflush(stdout) == 0 && !ferror(stdout) ? NP_OK :
	    NP_ERR_SYSTEM;
}

int
cli_load_key(struct np_cli *cli, struct np_key **out)
{
	const char *path = cli->cfg.identity_file;
	int r;

	*out = NULL;
	if (path == NULL) {
		cli_err("no IdentityFile (HOME is not set)");
		return NP_ERR_CONF;
	}
	if ((r = np_key_load(path, out)) != NP_OK) {
		if (r == NP_ERR_NOT_FOUND) {
			cli_err("%s: no identity key (run 'np keygen @name' "
			    "first)", path);
		} else {
			cli_err("%s: cannot load the identity key: %s", path,
			    np_strerror(r));
		}
		return r;
	}
	if (cli->cfg.identity != NULL &&
	    strcmp(cli->cfg.identity, np_key_name(*out)) != 0) {
		cli_err("%s holds the key of %s, but Identity is %s", path,
		    np_key_name(*out), cli->cfg.identity);
		np_key_free(*out);
		*out = NULL;
		return NP_ERR_CONF;
	}
	cli_step(cli, "loaded the key of %s from %s", np_key_name(*out),
	    path);
	return NP_OK;
}

int
cli_timeout_ms(const struct np_cli *cli)
{
	long s = cli->cfg.connect_timeout > 0 ? cli->cfg.connect_timeout :
	    NP_CONFIG_DEFAULT_TIMEOUT;

	if (cli->timeout_override_ms > 0) {
		return cli->timeout_override_ms;
	}
	return (int)(s * 1000);
}

static void
cli_connect_err(struct np_cpc *c, int r, const char *host,
    const char *port, const char *id, int enrolling)
{
	const char *d = np_cpc_detail(c);

	switch (r) {
	case NP_ERR_FINGERPRINT:
		cli_err("server fingerprint mismatch: %s", d);
		break;
	case NP_ERR_AUTH:
	case NP_ERR_REVOKED:
	case NP_ERR_TOKEN:
	case NP_ERR_EXISTS:
		cli_err("%s of %s refused by %s port %s: %s%s%s%s",
		    enrolling ? "enrollment" : "authentication", id, host,
		    port, np_strerror(r), *d != '\0' ? " (" : "", d,
		    *d != '\0' ? ")" : "");
		break;
	case NP_ERR_UNREACHABLE:
	case NP_ERR_TIMEOUT:
		if (*d != '\0') {
			cli_err("%s", d);
		} else {
			cli_err("cannot connect to %s port %s: %s", host,
			    port, np_strerror(r));
		}
		break;
	default:
		if (*d != '\0') {
			cli_err("%s: %s", d, np_strerror(r));
		} else {
			cli_err("cannot connect to %s port %s: %s", host,
			    port, np_strerror(r));
		}
		break;
	}
}

static int
cli_connect_ex(struct np_cli *cli, struct np_key *key, const char *token,
    const char *host, const char *port, const char *fp, const char *tag,
    struct np_cpc **out)
{
	struct np_cpc_conf conf;
	struct np_cpc *c = NULL;
	int fleet = 0, r;

	*out = NULL;
	if (host == NULL) {
		host = cli->cfg.server.host;
		port = cli->cfg.server.port;
		fleet = host != NULL;
	}
	if (fp == NULL) {
		fp = cli->cfg.server_fingerprint;
	}
	if (host == NULL || fp == NULL) {
		cli_err("no %s configured (set %s in %s)",
		    host == NULL ? "server" : "server fingerprint",
		    host == NULL ? "Server" : "ServerFingerprint",
		    cli->config_path != NULL ? cli->config_path : "the config");
		return NP_ERR_CONF;
	}
	memset(&conf, 0, sizeof(conf));
	conf.host = host;
	conf.port = port;
	if (fleet) {
		conf.servers = &cli->cfg.server;
	}
	conf.fingerprint = fp;
	conf.key = key;
	conf.token = token;
	conf.monitor_tag = tag;
	conf.connect_timeout_ms = cli_timeout_ms(cli);
	if ((r = np_cpc_new(cli->ev, &conf, &c)) != NP_OK) {
		cli_err("cannot set up the connection: %s", np_strerror(r));
		return r;
	}
	r = np_cpc_connect_wait(c, cli_timeout_ms(cli));
	np_cpc_server(c, &host, &port);
	if (r != NP_OK) {
		cli_connect_err(c, r, host, port, np_key_name(key),
		    token != NULL);
		np_cpc_free(c);
		return r;
	}
	cli_step(cli, "connected to %s port %s as %s", host, port,
	    np_key_name(key));
	*out = c;
	return NP_OK;
}

int
cli_connect(struct np_cli *cli, struct np_key *key, const char *token,
    const char *host, const char *port, const char *fp,
    struct np_cpc **out)
{
	return cli_connect_ex(cli, key, token, host, port, fp, NULL, out);
}

int
cli_connect_tag(struct np_cli *cli, struct np_key *key, const char *tag,
    struct np_cpc **out)
{
	return cli_connect_ex(cli, key, NULL, NULL, NULL, NULL, tag, out);
}

void
cli_req_err(struct np_cpc *c, int r, const char *what)
{
	const char *d = np_cpc_detail(c);

	if (*d != '\0') {
		cli_err("%s: %s (%s)", what, np_strerror(r), d);
	} else {
		cli_err("%s: %s", what, np_strerror(r));
	}
}

static int
cli_save_pins(struct np_pins *pins, const char *path)
{
	int r;

	if ((r = np_mkdir_parent(path)) != NP_OK ||
	    (r = np_pins_save(pins, path)) != NP_OK) {
		cli_err("%s: cannot save pins: %s", path, np_strerror(r));
	}
	return r;
}

int
cli_lookup_pinned(struct np_cli *cli, struct np_cpc *c, const char *id,
    struct np_cpc_lookup_res *res, enum cli_pin_result *pr,
    uint8_t pinned[NP_PK_LEN])
{
	const char *path = cli->cfg.known_identities;
	struct np_pins *pins = NULL;
	int r, had, changed = 0;

	if (path == NULL) {
		cli_err("no KnownIdentities file (HOME is not set)");
		return NP_ERR_CONF;
	}
	if ((r = np_cpc_lookup_sync(c, id, cli_timeout_ms(cli), res)) !=
	    NP_OK) {
		cli_req_err(c, r, id);
		return r;
	}
	cli_step(cli, "looked up %s", id);
	if ((r = np_pins_load(path, &pins)) != NP_OK) {
		cli_err("%s: cannot load pins: %s", path, np_strerror(r));
		return r;
	}
	had = np_pins_get(pins, id, pinned) == NP_OK;
	r = np_pins_check(pins, id, res->pk, res->rot, res->nrot, 1,
	    &changed);
	if (r == NP_ERR_KEY_CHANGED) {
		*pr = CLI_PIN_CHANGED;
		goto out;
	}
	if (r != NP_OK) {
		cli_err("%s: pin check failed: %s", id, np_strerror(r));
		goto out;
	}
	*pr = !changed ? CLI_PIN_MATCH : had ? CLI_PIN_ROTATED : CLI_PIN_NEW;
	if (changed && (r = cli_save_pins(pins, path)) != NP_OK) {
		goto out;
	}
 out:
	np_pins_free(pins);
	return r;
}
