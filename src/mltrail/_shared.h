/* What both C accelerators (mltrail._native, mltrail.catalog._records) need alike:
 * RFC 8785 string escaping and SHA-256 over up to three parts. Included, not linked: each
 * extension gets its own static copy.
 *
 * SHA256_Init and friends are deprecated in OpenSSL 3 but kept, and much cheaper per short
 * message (a leaf or node hash is 33 or 65 bytes) than EVP_Digest*, which sets up a
 * context on every call. */
#ifndef MLTRAIL_SHARED_H
#define MLTRAIL_SHARED_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#define HASH SHA256_DIGEST_LENGTH

static const char HEX[] = "0123456789abcdef";

/* q(s) for UTF-8 bytes s: quoted, escaping only ", \ and the controls below 0x20 (\b \f \n
 * \r \t short, the rest as \u00xx), as RFC 8785 and json's C escaper do. Writes at most
 * 6 * n + 2 bytes at o; returns the end. */
static char *
put_quoted(char *o, const unsigned char *s, Py_ssize_t n)
{
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = HEX[c >> 4];
            *o++ = HEX[c & 15];
        }
    }
    *o++ = '"';
    return o;
}

/* SHA-256 of a || b || c (b and c may be empty). */
static void
sha256(const void *a, size_t na, const void *b, size_t nb, const void *c, size_t nc,
       unsigned char out[HASH])
{
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, a, na);
    if (nb)
        SHA256_Update(&ctx, b, nb);
    if (nc)
        SHA256_Update(&ctx, c, nc);
    SHA256_Final(out, &ctx);
}

#endif
