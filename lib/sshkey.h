/*
 * OpenSSH key formats, for the per-session Ed25519 keys np-deviced
 * authorizes and hands to the client, and for the sshd host public keys it
 * sends along for known_hosts.
 *
 * Private key (OpenSSH PROTOCOL.key, unencrypted):
 *   -----BEGIN OPENSSH PRIVATE KEY-----
 *   base64, 70 columns, of:
 *     "openssh-key-v1\0" string "none" string "none" string ""
 *     u32 1  string pubblob
 *     string priv: u32 check u32 check string "ssh-ed25519" string pk(32)
 *                  string sk(64 = seed || pk) string comment  pad 1,2,3..
 *   -----END OPENSSH PRIVATE KEY-----
 * Public blob: string "ssh-ed25519" string pk(32).
 * Public line: "ssh-ed25519 BASE64(blob) comment".
 */
#ifndef NP_SSHKEY_H
#define NP_SSHKEY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define NP_SSHKEY_ED25519 "ssh-ed25519"
#define NP_SSHKEY_PK_LEN 32
#define NP_SSHKEY_BLOB_LEN 51 /* 4 + 11 + 4 + 32 */
#define NP_SSHKEY_B64_LEN 68  /* base64 of the 51-byte blob */
#define NP_SSHKEY_COMMENT_MAX 255
#define NP_SSHKEY_PRIV_MAX 4096	 /* cap of a private key file we accept */
#define NP_SSHPUB_LINE_MAX 16384 /* cap of a public key line / file */
#define NP_SSHPUB_BLOB_MAX 8192	 /* cap of a decoded public blob */
#define NP_SSHPUB_TYPE_MAX 64

/* A per-session Ed25519 key pair; secret half in sodium_malloc memory. */
struct np_sshkey;

int np_sshkey_generate(struct np_sshkey **out);
/* From a 32-byte seed (tests). */
int np_sshkey_from_seed(const uint8_t seed[32], struct np_sshkey **out);
void np_sshkey_free(struct np_sshkey *k); /* wipes; NULL is fine */
const uint8_t *np_sshkey_pk(const struct np_sshkey *k); /* 32 bytes */

/*
 * Append the OpenSSH private key file text (PEM armour, trailing newline)
 * to b, which should be a np_buf_new_secure buffer.  comment: printable
 * ASCII, at most NP_SSHKEY_COMMENT_MAX bytes (may be "" or NULL).
 */
int np_sshkey_private_pem(const struct np_sshkey *k, const char *comment,
			  struct np_buf *b);
/*
 * Pure parser of an unencrypted OpenSSH Ed25519 private key file (as
 * written above; trailing newline optional).  Checks the check ints, that
 * the public key matches the secret key, and the padding.
 */
int np_sshkey_parse_private(const uint8_t *data, size_t len,
			    struct np_sshkey **out);

/* Append the public blob of an Ed25519 public key to b. */
int np_sshkey_ed25519_blob(const uint8_t pk[NP_SSHKEY_PK_LEN],
			   struct np_buf *b);
/* Check an Ed25519 public blob (exactly) and extract its key. */
int np_sshkey_parse_blob_ed25519(const uint8_t *blob, size_t len,
				 uint8_t pk[NP_SSHKEY_PK_LEN]);
/* BASE64 of the blob, NUL-terminated; out must hold NP_SSHKEY_B64_LEN+1. */
int np_sshkey_ed25519_b64(const uint8_t pk[NP_SSHKEY_PK_LEN], char *out,
			  size_t outlen);
/* Reverse of the above: strict (canonical base64, exact blob). */
int np_sshkey_ed25519_from_b64(const char *s, size_t len,
			       uint8_t pk[NP_SSHKEY_PK_LEN]);
/* Append "ssh-ed25519 BASE64[ comment]" (no newline) to b. */
int np_sshkey_public_line(const struct np_sshkey *k, const char *comment,
			  struct np_buf *b);
/* "SHA256:..." of a public blob, as ssh-keygen -l prints it. */
int np_sshkey_fingerprint(const uint8_t *blob, size_t len, char *out,
			  size_t outlen);

/* A parsed public key line (e.g. /etc/ssh/ssh_host_ed25519_key.pub). */
struct np_sshpub {
	char *type;    /* "ssh-ed25519", "ecdsa-sha2-nistp256", ... */
	uint8_t *blob; /* decoded wire blob */
	size_t bloblen;
	char *comment; /* "" when there is none */
};

/*
 * Pure parser of one public key line "TYPE BASE64 [COMMENT]" (a trailing
 * "\n" or "\r\n" is allowed, nothing after it).  The type must be one we
 * know; the blob's own type string must equal it and its structure must
 * fit that type (sizes capped).
 */
int np_sshpub_parse(const uint8_t *data, size_t len, struct np_sshpub **out);
/* Read a .pub file (regular file, no symlink, not group/other writable,
 * owned by euid or root, at most NP_SSHPUB_LINE_MAX bytes) and parse it. */
int np_sshpub_load(const char *path, struct np_sshpub **out);
void np_sshpub_free(struct np_sshpub *p);
/* Append "TYPE BASE64" (no comment, no newline) to b. */
int np_sshpub_format(const struct np_sshpub *p, struct np_buf *b);

#endif
