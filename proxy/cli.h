/*
 * Shared state and helpers of the np subcommands.
 */
#ifndef NP_PROXY_CLI_H
#define NP_PROXY_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "config.h"
#include "cpc.h"
#include "ev.h"
#include "key.h"

#define NP_VERSION "0.1.0"

/* Exit codes (docs/CLI.md). */
#define NP_EXIT_OK 0
#define NP_EXIT_FAIL 1
#define NP_EXIT_USAGE 2

struct np_cli {
	const char *config_path; /* the file in effect */
	int config_given;	 /* -F or NP_CONFIG */
	int config_exists;	 /* it was there when loaded */
	int verbose;
	struct np_config cfg;
	struct np_ev *ev;
	uint64_t t0;		 /* start, for -v step timings */
	int timeout_override_ms; /* >0: cli_timeout_ms() returns this */
};

typedef int np_cmd_fn(struct np_cli *cli, int argc, char **argv);

struct np_cmd {
	const char *name;
	np_cmd_fn *fn;
	const char *help;
	int config_optional; /* a missing -F/NP_CONFIG file is fine */
};
/* config_optional: the subcommand loads the config itself and reports
 * what is wrong with it (np doctor); cli->cfg holds the defaults when
 * the file does not load. */
#define NP_CMD_CONFIG_OWN 2

int cmd_keygen(struct np_cli *, int, char **);
int cmd_enroll(struct np_cli *, int, char **);
int cmd_lookup(struct np_cli *, int, char **);
int cmd_pin(struct np_cli *, int, char **);
int cmd_rotate(struct np_cli *, int, char **);
int cmd_send(struct np_cli *, int, char **);
int cmd_recv(struct np_cli *, int, char **);
int cmd_proxy(struct np_cli *, int, char **);
int cmd_ssh(struct np_cli *, int, char **);
int cmd_ping(struct np_cli *, int, char **);
int cmd_tunnel(struct np_cli *, int, char **);
int cmd_doctor(struct np_cli *, int, char **);

/* "np: message" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* With -v: "np: step (N ms since start)" on stderr. */
void cli_step(const struct np_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Print usage on stderr; returns NP_EXIT_USAGE. */
int cli_usage(const char *usage);
/* Parse a decimal in [min, max]; 0 on success. */
int cli_parse_long(const char *s, long min, long max, long *v);
/* Normalise an identity argument ("@name" or "name"); prints the error. */
int cli_ident_arg(const char *arg, char out[NP_IDENT_MAX + 1]);
/* Replace control characters (C0, DEL, C1) with '?': new string. */
char *cli_sanitize(const char *s);
/* The same in place, each C1 control's two bytes becoming "??" (cli_err
 * prints peers' refusal reasons through it). */
void cli_sanitize_inplace(char *s);

/* "@name ed25519 <base64 pk>" (+ " SHA256:<fp of pk>" when with_fp) on
 * stdout, flushed. */
int cli_print_key(const char *id, const uint8_t pk[NP_PK_LEN], int with_fp);

/* Load IdentityFile (checks Identity matches the key, when set). */
int cli_load_key(struct np_cli *cli, struct np_key **out);
/* Connect and authenticate (or enroll, token != NULL).  host/port/fp
 * NULL: from the config.  Prints the error. */
int cli_connect(struct np_cli *cli, struct np_key *key, const char *token,
    const char *host, const char *port, const char *fp,
    struct np_cpc **out);
/* cli_connect to the configured server, monitoring (once monitor is
 * asked for) only boxes sent with tag (NULL: untagged ones). */
int cli_connect_tag(struct np_cli *cli, struct np_key *key, const char *tag,
    struct np_cpc **out);
/* The wait for one request, in ms. */
int cli_timeout_ms(const struct np_cli *cli);
/* Print an error for a failed request: "np: what: reason (detail)". */
void cli_req_err(struct np_cpc *c, int r, const char *what);

/* Pin outcome of a lookup. */
enum cli_pin_result {
	CLI_PIN_MATCH,
	CLI_PIN_NEW,
	CLI_PIN_ROTATED,
	CLI_PIN_CHANGED,
};
/* Look up id and check/update its pin; *pr tells what happened (on
 * NP_ERR_KEY_CHANGED: CLI_PIN_CHANGED, pin untouched, *pinned set).
 * Prints errors other than KEY_CHANGED. */
int cli_lookup_pinned(struct np_cli *cli, struct np_cpc *c, const char *id,
    struct np_cpc_lookup_res *res, enum cli_pin_result *pr,
    uint8_t pinned[NP_PK_LEN]);

#endif
