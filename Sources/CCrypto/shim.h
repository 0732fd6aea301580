#include <openssl/evp.h>

// SHA-256 of a buffer through OpenSSL's EVP interface (uses the CPU's SHA extensions when present).
static inline int scalpel_sha256(const void *data, size_t count, unsigned char out[32]) {
    unsigned int size = 32;
    return EVP_Digest(data, count, out, &size, EVP_sha256(), NULL);
}
