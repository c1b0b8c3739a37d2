/*
 * The np client's configuration table and its defaults.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "conf.h"
#include "err.h"
#include "key.h"

const struct np_conf_kw np_config_table[] = {
	{ "Identity", NP_CONF_IDENT, offsetof(struct np_config, identity), 0,
	    0, 0, "this client's identity, @name" },
	{ "IdentityFile", NP_CONF_PATH,
	    offsetof(struct np_config, identity_file), 0, 0, 0,
	    "the identity key file" },
	{ "Server", NP_CONF_HOSTPORT, offsetof(struct np_config, server), 0,
	    0, 0, "the control-plane server, HOST:PORT" },
	{ "ServerFingerprint", NP_CONF_STR,
	    offsetof(struct np_config, server_fingerprint), 0, 0, 0,
	    "the server certificate's SHA256: fingerprint" },
	{ "KnownIdentities", NP_CONF_PATH,
	    offsetof(struct np_config, known_identities), 0, 0, 0,
	    "pinned identity keys" },
	{ "ConnectTimeout", NP_CONF_DURATION,
	    offsetof(struct np_config, connect_timeout), 0, 1, 3600,
	    "seconds to connect and authenticate" },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

int
np_config_path(const char *leaf, char *out, size_t outlen)
{
	const char *home = getenv("HOME");
	int n;

	if (home == NULL || *home == '\0') {
		return NP_ERR_CONF;
	}
	if (leaf != NULL) {
		n = snprintf(out, outlen, "%s/%s/%s", home, NP_CONFIG_DIR,
		    leaf);
	} else {
		n = snprintf(out, outlen, "%s/%s", home, NP_CONFIG_DIR);
	}
	if (n < 0 || (size_t)n >= outlen) {
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

static int
default_path(char **dst, const char *leaf)
{
	char p[PATH_MAX];
	int r;

	if ((r = np_config_path(leaf, p, sizeof(p))) != NP_OK) {
		return r == NP_ERR_CONF ? NP_OK : r; /* no HOME: no default */
	}
	if ((*dst = strdup(p)) == NULL) {
		return NP_ERR_ALLOC;
	}
	return NP_OK;
}

int
np_config_defaults(struct np_config *cfg)
{
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->connect_timeout = NP_CONFIG_DEFAULT_TIMEOUT;
	if ((r = default_path(&cfg->identity_file, "identity.key")) != NP_OK ||
	    (r = default_path(&cfg->known_identities, "known_identities")) !=
	    NP_OK) {
		np_config_free(cfg);
		return r;
	}
	return NP_OK;
}

int
np_config_fp_valid(const char *s)
{
	uint8_t raw[32];
	char padded[48];

	if (s == NULL || strncmp(s, "SHA256:", 7) != 0 ||
	    strlen(s + 7) != 43) {
		return 0;
	}
	snprintf(padded, sizeof(padded), "%s=", s + 7);
	return np_b64_decode_exact(padded, raw, sizeof(raw)) == NP_OK;
}

static int
config_check(struct np_config *cfg, const char *fname, char *err,
    size_t errlen)
{
	if (cfg->server_fingerprint != NULL &&
	    !np_config_fp_valid(cfg->server_fingerprint)) {
		snprintf(err, errlen, "%s: ServerFingerprint is not a "
		    "SHA256:... fingerprint", fname);
		return NP_ERR_CONF;
	}
	return NP_OK;
}

int
np_config_parse(struct np_config *cfg, const char *text, size_t len,
    const char *fname, char *err, size_t errlen)
{
	int r;

	if ((r = np_conf_parse(np_config_table, cfg, text, len, fname, err,
	    errlen)) != NP_OK) {
		return r;
	}
	return config_check(cfg, fname, err, errlen);
}

int
np_config_load(struct np_config *cfg, const char *path, int must_exist,
    char *err, size_t errlen)
{
	int r;

	if ((r = np_config_defaults(cfg)) != NP_OK) {
		snprintf(err, errlen, "%s: %s", path, np_strerror(r));
		return r;
	}
	r = np_conf_load(np_config_table, cfg, path, err, errlen);
	if (r == NP_ERR_NOT_FOUND && !must_exist) {
		err[0] = '\0';
		return NP_OK;
	}
	if (r != NP_OK) {
		return r;
	}
	return config_check(cfg, path, err, errlen);
}

void
np_config_free(struct np_config *cfg)
{
	if (cfg == NULL) {
		return;
	}
	np_conf_free(np_config_table, cfg);
}

int
np_config_write_new(const char *path, const char *ident, const char *host,
    const char *port, const char *fp)
{
	char text[1024];
	int n, r;

	n = snprintf(text, sizeof(text),
	    "# written by np enroll\n"
	    "Identity %s\n"
	    "Server %s%s%s:%s\n"
	    "ServerFingerprint %s\n",
	    ident, strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", port, fp);
	if (n < 0 || (size_t)n >= sizeof(text)) {
		return NP_ERR_TOO_BIG;
	}
	if ((r = np_mkdir_parent(path)) != NP_OK) {
		return r;
	}
	return np_file_write_atomic(path, (const uint8_t *)text, (size_t)n,
	    0);
}

int
np_mkdir_p(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(p)) {
		return NP_ERR_INVALID;
	}
	memcpy(p, dir, len + 1);
	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0') {
			continue;
		}
		char save = *s;

		*s = '\0';
		if (mkdir(p, 0700) == -1 && errno != EEXIST) {
			return NP_ERR_SYSTEM;
		}
		*s = save;
		if (save == '\0') {
			break;
		}
	}
	if (stat(p, &st) == -1 || !S_ISDIR(st.st_mode)) {
		return NP_ERR_SYSTEM;
	}
	return NP_OK;
}

int
np_mkdir_parent(const char *path)
{
	char p[PATH_MAX];
	char *slash;

	if (strlen(path) >= sizeof(p)) {
		return NP_ERR_INVALID;
	}
	memcpy(p, path, strlen(path) + 1);
	if ((slash = strrchr(p, '/')) == NULL || slash == p) {
		return NP_OK;
	}
	*slash = '\0';
	return np_mkdir_p(p);
}
