/*
 * Identity keys: one Ed25519 key pair per identity (libsodium
 * crypto_sign).  The secret half lives only in sodium_malloc memory and in
 * a 0600 key file; np_key_free() wipes it.  The X25519 form used by boxes
 * is derived at load time and kept in the same secure memory.
 *
 * Key file (text, one field a line, nothing else):
 *   noports-identity-key-v1
 *   name @alice
 *   secret <base64 of the 64-byte libsodium Ed25519 secret key>
 * The public key embedded in the secret must match the one derived from
 * its seed.
 */
#ifndef NP_KEY_H
#define NP_KEY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define NP_PK_LEN 32
#define NP_SIG_LEN 64
#define NP_PK_B64_MAX 48   /* base64 of 32 bytes + NUL fits */
#define NP_SIG_B64_MAX 96  /* base64 of 64 bytes + NUL fits */
#define NP_FP_MAX 64	   /* "SHA256:" + base64 of 32 bytes + NUL */
#define NP_KEYFILE_MAX 4096

struct np_key;

int np_key_generate(const char *name, struct np_key **out);
/*
 * Load a key file.  Refuses (NP_ERR_PERM) a file that is a symlink, not a
 * regular file, or readable/writable by group or other.
 */
int np_key_load(const char *path, struct np_key **out);
/* Pure parser of key-file bytes (fuzz target). */
int np_key_parse(const uint8_t *data, size_t len, struct np_key **out);
/*
 * Write atomically (temp file 0600 + rename).  NP_ERR_EXISTS when path
 * exists and force is 0.
 */
int np_key_save(const struct np_key *k, const char *path, int force);
/* Serialise into b (use a np_buf_new_secure buffer). */
int np_key_serialize(const struct np_key *k, struct np_buf *b);
void np_key_free(struct np_key *k);

const char *np_key_name(const struct np_key *k); /* "@alice" */
const uint8_t *np_key_pk(const struct np_key *k); /* NP_PK_LEN bytes */
/* X25519 secret key for crypto_box (32 bytes, secure memory). */
const uint8_t *np_key_box_sk(const struct np_key *k);

int np_key_sign(const struct np_key *k, const uint8_t *msg, size_t len,
    uint8_t sig[NP_SIG_LEN]);
/* NP_OK or NP_ERR_CRYPTO. */
int np_sig_verify(const uint8_t pk[NP_PK_LEN], const uint8_t *msg,
    size_t len, const uint8_t sig[NP_SIG_LEN]);
/* X25519 public key for crypto_box from an Ed25519 public key. */
int np_pk_box_pk(const uint8_t pk[NP_PK_LEN], uint8_t out[32]);

/* Standard base64 with padding (sodium_base64_VARIANT_ORIGINAL). */
int np_b64_encode(const uint8_t *p, size_t n, char *out, size_t outlen);
/* Decode exactly want bytes; NP_ERR_INVALID on any other length. */
int np_b64_decode_exact(const char *s, uint8_t *out, size_t want);
/* 1 if s[0..len) uses only base64 characters (and '='), else 0. */
int np_b64_alphabet_ok(const char *s, size_t len, int urlsafe);
/* Decode up to max bytes; *n is set to the length. */
int np_b64_decode(const char *s, uint8_t *out, size_t max, size_t *n);

/* "SHA256:" + unpadded base64 of SHA-256(p), as ssh prints. */
int np_fingerprint(const uint8_t *p, size_t n, char *out, size_t outlen);

/* sodium_init() once; safe to call again.  NP_OK or NP_ERR_CRYPTO. */
int np_crypto_init(void);
/* A key from a 32-byte seed (tests, fixed fuzz keys). */
int np_key_from_seed(const char *name, const uint8_t seed[32],
    struct np_key **out);

/* Signed messages of docs/PROTOCOL.md, appended to out. */
#define NP_AUTH_LABEL "noports-auth-v1"	    /* sizeof includes the NUL */
#define NP_ENROLL_LABEL "noports-enroll-v1"
/* "noports-auth-v1\0" || nonce || cb || id */
int np_auth_message(const uint8_t nonce[32], const uint8_t cb[32],
    const char *id, struct np_buf *out);
/* "noports-enroll-v1\0" || nonce || cb || pk || id */
int np_enroll_message(const uint8_t nonce[32], const uint8_t cb[32],
    const uint8_t pk[32], const char *id, struct np_buf *out);

/*
 * Write p[0..len) to path atomically: a 0600 temp file in the same
 * directory (O_EXCL|O_NOFOLLOW), fsync, then rename over path (replace
 * != 0) or link to it (replace == 0: NP_ERR_EXISTS when path exists).
 * The directory must exist (NP_ERR_NOT_FOUND).  The temp file is removed
 * on every error.
 */
int np_file_write_atomic(const char *path, const uint8_t *p, size_t len,
    int replace);

/*
 * Read a whole regular file of at most max bytes into a new buffer
 * (secure memory when secure != 0).  Opened with O_NOFOLLOW; NP_ERR_PERM
 * when it is a symlink or not a regular file, when (mode & badmode) != 0
 * or when it is owned by neither the euid nor root; NP_ERR_NOT_FOUND when
 * it does not exist; NP_ERR_TOO_BIG over max.
 */
int np_file_read_checked(const char *path, size_t max, unsigned badmode,
    int secure, struct np_buf **out);

#endif
