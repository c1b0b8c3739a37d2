/*
 * Device-side session key handling.
 *
 * Key spool (AuthorizedKeysCommand mode): np-deviced (user noports) writes
 * one file per session, DIR/SID.key, 0600, atomically.  Format (text,
 * strict, every line ends in "\n", nothing else):
 *   noports-spool-v1
 *   user USERNAME
 *   expires UNIX_SECONDS
 *   session SID                 (32 lowercase hex)
 *   key ssh-ed25519 BASE64
 * np-keyhelper lists the unexpired entries for one user and prints, for
 * each, an authorized_keys line composed from the validated fields:
 *   expiry-time="YYYYMMDDHHMMSSZ",from="127.0.0.1,::1" ssh-ed25519 BASE64
 *   noports-session-SID                               (one line, UTC)
 *
 * authorized_keys mode: the same line is put at the top of the user's
 * authorized_keys file (atomic rewrite, same owner and mode); sweep takes
 * out marked lines whose expiry passed.  A line is "marked" only when it
 * is byte for byte a line we could have written; every other line, with
 * its terminator (LF, CRLF or none at the end of the file), is kept as it
 * was.  Putting ours first rather than last means a file whose last line
 * has no newline is never touched, and install + sweep gives back the
 * original bytes.
 */
#ifndef NP_SPOOL_H
#define NP_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "sshkey.h"

#define NP_SPOOL_DIR_DEFAULT "/var/lib/noports/spool"
#define NP_SPOOL_FILE_MAX 1024 /* a spool file is never larger */
#define NP_SID_HEX_LEN 32
#define NP_USER_MAX 33			 /* 32 + an optional trailing '$' */
#define NP_SPOOL_TIME_MAX 253402300799LL /* 9999-12-31 23:59:59 UTC */
#define NP_AUTHKEYS_MAX (1024 * 1024)	 /* authorized_keys we rewrite */
#define NP_AUTHKEY_COMMENT_PFX "noports-session-"
#define NP_AUTHKEY_FROM "127.0.0.1,::1"

struct np_spool_entry {
	char user[NP_USER_MAX + 1];
	int64_t expires; /* unix seconds, UTC */
	char sid[NP_SID_HEX_LEN + 1];
	uint8_t pk[NP_SSHKEY_PK_LEN];
};

/* POSIX portable user name: [a-z_][a-z0-9_.-]{0,31}, optional '$'. */
int np_user_valid(const char *s);
/* 32 lowercase hex digits. */
int np_sid_valid(const char *s);

/* Pure parser of a spool file (fuzz target).  NP_ERR_INVALID/TOO_BIG. */
int np_spool_parse(const uint8_t *data, size_t len, struct np_spool_entry *e);
/* Append the spool file text of e to b (validates e first). */
int np_spool_format(const struct np_spool_entry *e, struct np_buf *b);

/*
 * The spool directory must be a directory (not a symlink), owned by the
 * euid or root, not writable by group or other: NP_ERR_PERM otherwise.
 * On success *dirfd is an O_DIRECTORY descriptor of it.
 */
int np_spool_open_dir(const char *dir, int *dirfd);
/* Write DIR/SID.key atomically; NP_ERR_EXISTS when the session exists. */
int np_spool_write(const char *dir, const struct np_spool_entry *e);
/* Remove DIR/SID.key (NP_ERR_NOT_FOUND when it is not there). */
int np_spool_remove(const char *dir, const char *sid);

/*
 * Call cb for every valid entry for user that expires after now.  Files
 * that are not SID.key regular files owned by euid or root, are writable
 * by group/other, are over NP_SPOOL_FILE_MAX, do not parse, or whose
 * session differs from the name are skipped and logged.  A non-zero
 * return from cb stops the walk and is returned.
 */
typedef int (*np_spool_cb)(const struct np_spool_entry *e, void *arg);
int np_spool_list(const char *dir, const char *user, int64_t now,
		  np_spool_cb cb, void *arg);
/* Remove entries whose expiry is at or before now, and temp files left
 * over from a crash; *removed (may be NULL) counts the removed files. */
int np_spool_sweep(const char *dir, int64_t now, unsigned *removed);

/* Append the authorized_keys line of e (no newline) to b. */
int np_authkey_format(const struct np_spool_entry *e, struct np_buf *b);
/* Pure: is line[0..len) (without terminator) one of our marked lines?
 * Fills e (user left empty).  NP_ERR_INVALID when it is not ours. */
int np_authkey_parse(const uint8_t *line, size_t len, struct np_spool_entry *e);
/* "YYYYMMDDHHMMSSZ" of t (UTC); out must hold 16 bytes. */
int np_expiry_format(int64_t t, char *out, size_t outlen);

/*
 * Pure rewrites of authorized_keys content, into out:
 * sweep drops marked lines with expires <= now (*removed counts them, may
 * be NULL); install does the same and puts e's line first, and refuses
 * (NP_ERR_EXISTS) when a marked line for e's session is already there.
 */
int np_authkeys_sweep_buf(const uint8_t *d, size_t len, int64_t now,
			  struct np_buf *out, unsigned *removed);
int np_authkeys_install_buf(const uint8_t *d, size_t len,
			    const struct np_spool_entry *e, int64_t now,
			    struct np_buf *out);
/* Sweep, and drop the marked line(s) of session sid too (a session that
 * failed before it could log in); *removed counts all, may be NULL. */
int np_authkeys_remove_buf(const uint8_t *d, size_t len, const char *sid,
			   int64_t now, struct np_buf *out, unsigned *removed);

/*
 * The same on a file, atomically: lock the directory (flock), read the
 * file (regular, no symlink, one link, owned by uid or root, at most
 * NP_AUTHKEYS_MAX), write a temp file in the same directory with the
 * original's owner and mode (uid/gid and 0600 for a new file), fsync,
 * rename, fsync the directory.  The directory (not a symlink) must be
 * owned by uid or root and not writable by group/other.  With mkdir != 0
 * a missing directory is created 0700 owned by uid/gid (its parent must
 * exist).  Nothing is written when nothing changes.
 */
int np_authkeys_install(const char *path, uid_t uid, gid_t gid, int mkdir,
			const struct np_spool_entry *e, int64_t now);
int np_authkeys_sweep(const char *path, uid_t uid, int64_t now,
		      unsigned *removed);
int np_authkeys_remove(const char *path, uid_t uid, const char *sid,
		       int64_t now, unsigned *removed);

#endif
