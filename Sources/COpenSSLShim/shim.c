#include "COpenSSLShim.h"

#include <limits.h>
#include <stdlib.h>
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

struct tunnat_aead {
    EVP_CIPHER_CTX *seal;
    EVP_CIPHER_CTX *open;
};

void tunnat_aead_free(void *p) {
    struct tunnat_aead *aead = p;
    if (aead == NULL) return;
    EVP_CIPHER_CTX_free(aead->seal);
    EVP_CIPHER_CTX_free(aead->open);
    free(aead);
}

void *tunnat_aead_new(const uint8_t key[32]) {
    struct tunnat_aead *aead = calloc(1, sizeof *aead);
    if (aead == NULL) return NULL;
    aead->seal = EVP_CIPHER_CTX_new();
    aead->open = EVP_CIPHER_CTX_new();
    // The default IV length of GCM is 12 bytes; the key is set once here, the IV per message.
    if (aead->seal == NULL || aead->open == NULL
        || EVP_EncryptInit_ex(aead->seal, EVP_aes_256_gcm(), NULL, key, NULL) != 1
        || EVP_DecryptInit_ex(aead->open, EVP_aes_256_gcm(), NULL, key, NULL) != 1) {
        tunnat_aead_free(aead);
        return NULL;
    }
    return aead;
}

/* The IV, the AAD and the text through one direction's context (EVP_Cipher* follow the context's direction); the
 * caller finishes, with the tag. */
static int aead_update(EVP_CIPHER_CTX *ctx, const uint8_t iv[12], const void *aad, size_t aad_length, const void *in,
                       size_t length, uint8_t *out) {
    int n = 0;
    if (aad_length > INT_MAX || length > INT_MAX) return 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) != 1) return 0;
    if (aad_length > 0 && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_length) != 1) return 0;
    return length == 0 || (EVP_CipherUpdate(ctx, out, &n, in, (int)length) == 1 && (size_t)n == length);
}

int tunnat_aead_seal(void *p, const uint8_t iv[12], const void *aad, size_t aad_length, const void *plain,
                     size_t length, uint8_t *out, uint8_t tag[16]) {
    struct tunnat_aead *aead = p;
    int n = 0;
    return aead_update(aead->seal, iv, aad, aad_length, plain, length, out)
        && EVP_CipherFinal_ex(aead->seal, out + length, &n) == 1 && n == 0
        && EVP_CIPHER_CTX_ctrl(aead->seal, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
}

int tunnat_aead_open(void *p, const uint8_t iv[12], const void *aad, size_t aad_length, const void *sealed,
                     size_t length, const uint8_t tag[16], uint8_t *out) {
    struct tunnat_aead *aead = p;
    int n = 0;
    return aead_update(aead->open, iv, aad, aad_length, sealed, length, out)
        && EVP_CIPHER_CTX_ctrl(aead->open, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) == 1
        && EVP_CipherFinal_ex(aead->open, out + length, &n) == 1;
}
