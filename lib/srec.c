/*
 * Relay stream records: see srec.h.  OpenSSL EVP does the bulk AEAD work
 * (docs/ARCHITECTURE.md: it is 2-3x faster here than libsodium's
 * stream constructions); the key is set once per direction, each record
 * only sets its nonce.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <sodium.h>

#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

#include "err.h"
#include "srec.h"

#define NONCE_LEN 12

struct np_srec {
	EVP_CIPHER_CTX *ctx;
	uint64_t ctr;
	int sealing;
	int done;	/* final record passed */
};

int
np_srec_cipher_parse(const char *name)
{
	if (name == NULL) {
		return NP_SREC_NONE;
	}
	if (strcasecmp(name, NP_SREC_NAME_AES) == 0) {
		return NP_SREC_AES256GCM;
	}
	if (strcasecmp(name, NP_SREC_NAME_CHACHA) == 0) {
		return NP_SREC_CHACHA20POLY1305;
	}
	return NP_SREC_NONE;
}

const char *
np_srec_cipher_name(int cipher)
{
	switch (cipher) {
	case NP_SREC_AES256GCM:
		return NP_SREC_NAME_AES;
	case NP_SREC_CHACHA20POLY1305:
		return NP_SREC_NAME_CHACHA;
	default:
		return "none";
	}
}

int
np_srec_cpu_has_aes(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("aes") ? 1 : 0;
#elif defined(__aarch64__)
	return (getauxval(AT_HWCAP) & (1UL << 3)) != 0; /* HWCAP_AES */
#else
	return 0;
#endif
}

int
np_srec_cipher_pref(void)
{
	return np_srec_cpu_has_aes() ? NP_SREC_AES256GCM :
	    NP_SREC_CHACHA20POLY1305;
}

static const EVP_CIPHER *
evp_of(int cipher)
{
	switch (cipher) {
	case NP_SREC_AES256GCM:
		return EVP_aes_256_gcm();
	case NP_SREC_CHACHA20POLY1305:
		return EVP_chacha20_poly1305();
	default:
		return NULL;
	}
}

int
np_srec_new(int cipher, const uint8_t key[NP_SREC_KEY_LEN], int sealing,
    struct np_srec **out)
{
	const EVP_CIPHER *c;
	struct np_srec *s;
	int ok;

	*out = NULL;
	if ((c = evp_of(cipher)) == NULL || key == NULL) {
		return NP_ERR_INVALID;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return NP_ERR_ALLOC;
	}
	s->sealing = sealing != 0;
	if ((s->ctx = EVP_CIPHER_CTX_new()) == NULL) {
		free(s);
		return NP_ERR_ALLOC;
	}
	ok = s->sealing ? EVP_EncryptInit_ex(s->ctx, c, NULL, key, NULL) :
	    EVP_DecryptInit_ex(s->ctx, c, NULL, key, NULL);
	if (ok != 1 || EVP_CIPHER_CTX_iv_length(s->ctx) != NONCE_LEN) {
		np_srec_free(s);
		return NP_ERR_CRYPTO;
	}
	*out = s;
	return NP_OK;
}

void
np_srec_free(struct np_srec *s)
{
	if (s == NULL) {
		return;
	}
	EVP_CIPHER_CTX_free(s->ctx); /* cleanses the key schedule */
	free(s);
}

int
np_srec_sealing(const struct np_srec *s)
{
	return s->sealing;
}

int
np_srec_done(const struct np_srec *s)
{
	return s->done;
}

static void
nonce_of(uint64_t ctr, uint8_t nonce[NONCE_LEN])
{
	int i;

	memset(nonce, 0, 4);
	for (i = 0; i < 8; i++) {
		nonce[4 + i] = (uint8_t)(ctr >> (56 - 8 * i));
	}
}

