/*
 * np-server init -d DIR [--cn NAME] [--store FILE-OR-URI]
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "srv_cli.h"
#include "err.h"
#include "key.h"
#include "tls.h"

static const char init_usage[] =
    "usage: np-server init -d DIR [--cn NAME] [--store FILE-OR-URI]\n"
    "  Create DIR (0700) with a new database, a self-signed TLS key and\n"
    "  certificate and a commented server.conf; print the certificate\n"
    "  fingerprint that clients pin.  The database is the Store of\n"
    "  --store or of an existing DIR/server.conf (a postgresql:// URI:\n"
    "  its tables are created there), else DIR/np.db.\n";

/* mkdir -p, every new directory 0700. */
static int
mkdir_parents(const char *dir)
{
	char p[4096];
	size_t i, n = strlen(dir);

	if (n == 0 || n >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, dir, n + 1);
	for (i = 1; i < n; i++) {
		if (p[i] != '/') {
			continue;
		}
		p[i] = '\0';
		if (mkdir(p, 0700) == -1 && errno != EEXIST) {
			return -1;
		}
		p[i] = '/';
	}
	return mkdir(p, 0700) == -1 && errno != EEXIST ? -1 : 0;
}

/* DIR must be new or must not hold a database or key yet. */
static int
init_dir(const char *dir)
{
	char p[4096];
	struct stat st;

	if (mkdir_parents(dir) == -1) {
		srv_err("cannot create %s: %s", dir, strerror(errno));
		return NP_ERR_SYSTEM;
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		srv_err("%s is not a directory", dir);
		return NP_ERR_INVALID;
	}
	if ((st.st_mode & 077) != 0) {
		fprintf(stderr,
			"np-server: warning: %s is accessible by group "
			"or other (mode %03o)\n",
			dir, (unsigned)(st.st_mode & 0777));
	}
	if (srv_path(p, sizeof(p), dir, SRV_DB_FILE) != NP_OK) {
		srv_err("%s: path too long", dir);
		return NP_ERR_TOO_BIG;
	}
	if (lstat(p, &st) == 0) {
		srv_err("%s already exists", p);
		return NP_ERR_EXISTS;
	}
	if (srv_path(p, sizeof(p), dir, SRV_KEY_FILE) != NP_OK ||
	    lstat(p, &st) == 0) {
		srv_err("%s already exists", p);
		return NP_ERR_EXISTS;
	}
	return NP_OK;
}

/* A new server.conf (0600: a Store URI may hold a password) with store
 * as its Store when given; an existing one is kept. */
static int
init_conf(const char *dir, const char *store)
{
	struct np_buf *b = NULL;
	char p[4096];
	int r;

	if ((r = srv_path(p, sizeof(p), dir, SRV_CONF_FILE)) != NP_OK) {
		return r;
	}
	if ((b = np_buf_new_secure(64 * 1024)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = srv_conf_default_text(b, store)) == NP_OK) {
		r = np_file_write_atomic(p, np_buf_ptr(b), np_buf_len(b), 0);
	}
	if (r == NP_ERR_EXISTS) {
		fprintf(stderr, "np-server: keeping the existing %s%s\n", p,
			store != NULL ? " (add the Store line to it)" : "");
		r = NP_OK;
	} else if (r != NP_OK) {
		srv_err("cannot write %s: %s", p, np_strerror(r));
	}
	np_buf_free(b); /* wipes */
	return r;
}

/* The database to create: --store, else the Store of an existing
 * DIR/server.conf, else DIR/np.db. */
static int
init_target(const char *dir, const char *store, char *out, size_t outlen)
{
	struct srv_conf c;
	char p[4096], err[600];
	int r;

	srv_conf_init(&c);
	if ((r = srv_path(p, sizeof(p), dir, SRV_CONF_FILE)) != NP_OK) {
		srv_err("%s: path too long", dir);
		return r;
	}
	if (store != NULL) {
		if ((c.store = strdup(store)) == NULL) {
			return NP_ERR_ALLOC;
		}
		r = srv_conf_check(&c, "--store", err, sizeof(err));
	} else if (access(p, F_OK) == 0) {
		r = srv_conf_load(&c, p, err, sizeof(err));
	} else {
		r = srv_conf_check(&c, NULL, err, sizeof(err));
	}
	if (r != NP_OK) {
		srv_err("%s", err);
	} else if ((r = srv_store_target(&c, dir, out, outlen)) != NP_OK) {
		srv_err("%s: path too long", dir);
	}
	srv_conf_free(&c);
	return r;
}

static int
init_run(const char *dir, const char *cn, const char *store)
{
	char db[SRV_STORE_MAX + 4096], key[4096], crt[4096], fp[NP_FP_MAX];
	struct np_store *s = NULL;
	int r;

	if ((r = init_dir(dir)) != NP_OK ||
	    (r = init_target(dir, store, db, sizeof(db))) != NP_OK) {
		goto out;
	}
	if (srv_path(key, sizeof(key), dir, SRV_KEY_FILE) != NP_OK ||
	    srv_path(crt, sizeof(crt), dir, SRV_CERT_FILE) != NP_OK) {
		srv_err("%s: path too long", dir);
		r = NP_ERR_TOO_BIG;
		goto out;
	}
	if ((r = np_tls_make_selfsigned(crt, key, cn)) != NP_OK) {
		srv_err("cannot create %s / %s: %s", crt, key, np_strerror(r));
		goto out;
	}
	if ((r = srv_open_store_at(db, NP_STORE_CREATE, &s)) != NP_OK) {
		unlink(crt);
		unlink(key);
		goto out;
	}
	np_store_close(s);
	if ((r = init_conf(dir, store)) != NP_OK) {
		goto out;
	}
	if ((r = np_tls_cert_fingerprint(crt, fp, sizeof(fp))) != NP_OK) {
		srv_err("cannot read %s: %s", crt, np_strerror(r));
		goto out;
	}
	printf("%s\n", fp);
	r = NP_OK;
out:
	sodium_memzero(db, sizeof(db));
	return r;
}

int
srv_cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"cn", required_argument, NULL, 'c'},
	    {"store", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *cn = "np-server", *store = NULL;
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'c':
			cn = optarg;
			break;
		case 's':
			store = optarg;
			break;
		case 'h':
			fputs(init_usage, stdout);
			return CLI_EXIT_OK;
		default:
			fputs(init_usage, stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (dir == NULL || optind != argc || *dir == '\0') {
		fputs(init_usage, stderr);
		return CLI_EXIT_USAGE;
	}
	if (*cn == '\0' || strlen(cn) > 64) {
		srv_err("--cn: 1 to 64 characters");
		return CLI_EXIT_USAGE;
	}
	return init_run(dir, cn, store) == NP_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
