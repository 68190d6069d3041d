// COpenSSLShim: the two digests tunnat needs from OpenSSL (libcrypto), as plain functions over bytes, so that
// Swift sees no OpenSSL types. Each returns 1 on success and 0 on failure, as OpenSSL's own calls do.
#ifndef TUNNAT_COPENSSLSHIM_H
#define TUNNAT_COPENSSLSHIM_H

#include <stddef.h>
#include <stdint.h>

/// SHA-256 of `length` bytes at `data` into `digest` (32 bytes): EVP_Digest with EVP_sha256.
int tunnat_sha256(const void *data, size_t length, uint8_t *digest);
/// HMAC-SHA256 (RFC 2104) of `length` bytes at `data` with `key` into `mac` (32 bytes): OpenSSL's HMAC().
int tunnat_hmac_sha256(const void *key, size_t key_length, const void *data, size_t length, uint8_t *mac);

#endif
