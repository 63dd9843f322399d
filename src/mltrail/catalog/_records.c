/* The optional C twins of prediction ingest's per-record loops (mltrail.catalog.predictions).

   columns(items, canonical, clock) -> (pids, stamps, hmacs, outputs) | None
   seal(head, tail, pids, stamps, hmacs, outputs) -> (records, sizes, digests, root) | None

   Each takes the common, all-valid case and returns None at the first thing it does not
   accept; the pure-Python path then does the work and raises its usual errors (which
   record, which field, what was expected). Property tests hold each twin equal to its
   Python path.

   columns: what `parse_records` checks and derives, one record at a time, for records that
   are exact dicts with a valid exact-str prediction_id (1 to 200 characters, none of them
   whitespace or control), an output that `canonical` (mltrail._native.canonical, passed
   in: the two extensions are not linked) encodes, an exact-str input_hmac and no input,
   no version (or None), and a timestamp that is absent, None, "" (the clock's reading,
   taken once) or already in the registry's form (2024-06-01T09:30:00.000000Z, a real
   date); and no prediction id twice. Outputs come back as canonical JSON bytes.

   seal: the batch file, each record's canonical bytes exactly as `record_texts` +
   `encode_records` build them, joined by newlines, with each record's size:
       head + q(hmac) + ',"output":' + output + ',"prediction_id":' + q(pid)
            + ',"timestamp":' + q(stamp) + tail
   where q() is the RFC 8785 string form (json's C escaper with ensure_ascii=False: ", \,
   \b \f \n \r \t as short escapes, other controls below 0x20 as \u00xx, everything else
   verbatim in UTF-8), then hashed as `batch_tree` does: each record's SHA-256 (the leaf
   data, returned concatenated, 32 bytes each) and the RFC 6962 root over the leaves
   SHA-256(0x00 || digest), nodes SHA-256(0x01 || left || right). It leaves to Python an
   item that is not an exact str (an output: exact bytes or str) or a string that cannot be UTF-8
   encoded (a lone surrogate). */

#include "../_shared.h"
#include <string.h>

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

/* UTF-8 of an exact str (or, where `bytes_ok`, exact bytes), or NULL with no exception set
   when it must go the Python way. */
static const unsigned char *
utf8_of(PyObject *item, Py_ssize_t *n, int bytes_ok)
{
    if (bytes_ok && PyBytes_CheckExact(item)) {
        *n = PyBytes_GET_SIZE(item);
        return (const unsigned char *)PyBytes_AS_STRING(item);
    }
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

/* One record's fields as UTF-8. */
typedef struct {
    const unsigned char *p, *s, *h, *out;
    Py_ssize_t np, ns, nh, no;
} Fields;

/* Its fields, or 0 (no exception set) when one must go the Python way. */
static int
fields_of(Fields *f, PyObject *pid, PyObject *stamp, PyObject *hmac, PyObject *output)
{
    f->p = utf8_of(pid, &f->np, 0);
    f->s = utf8_of(stamp, &f->ns, 0);
    f->h = utf8_of(hmac, &f->nh, 0);
    f->out = utf8_of(output, &f->no, 1);
    return f->p != NULL && f->s != NULL && f->h != NULL && f->out != NULL;
}

/* The size of the record's bytes without head and tail. */
static Py_ssize_t
body_size(const Fields *f)
{
    return quoted_size(f->h, f->nh) + LIT(K_OUTPUT) + f->no + LIT(K_PID) +
           quoted_size(f->p, f->np) + LIT(K_STAMP) + quoted_size(f->s, f->ns);
}

/* Write the record at o; returns the end. */
static char *
put_record(char *o, const char *head, Py_ssize_t nhead, const char *tail, Py_ssize_t ntail,
           const Fields *f)
{
    memcpy(o, head, nhead), o += nhead;
    o = put_quoted(o, f->h, f->nh);
    memcpy(o, K_OUTPUT, LIT(K_OUTPUT)), o += LIT(K_OUTPUT);
    memcpy(o, f->out, f->no), o += f->no;
    memcpy(o, K_PID, LIT(K_PID)), o += LIT(K_PID);
    o = put_quoted(o, f->p, f->np);
    memcpy(o, K_STAMP, LIT(K_STAMP)), o += LIT(K_STAMP);
    o = put_quoted(o, f->s, f->ns);
    memcpy(o, tail, ntail);
    return o + ntail;
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

/* The records' sizes into `sizes`, or 0 (no exception set) at the first record that must
   go the Python way. */
static int
measure(PyObject *lists[4], Py_ssize_t n, Py_ssize_t fixed, Py_ssize_t *sizes)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        Fields f;
        if (!fields_of(&f, PyList_GET_ITEM(lists[0], i), PyList_GET_ITEM(lists[1], i),
                       PyList_GET_ITEM(lists[2], i), PyList_GET_ITEM(lists[3], i)))
            return 0;
        sizes[i] = fixed + body_size(&f);
    }
    return 1;
}

