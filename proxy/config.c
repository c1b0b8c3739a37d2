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
#include <strings.h>

#include "config.h"
#include "srec.h"
#include "conf.h"
#include "err.h"
#include "ident.h"
#include "key.h"

const struct np_conf_kw np_config_table[] = {
	{ "Identity", NP_CONF_IDENT, offsetof(struct np_config, identity), 0,
	    0, 0, "this client's identity, @name" },
	{ "IdentityFile", NP_CONF_PATH,
	    offsetof(struct np_config, identity_file), 0, 0, 0,
	    "the identity key file" },
	{ "Server", NP_CONF_HOSTPORT, offsetof(struct np_config, server),
	    NP_CONF_MULTI, 0, 0, "the control-plane server, HOST:PORT (several: "
	    "instances sharing one database, tried in turn)" },
	{ "ServerFingerprint", NP_CONF_STR,
	    offsetof(struct np_config, server_fingerprint), 0, 0, 0,
	    "the server certificate's SHA256: fingerprint" },
	{ "KnownIdentities", NP_CONF_PATH,
	    offsetof(struct np_config, known_identities), 0, 0, 0,
	    "pinned identity keys" },
	{ "ConnectTimeout", NP_CONF_DURATION,
	    offsetof(struct np_config, connect_timeout), 0, 1, 3600,
	    "seconds to connect and authenticate" },
	{ "Rendezvous", NP_CONF_IDENT,
	    offsetof(struct np_config, rendezvous_list), NP_CONF_MULTI, 0, 0,
	    "the rendezvous identity for sessions, @sr (several: the one "
	    "with the shortest measured round trip is used)" },
	{ "RendezvousCache", NP_CONF_DURATION,
	    offsetof(struct np_config, rendezvous_cache), 0, 0, 86400,
	    "seconds the measured choice among several Rendezvous is kept "
	    "(0: measure before every session)" },
	{ "RendezvousTimeout", NP_CONF_DURATION,
	    offsetof(struct np_config, rendezvous_timeout), 0, 1, 3600,
	    "seconds to wait for one of several Rendezvous before the next" },
	{ "KeyDir", NP_CONF_PATH, offsetof(struct np_config, key_dir), 0, 0, 0,
	    "where session keys are written (USER@HOST)" },
	{ "KnownHosts", NP_CONF_PATH, offsetof(struct np_config, known_hosts),
	    0, 0, 0, "the known_hosts file for device host keys" },
	{ "SessionTimeout", NP_CONF_DURATION,
	    offsetof(struct np_config, session_timeout), 0, 1, 3600,
	    "seconds for the whole session set-up" },
	{ "KeepAlive", NP_CONF_DURATION, offsetof(struct np_config, keepalive),
	    0, 0, 3600, "TCP keepalive on the relayed connection, seconds "
	    "(0: off)" },
	{ "RelayEncryption", NP_CONF_STR,
	    offsetof(struct np_config, relay_encryption_s), 0, 0, 0,
	    "AEAD records around ssh sessions' relayed bytes: handshake "
	    "(ssh's banner and key exchange, then ssh's own transport), "
	    "full (yes) or no; tunnels always have them all the way" },
	{ "RelayCipher", NP_CONF_STR,
	    offsetof(struct np_config, relay_cipher), 0, 0, 0,
	    "auto, aes-256-gcm or chacha20-poly1305" },
	{ "DeviceAlias", NP_CONF_LINES,
	    offsetof(struct np_config, device_alias), 0, 0, 0,
	    "ALIAS @ident [DEVICE]: ssh ALIAS.noports reaches that device" },
	{ NULL, 0, 0, 0, 0, 0, NULL },
};

