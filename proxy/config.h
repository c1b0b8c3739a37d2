/*
 * The np client's configuration file (docs/CLI.md): keywords parsed by
 * lib/conf.c from the table in config.c.
 */
#ifndef NP_PROXY_CONFIG_H
#define NP_PROXY_CONFIG_H

#include <stddef.h>

#include "conf.h"
#include "ident.h"

#define NP_CONFIG_DIR ".config/noports" /* under $HOME */
#define NP_CONFIG_DEFAULT_TIMEOUT 10	/* ConnectTimeout, seconds */
#define NP_CACHE_DIR ".cache/noports"	/* under $HOME */
#define NP_CONFIG_DEFAULT_SESSION_TIMEOUT 15 /* SessionTimeout, seconds */
#define NP_CONFIG_DEFAULT_KEEPALIVE 30	/* KeepAlive, seconds */
#define NP_CONFIG_DEFAULT_SR_CACHE 300	/* RendezvousCache, seconds */
#define NP_CONFIG_DEFAULT_SR_TIMEOUT 3	/* RendezvousTimeout, seconds */
#define NP_ALIAS_MAX 63			/* characters of an alias */
#define NP_DEVNAME_MAX 32		/* [a-z0-9_][a-z0-9_-]{0,31} */
#define NP_ALIASES_MAX 1024		/* DeviceAlias lines */

/* One DeviceAlias line: ALIAS @ident [DEVICE]. */
struct np_alias {
	char name[NP_ALIAS_MAX + 1];	/* without ".noports" */
	char ident[NP_IDENT_MAX + 1];
	char device[NP_DEVNAME_MAX + 1]; /* "default" when not given */
};

struct np_config {
	char *identity;		  /* Identity @name (NULL: not set) */
	char *identity_file;	  /* IdentityFile */
	struct np_hostport server; /* Server HOST:PORT (host NULL: not set) */
	char *server_fingerprint; /* ServerFingerprint SHA256:... */
	char *known_identities;	  /* KnownIdentities */
	long connect_timeout;	  /* ConnectTimeout, seconds */
	struct np_strlist rendezvous_list; /* Rendezvous @sr [@sr2 ...] */
	const char *rendezvous;	  /* its first (NULL: not set) */
	long rendezvous_cache;	  /* RendezvousCache, seconds (0: none) */
	long rendezvous_timeout;  /* RendezvousTimeout, seconds */
	char *key_dir;		  /* KeyDir: session keys */
	char *known_hosts;	  /* KnownHosts: the noports known_hosts */
	long session_timeout;	  /* SessionTimeout, seconds */
	long keepalive;		  /* KeepAlive, seconds (0: off) */
	char *relay_encryption_s; /* RelayEncryption handshake|full|yes|no */
	int relay_encryption;	  /* from it: 1 records (ssh sessions) */
	int relay_handoff;	  /* from it: 1 records over ssh's handshake
				     only (RelayEncryption handshake) */
	char *relay_cipher;	  /* RelayCipher auto|aes-256-gcm|... */
	struct np_strlines device_alias; /* DeviceAlias lines */
	struct np_alias *aliases; /* DeviceAlias, one per line */
	size_t naliases;
};

extern const struct np_conf_kw np_config_table[];

/* "$HOME/.config/noports" (+ "/" + leaf when leaf != NULL) into out.
 * NP_ERR_CONF when HOME is unset, NP_ERR_TOO_BIG when it does not fit. */
int np_config_path(const char *leaf, char *out, size_t outlen);
/* "$HOME/.cache/noports" (+ "/" + leaf) into out, as above. */
int np_cache_path(const char *leaf, char *out, size_t outlen);
/* 1 if s is a device name: [a-z0-9_][a-z0-9_-]{0,31}. */
int np_devname_valid(const char *s);
/* 1 if s is an alias name: [a-z0-9_][a-z0-9_.-]{0,62}, not ending in
 * ".noports". */
int np_alias_name_valid(const char *s);
/*
 * Check the DeviceAlias lines (ALIAS @ident [DEVICE] each) and copy them
 * into out[0..*n).  Pure; NP_ERR_CONF with a message in err on a
 * malformed or repeated alias.
 */
int np_aliases_group(const struct np_strlines *l, struct np_alias **out,
    size_t *n, char *err, size_t errlen);
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
