#include "md5.h"

#include <openssl/evp.h>

int md5_digest(const void *data, size_t len, unsigned char out[MD5_DIGEST_LEN])
{
    unsigned int outlen = 0;
    if (EVP_Digest(data, len, out, &outlen, EVP_md5(), NULL) != 1 || outlen != MD5_DIGEST_LEN)
        return -1;
    return 0;
}