static void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int
np_srec_seal(struct np_srec *s, uint8_t *rec, size_t n, int final)
{
	uint8_t nonce[NONCE_LEN], *p = rec + NP_SREC_HDR;
	int outl = 0;

	if (!s->sealing || s->done || n > NP_SREC_MAX || (final && n != 0) ||
	    final < 0 || final > NP_SREC_IS_HANDOFF) {
		return NP_ERR_INVALID;
	}
	if (s->ctr == UINT64_MAX) {
		return NP_ERR_TOO_BIG;
	}
	put_u32(rec, (uint32_t)n | (final == NP_SREC_IS_FINAL ? NP_SREC_FINAL :
	    final == NP_SREC_IS_HANDOFF ? NP_SREC_HANDOFF : 0));
	nonce_of(s->ctr, nonce);
	if (EVP_EncryptInit_ex(s->ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(s->ctx, NULL, &outl, rec, NP_SREC_HDR) != 1 ||
	    (n > 0 && (EVP_EncryptUpdate(s->ctx, p, &outl, p, (int)n) != 1 ||
	    (size_t)outl != n)) ||
	    EVP_EncryptFinal_ex(s->ctx, p + n, &outl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, NP_SREC_TAG,
	    p + n) != 1) {
		return NP_ERR_CRYPTO;
	}
	s->ctr++;
	s->done = final != 0;
	return NP_OK;
}

int
np_srec_header(const uint8_t hdr[NP_SREC_HDR], size_t *len, int *final)
{
	uint32_t v = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	size_t l = v & ~(NP_SREC_FINAL | NP_SREC_HANDOFF);
	int f = (v & NP_SREC_FINAL) != 0, h = (v & NP_SREC_HANDOFF) != 0;

	if (l > NP_SREC_MAX || ((f || h) && l != 0) || (f && h)) {
		return NP_ERR_PROTO;
	}
	*len = l;
	*final = f ? NP_SREC_IS_FINAL : h ? NP_SREC_IS_HANDOFF : 0;
	return NP_OK;
}

int
np_srec_open(struct np_srec *s, uint8_t *rec, size_t len, int *final)
{
	uint8_t nonce[NONCE_LEN], *p = rec + NP_SREC_HDR;
	size_t l;
	int f, outl = 0, r;

	*final = 0;
	if (s->sealing) {
		return NP_ERR_INVALID;
	}
	if (s->done || s->ctr == UINT64_MAX) {
		return NP_ERR_PROTO;
	}
	if ((r = np_srec_header(rec, &l, &f)) != NP_OK) {
		return r;
	}
	if (len != l + NP_SREC_OVERHEAD) {
		return NP_ERR_INVALID;
	}
	nonce_of(s->ctr, nonce);
	if (EVP_DecryptInit_ex(s->ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(s->ctx, NULL, &outl, rec, NP_SREC_HDR) != 1 ||
	    (l > 0 && (EVP_DecryptUpdate(s->ctx, p, &outl, p, (int)l) != 1 ||
	    (size_t)outl != l)) ||
	    EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG, NP_SREC_TAG,
	    p + l) != 1 ||
	    EVP_DecryptFinal_ex(s->ctx, p + l, &outl) != 1) {
		/* The plaintext already written in place is garbage: wipe. */
		sodium_memzero(p, l);
		return NP_ERR_CRYPTO;
	}
	s->ctr++;
	s->done = f;
	*final = f;
	return NP_OK;
}

static int
keys(int client, uint8_t *rx, uint8_t *tx, const uint8_t *pk,
    const uint8_t *sk, const uint8_t *peer_pk)
{
	int r;

	if (client) {
		r = crypto_kx_client_session_keys(rx, tx, pk, sk, peer_pk);
	} else {
		r = crypto_kx_server_session_keys(rx, tx, pk, sk, peer_pk);
	}
	if (r != 0) { /* peer's key is a low-order point */
		sodium_memzero(rx, NP_SREC_KEY_LEN);
		sodium_memzero(tx, NP_SREC_KEY_LEN);
		return NP_ERR_CRYPTO;
	}
	return NP_OK;
}

int
np_srec_keys_client(uint8_t *rx, uint8_t *tx, const uint8_t *pk,
    const uint8_t *sk, const uint8_t *peer_pk)
{
	return keys(1, rx, tx, pk, sk, peer_pk);
}

int
np_srec_keys_device(uint8_t *rx, uint8_t *tx, const uint8_t *pk,
    const uint8_t *sk, const uint8_t *peer_pk)
{
	return keys(0, rx, tx, pk, sk, peer_pk);
}
