/*
 * The np client's configuration file (docs/CLI.md): keywords parsed by
 * lib/conf.c from the table in config.c.
 */
#ifndef NP_PROXY_CONFIG_H
#define NP_PROXY_CONFIG_H

#include <stddef.h>

#include "conf.h"

#define NP_CONFIG_DIR ".config/noports" /* under $HOME */
#define NP_CONFIG_DEFAULT_TIMEOUT 10	/* ConnectTimeout, seconds */

struct np_config {
	char *identity;		  /* Identity @name (NULL: not set) */
	char *identity_file;	  /* IdentityFile */
	struct np_hostport server; /* Server HOST:PORT (host NULL: not set) */
	char *server_fingerprint; /* ServerFingerprint SHA256:... */
	char *known_identities;	  /* KnownIdentities */
	long connect_timeout;	  /* ConnectTimeout, seconds */
};

extern const struct np_conf_kw np_config_table[];

/* "$HOME/.config/noports" (+ "/" + leaf when leaf != NULL) into out.
 * NP_ERR_CONF when HOME is unset, NP_ERR_TOO_BIG when it does not fit. */
int np_config_path(const char *leaf, char *out, size_t outlen);
/* Set the defaults (paths under $HOME/.config/noports). */
int np_config_defaults(struct np_config *cfg);
/* Parse text (a pure function of the bytes, HOME aside) after defaults;
 * checks ServerFingerprint's form.  err gets "file:line: message". */
int np_config_parse(struct np_config *cfg, const char *text, size_t len,
    const char *fname, char *err, size_t errlen);
/* Defaults, then path when it exists; a missing file is an error only
 * when must_exist. */
int np_config_load(struct np_config *cfg, const char *path, int must_exist,
    char *err, size_t errlen);
void np_config_free(struct np_config *cfg);
/* 1 if s looks like "SHA256:" + 43 characters of unpadded base64. */
int np_config_fp_valid(const char *s);
/* Write a new config file (0600, refuses to overwrite): Identity,
 * Server, ServerFingerprint.  host may be an IPv6 literal. */
int np_config_write_new(const char *path, const char *ident,
    const char *host, const char *port, const char *fp);
/* mkdir -p with mode 0700 for the directories it creates. */
int np_mkdir_p(const char *dir);
/* Create the directory part of path (0700) when missing. */
int np_mkdir_parent(const char *path);

#endif
