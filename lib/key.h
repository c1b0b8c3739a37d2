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
/* Decode up to max bytes; *n is set to the length. */
int np_b64_decode(const char *s, uint8_t *out, size_t max, size_t *n);

/* "SHA256:" + unpadded base64 of SHA-256(p), as ssh prints. */
int np_fingerprint(const uint8_t *p, size_t n, char *out, size_t outlen);

#endif