static PyObject *
seal(PyObject *Py_UNUSED(module), PyObject *args)
{
    const char *head, *tail;
    Py_ssize_t nhead, ntail;
    PyObject *lists[4]; /* pids, stamps, hmacs, outputs */
    if (!PyArg_ParseTuple(args, "y#y#O!O!O!O!", &head, &nhead, &tail, &ntail, &PyList_Type,
                          &lists[0], &PyList_Type, &lists[1], &PyList_Type, &lists[2],
                          &PyList_Type, &lists[3]))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(lists[0]);
    for (int c = 1; c < 4; c++)
        if (PyList_GET_SIZE(lists[c]) != n)
            Py_RETURN_NONE; /* the Python path reports it */
    if (n == 0)
        Py_RETURN_NONE;
    Py_ssize_t *sizes = PyMem_Malloc(n * sizeof *sizes);
    unsigned char *leaves = PyMem_Malloc(n * HASH);
    PyObject *records = NULL, *lengths = NULL, *digests = NULL, *result = NULL;
    if (sizes == NULL || leaves == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (!measure(lists, n, nhead + ntail, sizes)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t total = n - 1; /* the newlines between records */
    for (Py_ssize_t i = 0; i < n; i++)
        total += sizes[i];
    records = PyBytes_FromStringAndSize(NULL, total);
    lengths = PyList_New(n);
    digests = PyBytes_FromStringAndSize(NULL, n * HASH);
    if (records == NULL || lengths == NULL || digests == NULL)
        goto done;
    static const unsigned char leaf = 0x00;
    char *o = PyBytes_AS_STRING(records);
    unsigned char *digest = (unsigned char *)PyBytes_AS_STRING(digests);
    for (Py_ssize_t i = 0; i < n; i++, digest += HASH) {
        Fields f;
        fields_of(&f, PyList_GET_ITEM(lists[0], i), PyList_GET_ITEM(lists[1], i),
                  PyList_GET_ITEM(lists[2], i), PyList_GET_ITEM(lists[3], i));
        char *start = o;
        o = put_record(o, head, nhead, tail, ntail, &f);
        sha256(start, sizes[i], NULL, 0, NULL, 0, digest);
        sha256(&leaf, 1, digest, HASH, NULL, 0, leaves + i * HASH);
        PyObject *size = PyLong_FromSsize_t(sizes[i]);
        if (size == NULL)
            goto done;
        PyList_SET_ITEM(lengths, i, size);
        if (i + 1 < n)
            *o++ = '\n';
    }
    unsigned char root[HASH];
    root_of(leaves, n, root);
    result = Py_BuildValue("(OOOy#)", records, lengths, digests, (const char *)root,
                           (Py_ssize_t)HASH);
done:
    Py_XDECREF(records);
    Py_XDECREF(lengths);
    Py_XDECREF(digests);
    PyMem_Free(sizes);
    PyMem_Free(leaves);
    return result;
}

/* -- columns ------------------------------------------------------------------------- */

static PyObject *k_pid, *k_output, *k_hmac, *k_input, *k_version, *k_stamp;

#define MAX_ID 200 /* mltrail.catalog.ids._MAX_ID_LENGTH */

/* What `check_id` accepts: 1 to 200 characters, no control character (\x00-\x1f, \x7f)
   and no whitespace; the regex's \s for str is Py_UNICODE_ISSPACE (str.isspace). */
static int
valid_id(PyObject *s)
{
    if (!PyUnicode_CheckExact(s))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n < 1 || n > MAX_ID)
        return 0;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c <= 0x20 || c == 0x7f || (c >= 0x80 && Py_UNICODE_ISSPACE(c)))
            return 0;
    }
    return 1;
}

static int
number(const char *s, int n)
{
    int value = 0;
    for (int i = 0; i < n; i++)
        value = value * 10 + (s[i] - '0');
    return value;
}

/* The registry's own form, 2024-06-01T09:30:00.000000Z, in ASCII digits, of a time
   `datetime.fromisoformat` takes: year 1 to 9999, a real day of its month, hour < 24,
   minute and second < 60. Anything else is for `parse_timestamp` to normalize or refuse. */
