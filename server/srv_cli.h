/*
 * np-server's command line: the subcommand table, the server
 * configuration (server.conf) and small helpers the subcommands share.
 */
#ifndef NP_SRV_SRV_CLI_H
#define NP_SRV_SRV_CLI_H

#include <stddef.h>

#include "buf.h"
#include "conf.h"
#include "ident.h"
#include "store.h"

#define NP_SERVER_VERSION "0.1.0"
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#define SRV_DB_FILE "np.db"
#define SRV_KEY_FILE "tls.key"
#define SRV_CERT_FILE "tls.crt"
#define SRV_CONF_FILE "server.conf"

#define SRV_DEFAULT_LISTEN "127.0.0.1:6464"
#define SRV_DEFAULT_MAX_CONNS 20000
#define SRV_DEFAULT_MAX_UNAUTH 32
#define SRV_DEFAULT_AUTH_TIMEOUT 10
#define SRV_DEFAULT_QUEUE_MAX 1000
#define SRV_DEFAULT_MAX_TTL 604800
#define SRV_DEFAULT_LOG_LEVEL "info"
#define SRV_STORE_MAX 1024 /* a Store path or URI, with its NUL */

struct srv_conf {
	char *listen; /* ADDR:PORT; port 0 allowed (see srv_listen_parse) */
	long max_conns;
	long max_unauth;
	long auth_timeout; /* seconds */
	long queue_max;
	long max_ttl; /* seconds */
	char *log_level;
	/* Store: NULL for DIR/np.db; a postgresql:// URI; a file (relative
	 * to the data directory) */
	char *store;
};

struct srv_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

int srv_cmd_init(int argc, char **argv);
int srv_cmd_fingerprint(int argc, char **argv);
int srv_cmd_token(int argc, char **argv);
int srv_cmd_revoke(int argc, char **argv);
int srv_cmd_list(int argc, char **argv);
int srv_cmd_run(int argc, char **argv);

/* The keyword table (read-only). */
extern const struct np_conf_kw srv_conf_table[];

/* Defaults, then optionally a file (path may be NULL). */
void srv_conf_init(struct srv_conf *c);
int srv_conf_load(struct srv_conf *c, const char *path, char *err,
		  size_t errlen);
/* The checks and defaults after parsing (path: for messages, may be
 * NULL).  Pure; srv_conf_load ends with it. */
int srv_conf_check(struct srv_conf *c, const char *path, char *err,
		   size_t errlen);
void srv_conf_free(struct srv_conf *c);
/* Text of a server.conf with every keyword commented out at its default;
 * store, when not NULL, is written as an active Store line. */
int srv_conf_default_text(struct np_buf *out, const char *store);
/*
 * "host:port" or "[v6]:port" where port may be 0 (a free port), which
 * np_hostport_parse() refuses.
 */
int srv_listen_parse(const char *s, struct np_hostport *hp);
/* "error" | "warn" | "info" | "debug" -> NP_LOG_*.  NP_ERR_CONF. */
int srv_log_level_parse(const char *s, int *level);

/* "np-server: message" on stderr. */
void srv_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* dir + "/" + file into out.  NP_ERR_TOO_BIG. */
int srv_path(char *out, size_t outlen, const char *dir, const char *file);
/* Normalise a command-line identity ("name" or "@name"). */
int srv_ident(const char *arg, char out[NP_IDENT_MAX + 1]);
/*
 * Where the store is: c->store (a URI as it is, a relative file under
 * dir), or dir/np.db when c is NULL or has no Store.  NP_ERR_TOO_BIG.
 */
int srv_store_target(const struct srv_conf *c, const char *dir, char *out,
		     size_t outlen);
/*
 * Open the store of data directory DIR: the Store of DIR/server.conf when
 * that file exists (else DIR/np.db), reporting failures (the URI's
 * password redacted); NP_OK or an error already told.
 */
int srv_open_store(const char *dir, struct np_store **out);
/* Open the store at target (srv_store_target) with flags, reporting
 * failures under the name what ("open", "create"). */
int srv_open_store_at(const char *target, int flags, struct np_store **out);

#endif
