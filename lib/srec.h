/*
 * Relay stream records (docs/PROTOCOL.md, "Relay stream encryption"):
 * the AEAD framing client and device wrap the relayed bytes in, one
 * key and one counter per direction.
 *
 * A record is
 *
 *     u32 header (big-endian): bit 31 final, bit 30 handoff, bits 0..29
 *     plaintext length
 *     ciphertext (length bytes)
 *     16-byte tag
 *
 * sealed with AES-256-GCM or ChaCha20-Poly1305 under the direction's key,
 * nonce = 4 zero bytes || u64 record counter (big-endian, from 0), the
 * header as associated data.  Lengths are 0..NP_SREC_MAX; the final
 * record is empty and marks a clean end, so a stream that stops without
 * it was truncated.  A record that does not authenticate, a length over
 * the cap, a non-empty final record and any byte after the final record
 * end the stream: the opener never hands out a byte it has not
 * authenticated in its place (counter = position, so a dropped, repeated
 * or reordered record fails too).
 *
 * The handoff record (empty, bit 30), where both ends agreed on it for an
 * ssh session, ends the records the other way: the bytes after it are
 * the relayed stream itself, which ssh's own transport protects (the
 * records covered ssh's banner and key exchange).  An end that did not
 * agree to it treats it as a bad record.
 *
 * Pure apart from OpenSSL's cipher state; no I/O.
 */
#ifndef NP_SREC_H
#define NP_SREC_H

#include <stddef.h>
#include <stdint.h>

#define NP_SREC_HDR 4
#define NP_SREC_TAG 16
#define NP_SREC_OVERHEAD (NP_SREC_HDR + NP_SREC_TAG)
#define NP_SREC_MAX (32 * 1024)	/* plaintext bytes per record */
#define NP_SREC_FINAL 0x80000000u
#define NP_SREC_HANDOFF 0x40000000u
/* np_srec_seal's final / np_srec_header's and np_srec_open's *final */
#define NP_SREC_IS_FINAL 1
#define NP_SREC_IS_HANDOFF 2
/* Handoff points (bytes each way in records, then the stream as it is):
 * what np asks for an ssh session, and what np-deviced accepts. */
#define NP_SREC_HANDOFF_BYTES (64 * 1024)
#define NP_SREC_HANDOFF_MIN 4096
#define NP_SREC_HANDOFF_MAX (16 * 1024 * 1024)
#define NP_SREC_KEY_LEN 32

enum np_srec_cipher {
	NP_SREC_NONE = 0,
	NP_SREC_AES256GCM = 1,
	NP_SREC_CHACHA20POLY1305 = 2,
};

#define NP_SREC_NAME_AES "aes-256-gcm"
#define NP_SREC_NAME_CHACHA "chacha20-poly1305"

struct np_srec;

/* "aes-256-gcm" / "chacha20-poly1305" -> NP_SREC_*, else NP_SREC_NONE. */
int np_srec_cipher_parse(const char *name);
/* The name of a cipher, "none" for anything else. */
const char *np_srec_cipher_name(int cipher);
/* 1 when this CPU has AES instructions (x86 AES-NI, ARMv8 AES). */
int np_srec_cpu_has_aes(void);
/* The cipher this machine prefers: AES-256-GCM with AES instructions,
 * ChaCha20-Poly1305 without. */
int np_srec_cipher_pref(void);

/*
 * One direction's state: cipher, key (copied into OpenSSL's context,
 * which wipes it when freed; the caller wipes its own copy), counter.
 * sealing: 1 for the writer, 0 for the reader.
 */
int np_srec_new(int cipher, const uint8_t key[NP_SREC_KEY_LEN], int sealing,
    struct np_srec **out);
void np_srec_free(struct np_srec *s);

/*
 * Seal one record in place: rec[0..4) gets the header, the plaintext at
 * rec + NP_SREC_HDR (n bytes, n <= NP_SREC_MAX; 0 when final) is
 * encrypted, the tag follows it.  The record is NP_SREC_OVERHEAD + n
 * bytes.  final: 0, NP_SREC_IS_FINAL or NP_SREC_IS_HANDOFF (both empty;
 * nothing is sealed after either).  NP_ERR_INVALID (n too big, final with
 * data, or after the final record), NP_ERR_TOO_BIG (counter exhausted),
 * NP_ERR_CRYPTO.
 */
int np_srec_seal(struct np_srec *s, uint8_t *rec, size_t n, int final);

/*
 * The length and kind of a record header (*final: 0, NP_SREC_IS_FINAL or
 * NP_SREC_IS_HANDOFF): NP_ERR_PROTO for a length over NP_SREC_MAX, a
 * final or handoff record with data, or both bits.
 */
int np_srec_header(const uint8_t hdr[NP_SREC_HDR], size_t *len,
    int *final);

/*
 * Open one whole record in place (rec: header, ciphertext, tag; its
 * length from np_srec_header): the plaintext ends up at rec +
 * NP_SREC_HDR.  NP_ERR_CRYPTO when it does not authenticate (its bytes
 * must not be used), NP_ERR_PROTO for a bad header or a record after the
 * final one.  *final is set for the final and the handoff record (as in
 * np_srec_header); nothing opens after either.
 */
int np_srec_open(struct np_srec *s, uint8_t *rec, size_t len, int *final);

/* 1 for a sealing (writing) direction. */
int np_srec_sealing(const struct np_srec *s);
/* 1 once the final record was sealed or opened. */
int np_srec_done(const struct np_srec *s);

/*
 * The two direction keys of a session from the crypto_kx exchange.
 * Client: tx seals client -> device, rx opens device -> client; the
 * device's pair is the mirror image.  Keys go into sodium_malloc memory
 * owned by the caller (NP_SREC_KEY_LEN each).
 */
int np_srec_keys_client(uint8_t *rx, uint8_t *tx, const uint8_t *pk,
    const uint8_t *sk, const uint8_t *peer_pk);
int np_srec_keys_device(uint8_t *rx, uint8_t *tx, const uint8_t *pk,
    const uint8_t *sk, const uint8_t *peer_pk);

#endif
