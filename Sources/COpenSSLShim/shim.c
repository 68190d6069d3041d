#include "COpenSSLShim.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

int tunnat_sha256(const void *data, size_t length, uint8_t *digest) {
    unsigned int size = 0;
    return EVP_Digest(data, length, digest, &size, EVP_sha256(), NULL) == 1 && size == 32;
}

int tunnat_hmac_sha256(const void *key, size_t key_length, const void *data, size_t length, uint8_t *mac) {
    unsigned int size = 0;
    if (key_length > 0x7fffffff) return 0;
    return HMAC(EVP_sha256(), key, (int)key_length, data, length, mac, &size) != NULL && size == 32;
}
