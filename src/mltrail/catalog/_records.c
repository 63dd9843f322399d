/* The optional C twin of prediction-record sealing (mltrail.catalog.predictions).

   seal(head, tail, pids, stamps, hmacs, outputs) -> (records, digests, root) | None

   Builds each record's canonical bytes exactly as `record_texts` + `encode_records` do
       head + q(hmac) + ',"output":' + output + ',"prediction_id":' + q(pid)
            + ',"timestamp":' + q(stamp) + tail
   where q() is the RFC 8785 string form (json's C escaper with ensure_ascii=False: ", \,
   \b \f \n \r \t as short escapes, other controls below 0x20 as \u00xx, everything else
   verbatim in UTF-8), then hashes as `batch_tree` does: each record's SHA-256 (the leaf
   data, returned concatenated, 32 bytes each) and the RFC 6962 root over the leaves
   SHA-256(0x00 || digest), nodes SHA-256(0x01 || left || right).

   It returns None, leaving the work (and the error messages) to the pure-Python path,
   whenever an item is not an exact str or a string cannot be UTF-8 encoded (a lone
   surrogate). A property test holds both paths byte-equal. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/sha.h>
#include <string.h>

#define HASH SHA256_DIGEST_LENGTH

static const char HEX[] = "0123456789abcdef";

/* Length of q(s) for UTF-8 bytes s, quotes included. */
static Py_ssize_t
quoted_size(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t size = n + 2;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
            c == '\t')
            size += 1;
        else if (c < 0x20)
            size += 5;
    }
    return size;
}

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

/* UTF-8 of an exact str, or NULL with no exception set when it must go the Python way. */
static const unsigned char *
utf8_of(PyObject *item, Py_ssize_t *n)
{
    if (!PyUnicode_CheckExact(item))
        return NULL;
    const char *s = PyUnicode_AsUTF8AndSize(item, n);
    if (s == NULL)
        PyErr_Clear(); /* a lone surrogate: the Python path names the record */
    return (const unsigned char *)s;
}

static const char K_OUTPUT[] = ",\"output\":";
static const char K_PID[] = ",\"prediction_id\":";
static const char K_STAMP[] = ",\"timestamp\":";
#define LIT(k) (sizeof(k) - 1)

/* One record's bytes, or NULL (no exception: fall back; exception: fail). */
static PyObject *
record(const char *head, Py_ssize_t nhead, const char *tail, Py_ssize_t ntail, PyObject *pid,
       PyObject *stamp, PyObject *hmac, PyObject *output)
{
    Py_ssize_t np, ns, nh, no;
    const unsigned char *p = utf8_of(pid, &np), *s = utf8_of(stamp, &ns),
                        *h = utf8_of(hmac, &nh), *out = utf8_of(output, &no);
    if (p == NULL || s == NULL || h == NULL || out == NULL)
        return NULL;
    Py_ssize_t size = nhead + quoted_size(h, nh) + LIT(K_OUTPUT) + no + LIT(K_PID) +
                      quoted_size(p, np) + LIT(K_STAMP) + quoted_size(s, ns) + ntail;
    PyObject *blob = PyBytes_FromStringAndSize(NULL, size);
    if (blob == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(blob);
    memcpy(o, head, nhead), o += nhead;
    o = put_quoted(o, h, nh);
    memcpy(o, K_OUTPUT, LIT(K_OUTPUT)), o += LIT(K_OUTPUT);
    memcpy(o, out, no), o += no;
    memcpy(o, K_PID, LIT(K_PID)), o += LIT(K_PID);
    o = put_quoted(o, p, np);
    memcpy(o, K_STAMP, LIT(K_STAMP)), o += LIT(K_STAMP);
    o = put_quoted(o, s, ns);
    memcpy(o, tail, ntail);
    return blob;
}

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

/* RFC 6962 root over n >= 1 leaf hashes, in place. Pairing neighbours level by level and
   lifting an odd last node unchanged gives MTH's split at the largest power of two < n. */
static void
root_of(unsigned char *level, Py_ssize_t n, unsigned char out[HASH])
{
    static const unsigned char node = 0x01;
    while (n > 1) {
        Py_ssize_t up = 0;
        for (Py_ssize_t i = 0; i + 1 < n; i += 2, up++)
            sha256(&node, 1, level + i * HASH, HASH, level + (i + 1) * HASH, HASH,
                   level + up * HASH);
        if (n % 2)
            memmove(level + up * HASH, level + (n - 1) * HASH, HASH), up++;
        n = up;
    }
    memcpy(out, level, HASH);
}

static PyObject *
seal(PyObject *module, PyObject *args)
{
    const char *head, *tail;
    Py_ssize_t nhead, ntail;
    PyObject *pids, *stamps, *hmacs, *outputs;
    if (!PyArg_ParseTuple(args, "y#y#O!O!O!O!", &head, &nhead, &tail, &ntail, &PyList_Type,
                          &pids, &PyList_Type, &stamps, &PyList_Type, &hmacs, &PyList_Type,
                          &outputs))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(pids);
    if (n == 0 || PyList_GET_SIZE(stamps) != n || PyList_GET_SIZE(hmacs) != n ||
        PyList_GET_SIZE(outputs) != n)
        Py_RETURN_NONE; /* the Python path reports it */
    PyObject *records = PyList_New(n);
    PyObject *digests = PyBytes_FromStringAndSize(NULL, n * HASH);
    unsigned char *leaves = PyMem_Malloc(n * HASH);
    PyObject *result = NULL;
    if (records == NULL || digests == NULL || leaves == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    static const unsigned char leaf = 0x00;
    unsigned char *digest = (unsigned char *)PyBytes_AS_STRING(digests);
    for (Py_ssize_t i = 0; i < n; i++, digest += HASH) {
        PyObject *blob = record(head, nhead, tail, ntail, PyList_GET_ITEM(pids, i),
                                PyList_GET_ITEM(stamps, i), PyList_GET_ITEM(hmacs, i),
                                PyList_GET_ITEM(outputs, i));
        if (blob == NULL) {
            if (!PyErr_Occurred())
                result = Py_NewRef(Py_None);
            goto done;
        }
        PyList_SET_ITEM(records, i, blob);
        sha256(PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob), NULL, 0, NULL, 0, digest);
        sha256(&leaf, 1, digest, HASH, NULL, 0, leaves + i * HASH);
    }
    unsigned char root[HASH];
    root_of(leaves, n, root);
    result = Py_BuildValue("(OOy#)", records, digests, (const char *)root, (Py_ssize_t)HASH);
done:
    Py_XDECREF(records);
    Py_XDECREF(digests);
    PyMem_Free(leaves);
    return result;
}

static PyMethodDef methods[] = {
    {"seal", seal, METH_VARARGS,
     "seal(head, tail, pids, stamps, hmacs, outputs) -> (records, digests, root) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mltrail.catalog._records",
    "C twin of prediction-record sealing; see mltrail.catalog.predictions.", -1, methods,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    return PyModule_Create(&module);
}