static int
canonical_stamp(PyObject *s)
{
    static const char form[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!PyUnicode_IS_ASCII(s) || PyUnicode_GET_LENGTH(s) != (Py_ssize_t)LIT(form))
        return 0;
    const char *t = (const char *)PyUnicode_1BYTE_DATA(s);
    for (size_t i = 0; i < LIT(form); i++) {
        if (form[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != form[i])
            return 0;
    }
    int year = number(t, 4), month = number(t + 5, 2), day = number(t + 8, 2);
    if (year < 1 || month < 1 || month > 12 || day < 1)
        return 0;
    int leap = month == 2 && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    return day <= days[month - 1] + leap && number(t + 11, 2) < 24 && number(t + 14, 2) < 60 &&
           number(t + 17, 2) < 60;
}

/* The value under `key`, borrowed; NULL when absent (no exception) or on error. */
static PyObject *
field(PyObject *item, PyObject *key)
{
    return PyDict_GetItemWithError(item, key);
}

typedef struct {
    PyObject *canonical, *clock, *now; /* now: the clock's reading once taken */
    PyObject *seen;                    /* the prediction ids so far */
} Parse;

/* The timestamp a record gets, as a new reference; NULL with no exception: fall back. */
static PyObject *
stamp_of(Parse *p, PyObject *item)
{
    PyObject *stamp = field(item, k_stamp);
    if (stamp == NULL && PyErr_Occurred())
        return NULL;
    if (stamp != NULL && stamp != Py_None) {
        if (!PyUnicode_CheckExact(stamp))
            return NULL;
        if (PyUnicode_GET_LENGTH(stamp) > 0)
            return canonical_stamp(stamp) ? Py_NewRef(stamp) : NULL;
    }
    if (p->now == NULL && (p->now = PyObject_CallNoArgs(p->clock)) == NULL)
        return NULL;
    return Py_NewRef(p->now);
}

/* One record's columns into cols[0..3] (new references): 1 taken, 0 fall back, -1 error. */
static int
parse_one(Parse *p, PyObject *item, PyObject *cols[4])
{
    if (!PyDict_CheckExact(item))
        return 0;
    PyObject *pid = field(item, k_pid), *output, *hmac, *version;
    if (pid == NULL || !valid_id(pid))
        return PyErr_Occurred() ? -1 : 0;
    if ((output = field(item, k_output)) == NULL || (hmac = field(item, k_hmac)) == NULL ||
        !PyUnicode_CheckExact(hmac))
        return PyErr_Occurred() ? -1 : 0;
    int has_input = PyDict_Contains(item, k_input);
    if (has_input)
        return has_input < 0 ? -1 : 0;
    if ((version = field(item, k_version)) != NULL && version != Py_None)
        return 0;
    if (PyErr_Occurred())
        return -1;
    Py_ssize_t before = PySet_GET_SIZE(p->seen);
    if (PySet_Add(p->seen, pid))
        return -1;
    if (PySet_GET_SIZE(p->seen) == before)
        return 0; /* a repeated id: Python names it */
    if ((cols[1] = stamp_of(p, item)) == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if ((cols[3] = PyObject_CallOneArg(p->canonical, output)) == NULL ||
        !PyBytes_CheckExact(cols[3])) {
        Py_CLEAR(cols[1]);
        int failed = cols[3] == NULL;
        Py_XDECREF(cols[3]);
        return failed ? -1 : 0;
    }
    cols[0] = Py_NewRef(pid);
    cols[2] = Py_NewRef(hmac);
    return 1;
}

static PyObject *
columns(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *items, *lists[4] = {NULL, NULL, NULL, NULL}, *result = NULL;
    Parse p = {NULL, NULL, NULL, NULL};
    if (!PyArg_ParseTuple(args, "O!OO", &PyList_Type, &items, &p.canonical, &p.clock))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(items);
    if (n == 0)
        Py_RETURN_NONE;
    if ((p.seen = PySet_New(NULL)) == NULL)
        return NULL;
    for (int c = 0; c < 4; c++)
        if ((lists[c] = PyList_New(n)) == NULL)
            goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *cols[4] = {NULL, NULL, NULL, NULL};
        int rc = parse_one(&p, PyList_GET_ITEM(items, i), cols);
        if (rc <= 0) {
            if (rc == 0)
                result = Py_NewRef(Py_None);
            goto done;
        }
        for (int c = 0; c < 4; c++)
            PyList_SET_ITEM(lists[c], i, cols[c]);
    }
    result = PyTuple_Pack(4, lists[0], lists[1], lists[2], lists[3]);
done:
    for (int c = 0; c < 4; c++)
        Py_XDECREF(lists[c]);
    Py_XDECREF(p.now);
    Py_DECREF(p.seen);
    return result;
}

static PyMethodDef methods[] = {
    {"columns", columns, METH_VARARGS,
     "columns(items, canonical, clock) -> (pids, stamps, hmacs, outputs) | None"},
    {"seal", seal, METH_VARARGS,
     "seal(head, tail, pids, stamps, hmacs, outputs) -> (records, sizes, digests, root) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mltrail.catalog._records",
    "C twins of prediction ingest's per-record loops; see mltrail.catalog.predictions.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    static const char *names[] = {"prediction_id", "output", "input_hmac", "input", "version",
                                  "timestamp"};
    PyObject **keys[] = {&k_pid, &k_output, &k_hmac, &k_input, &k_version, &k_stamp};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if ((*keys[i] = PyUnicode_InternFromString(names[i])) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
