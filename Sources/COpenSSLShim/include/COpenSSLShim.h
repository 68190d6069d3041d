// COpenSSLShim: what tunnat needs from OpenSSL (libcrypto), as plain functions over bytes, so that Swift sees no
// OpenSSL types. Each returns 1 on success and 0 on failure, as OpenSSL's own calls do.
#ifndef TUNNAT_COPENSSLSHIM_H
#define TUNNAT_COPENSSLSHIM_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 of `length` bytes at `data` into `digest` (32 bytes): EVP_Digest with EVP_sha256.
int tunnat_sha256(const void *data, size_t length, uint8_t *digest);
/// HMAC-SHA256 (RFC 2104) of `length` bytes at `data` with `key` into `mac` (32 bytes): OpenSSL's HMAC().
int tunnat_hmac_sha256(const void *key, size_t key_length, const void *data, size_t length, uint8_t *mac);

/// An AES-256-GCM key with its two cipher contexts (one sealing, one opening), set up once so that each message
/// only sets its IV. NULL if OpenSSL fails. Free with tunnat_aead_free.
void *tunnat_aead_new(const uint8_t key[32]);
void tunnat_aead_free(void *aead);
/// Encrypts `length` bytes of `plain` into `out` (the same length) and writes the 16-byte tag; `aad` is
/// authenticated, not encrypted. `iv` is 12 bytes and must never repeat under one key.
int tunnat_aead_seal(void *aead, const uint8_t iv[12], const void *aad, size_t aad_length, const void *plain,
                     size_t length, uint8_t *out, uint8_t tag[16]);
/// Checks the tag and decrypts; 0 if the tag does not match (nothing in `out` may then be used).
int tunnat_aead_open(void *aead, const uint8_t iv[12], const void *aad, size_t aad_length, const void *sealed,
                     size_t length, const uint8_t tag[16], uint8_t *out);

#endif
