/*
 * np-server init -d DIR [--cn NAME]
 */
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "srv_cli.h"
#include "err.h"
#include "key.h"
#include "tls.h"

static const char init_usage[] =
    "usage: np-server init -d DIR [--cn NAME]\n"
    "  Create DIR (0700) with a new database, a self-signed TLS key and\n"
    "  certificate and a commented server.conf; print the certificate\n"
    "  fingerprint that clients pin.\n";

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

static int
init_conf(const char *dir)
{
	struct np_buf *b = NULL;
	char p[4096];
	int r;

	if ((r = srv_path(p, sizeof(p), dir, SRV_CONF_FILE)) != NP_OK) {
		return r;
	}
	if ((b = np_buf_new(64 * 1024)) == NULL) {
		return NP_ERR_ALLOC;
	}
	if ((r = srv_conf_default_text(b)) == NP_OK) {
		r = np_file_write_atomic(p, np_buf_ptr(b), np_buf_len(b), 0);
	}
	if (r == NP_ERR_EXISTS) {
		fprintf(stderr, "np-server: keeping the existing %s\n", p);
		r = NP_OK;
	} else if (r != NP_OK) {
		srv_err("cannot write %s: %s", p, np_strerror(r));
	}
	np_buf_free(b);
	return r;
}

static int
init_run(const char *dir, const char *cn)
{
	char db[4096], key[4096], crt[4096], fp[NP_FP_MAX];
	struct np_store *s = NULL;
	int r;

	if ((r = init_dir(dir)) != NP_OK) {
		return r;
	}
	if (srv_path(db, sizeof(db), dir, SRV_DB_FILE) != NP_OK ||
	    srv_path(key, sizeof(key), dir, SRV_KEY_FILE) != NP_OK ||
	    srv_path(crt, sizeof(crt), dir, SRV_CERT_FILE) != NP_OK) {
		srv_err("%s: path too long", dir);
		return NP_ERR_TOO_BIG;
	}
	if ((r = np_tls_make_selfsigned(crt, key, cn)) != NP_OK) {
		srv_err("cannot create %s / %s: %s", crt, key, np_strerror(r));
		return r;
	}
	if ((r = np_store_open(db, NP_STORE_CREATE, &s)) != NP_OK) {
		srv_err("cannot create %s: %s", db, np_strerror(r));
		unlink(crt);
		unlink(key);
		return r;
	}
	np_store_close(s);
	if ((r = init_conf(dir)) != NP_OK) {
		return r;
	}
	if ((r = np_tls_cert_fingerprint(crt, fp, sizeof(fp))) != NP_OK) {
		srv_err("cannot read %s: %s", crt, np_strerror(r));
		return r;
	}
	printf("%s\n", fp);
	return NP_OK;
}

int
srv_cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"cn", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL, *cn = "np-server";
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
	return init_run(dir, cn) == NP_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