static int
home_path(const char *dir, const char *leaf, char *out, size_t outlen)
{
	const char *home = getenv("HOME");
	int n;

	if (home == NULL || *home == '\0') {
		return NP_ERR_CONF;
	}
	if (leaf != NULL) {
		n = snprintf(out, outlen, "%s/%s/%s", home, dir, leaf);
	} else {
		n = snprintf(out, outlen, "%s/%s", home, dir);
	}
	if (n < 0 || (size_t)n >= outlen) {
		return NP_ERR_TOO_BIG;
	}
	return NP_OK;
}

int
np_config_path(const char *leaf, char *out, size_t outlen)
{
	return home_path(NP_CONFIG_DIR, leaf, out, outlen);
}

int
np_cache_path(const char *leaf, char *out, size_t outlen)
{
	return home_path(NP_CACHE_DIR, leaf, out, outlen);
}

static int
default_path(char **dst, const char *dir, const char *leaf)
{
	char p[PATH_MAX];
	int r;

	if ((r = home_path(dir, leaf, p, sizeof(p))) != NP_OK) {
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
	cfg->session_timeout = NP_CONFIG_DEFAULT_SESSION_TIMEOUT;
	cfg->keepalive = NP_CONFIG_DEFAULT_KEEPALIVE;
	cfg->rendezvous_cache = NP_CONFIG_DEFAULT_SR_CACHE;
	cfg->rendezvous_timeout = NP_CONFIG_DEFAULT_SR_TIMEOUT;
	cfg->relay_encryption = 1;
	cfg->relay_handoff = 1;
	if ((r = default_path(&cfg->identity_file, NP_CONFIG_DIR,
	    "identity.key")) != NP_OK ||
	    (r = default_path(&cfg->known_identities, NP_CONFIG_DIR,
	    "known_identities")) != NP_OK ||
	    (r = default_path(&cfg->key_dir, NP_CACHE_DIR, "keys")) != NP_OK ||
	    (r = default_path(&cfg->known_hosts, NP_CACHE_DIR,
	    "known_hosts")) != NP_OK) {
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

/* 1 if s is [a-z0-9_][<first or also extra>]{0,max-1}. */
static int
name_valid(const char *s, size_t max, int dots)
{
	size_t i;

	if (s == NULL || s[0] == '\0' || s[0] == '-' || s[0] == '.') {
		return 0;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (i >= max) {
			return 0;
		}
		if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == '-' || (dots && s[i] == '.')) {
			continue;
		}
		return 0;
	}
	return 1;
}

int
np_devname_valid(const char *s)
{
	return name_valid(s, NP_DEVNAME_MAX, 0);
}

int
np_alias_name_valid(const char *s)
{
	static const char sfx[] = ".noports";
	size_t n;

	if (!name_valid(s, NP_ALIAS_MAX, 1)) {
		return 0;
	}
	n = strlen(s);
	return !(n >= sizeof(sfx) - 1 &&
	    strcmp(s + n - (sizeof(sfx) - 1), sfx) == 0);
}

static int
alias_one(const struct np_strlist *v, struct np_alias *a, char *err,
    size_t errlen)
{
	const char *name = v->n > 0 ? v->v[0] : "";

	if (v->n < 2 || v->n > 3) {
		snprintf(err, errlen, "DeviceAlias %.64s: want ALIAS @ident "
		    "[DEVICE]", name);
		return NP_ERR_CONF;
	}
	if (!np_alias_name_valid(name)) {
		snprintf(err, errlen, "DeviceAlias: bad alias '%.64s' (want "
		    "a-z, 0-9, '_', '-', '.', not ending in .noports)", name);
		return NP_ERR_CONF;
	}
	if (!np_ident_valid(v->v[1])) {
		snprintf(err, errlen, "DeviceAlias %s: bad identity '%.64s' "
		    "(want @name)", name, v->v[1]);
		return NP_ERR_CONF;
	}
	if (v->n == 3 && !np_devname_valid(v->v[2])) {
		snprintf(err, errlen, "DeviceAlias %s: bad device name "
		    "'%.64s' (want [a-z0-9_][a-z0-9_-]{0,31})", name, v->v[2]);
		return NP_ERR_CONF;
	}
	memcpy(a->name, name, strlen(name) + 1);
	memcpy(a->ident, v->v[1], strlen(v->v[1]) + 1);
	if (v->n == 3) {
		memcpy(a->device, v->v[2], strlen(v->v[2]) + 1);
	} else {
		memcpy(a->device, "default", sizeof("default"));
	}
	return NP_OK;
}

int
np_aliases_group(const struct np_strlines *l, struct np_alias **out,
    size_t *n, char *err, size_t errlen)
{
	struct np_alias *a = NULL;
	size_t i, j;
	int r = NP_ERR_CONF;

	*out = NULL;
	*n = 0;
	if (l->n == 0) {
		return NP_OK;
	}
	if (l->n > NP_ALIASES_MAX) {
		snprintf(err, errlen, "DeviceAlias: too many (at most %d)",
		    NP_ALIASES_MAX);
		return NP_ERR_CONF;
	}
	if ((a = calloc(l->n, sizeof(*a))) == NULL) {
		return NP_ERR_ALLOC;
	}
	for (i = 0; i < l->n; i++) {
		if ((r = alias_one(&l->v[i], &a[i], err, errlen)) != NP_OK) {
			goto out;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(a[j].name, a[i].name) == 0) {
				snprintf(err, errlen, "DeviceAlias %s given "
				    "twice", a[i].name);
				r = NP_ERR_CONF;
				goto out;
			}
		}
	}
	*out = a;
	*n = l->n;
	a = NULL;
	r = NP_OK;
 out:
	free(a);
	return r;
}

static int
config_check(struct np_config *cfg, const char *fname, char *err,
    size_t errlen)
{
	char msg[512];
	int r;

	if (cfg->server_fingerprint != NULL &&
	    !np_config_fp_valid(cfg->server_fingerprint)) {
		snprintf(err, errlen, "%s: ServerFingerprint is not a "
		    "SHA256:... fingerprint", fname);
		return NP_ERR_CONF;
	}
	cfg->rendezvous = cfg->rendezvous_list.n > 0 ?
	    cfg->rendezvous_list.v[0] : NULL;
	cfg->relay_encryption = 1;
	cfg->relay_handoff = 1;
	if (cfg->relay_encryption_s != NULL) {
		const char *v = cfg->relay_encryption_s;

		if (strcasecmp(v, "handshake") == 0) {
			/* the defaults */
		} else if (strcasecmp(v, "full") == 0 ||
		    strcasecmp(v, "yes") == 0) {
			cfg->relay_handoff = 0;
		} else if (strcasecmp(v, "no") == 0) {
			cfg->relay_encryption = cfg->relay_handoff = 0;
		} else {
			snprintf(err, errlen, "%s: RelayEncryption must be "
			    "handshake, full (or yes) or no", fname);
			return NP_ERR_CONF;
		}
	}
	if (cfg->relay_cipher != NULL &&
	    strcasecmp(cfg->relay_cipher, "auto") != 0 &&
	    np_srec_cipher_parse(cfg->relay_cipher) == NP_SREC_NONE) {
		snprintf(err, errlen, "%s: RelayCipher must be auto, "
		    NP_SREC_NAME_AES " or " NP_SREC_NAME_CHACHA, fname);
		return NP_ERR_CONF;
	}
	free(cfg->aliases);
	cfg->aliases = NULL;
	cfg->naliases = 0;
	msg[0] = '\0';
	r = np_aliases_group(&cfg->device_alias, &cfg->aliases,
	    &cfg->naliases, msg, sizeof(msg));
	if (r == NP_ERR_CONF) {
		snprintf(err, errlen, "%s: %s", fname, msg);
	}
	return r;
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
	cfg->rendezvous = NULL;
	free(cfg->aliases);
	cfg->aliases = NULL;
	cfg->naliases = 0;
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
