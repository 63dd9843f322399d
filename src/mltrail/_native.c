/* mltrail._native: the per-event hot loops of the ledger, in C.
 *
 * Optional: mltrail works without it (every function here has a pure-Python twin, and
 * property tests hold the two byte-equal). It exists because sealing a batch spends most
 * of its time encoding RFC 8785 JSON and hashing, one small object at a time.
 *
 * canonical(value) -> bytes | None
 *     RFC 8785 bytes of a JSON value made of str, exact int, float, bool, None, list, tuple
 *     and dict (a str subclass, such as an enum member, is encoded by its text, as Python's
 *     path does); None whenever the value needs the Python implementation (a float outside
 *     1e-4 <= |x| < 1e16 or integral, an integer beyond 2^53-1, a key outside the Basic
 *     Multilingual Plane, a lone surrogate, any other subclass, more than MAX_PARTS parts
 *     or a nesting deeper than MAX_DEPTH). Python then answers, or raises the right error.
 *
 * seal_batch(drafts, seq, timestamp, unix_ms, random, frontier)
 *         -> (rows, leaf_hashes, nodes, frontier) | None
 *     Seals `drafts` (mltrail.events.Draft) at leaf indexes seq, seq+1, ...: gives each a
 *     UUIDv7 event id (unix_ms, then 10 random bytes each from `random`), encodes the event
 *     body as Event.canonical_bytes does, hashes it, and appends its leaf to the Merkle
 *     compact range whose hashes are `frontier`. Returns the ledger_events rows, the leaf
 *     hashes, every interior node completed as (level, index, hash), and the new frontier;
 *     None if any draft needs the Python path.
 *
 * check_rows(rows) -> (leaves, digest_mismatches, column_suspects) | None
 *     For ledger_events rows (seq, event_sha256, body, action, actor_id, event_id,
 *     subject_type, subject_id, ts): the RFC 6962 leaf hash of each body's SHA-256, the
 *     positions whose stored digest differs, and the positions where the query columns do
 *     not match the body by mltrail.ledger.chunk's byte check (Python then parses those).
 *     None if a body or digest is not bytes.
 *
 * subtree_levels(leaves) -> list[list[bytes]] | None
 *     mltrail.ledger.merkle.subtree_levels: every complete subtree hash, level by level;
 *     None if a leaf hash is not 32 bytes.
 */
#include "_shared.h"
#include <stdlib.h>
#include <string.h>

#define OK 0
#define ERR (-1)  /* a Python exception is set */
#define SLOW 1    /* not for this code: the caller takes the Python path */

#define MAX_SAFE_INTEGER 9007199254740991LL
#define MAX_PARTS 1000000
#define MAX_DEPTH 500

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int
grow(Buf *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap)
        return OK;
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = PyMem_Realloc(b->data, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return ERR;
    }
    b->data = p;
    b->cap = cap;
    return OK;
}

static int
put(Buf *b, const char *s, Py_ssize_t n)
{
    if (grow(b, n))
        return ERR;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return OK;
}

#define PUT(b, lit) put((b), (lit), (Py_ssize_t)sizeof(lit) - 1)

/* UTF-8 text as an RFC 8785 string (see put_quoted). */
static int
put_utf8(Buf *b, const char *u, Py_ssize_t n)
{
    if (grow(b, 6 * n + 2))
        return ERR;
    b->len = put_quoted(b->data + b->len, (const unsigned char *)u, n) - b->data;
    return OK;
}

/* A str, or a str subclass (an enum member), by its text, as json's C escaper takes it. */
static int
put_string(Buf *b, PyObject *s)
{
    if (!PyUnicode_Check(s))
        return SLOW;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u == NULL) { /* a lone surrogate: the Python path raises the FormatError */
        PyErr_Clear();
        return SLOW;
    }
    return put_utf8(b, u, n);
}

typedef struct {
    const char *key;
    Py_ssize_t len;
    PyObject *value;
} Member;

static int
compare_members(const void *x, const void *y)
{
    const Member *a = x, *b = y;
    int c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    return (a->len > b->len) - (a->len < b->len);
}

typedef struct {
    Buf *out;
    long parts; /* values written so far, bounded by MAX_PARTS */
} Walk;

static int put_value(Walk *w, PyObject *v, int depth);

/* Members sorted by UTF-8 bytes, that is by code point, which is RFC 8785's UTF-16 order
 * as long as no key leaves the Basic Multilingual Plane (checked). */
static int
put_object(Walk *w, PyObject *d, int depth)
{
    Py_ssize_t n = PyDict_GET_SIZE(d);
    if (n == 0)
        return PUT(w->out, "{}");
    Member *m = PyMem_Malloc(n * sizeof(Member));
    if (m == NULL) {
        PyErr_NoMemory();
        return ERR;
    }
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    int rc = OK;
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!PyUnicode_Check(k) || PyUnicode_MAX_CHAR_VALUE(k) > 0xFFFF) {
            rc = SLOW;
            goto done;
        }
        m[i].key = PyUnicode_AsUTF8AndSize(k, &m[i].len);
        if (m[i].key == NULL) {
            PyErr_Clear();
            rc = SLOW;
            goto done;
        }
        m[i].value = v;
        i++;
    }
    if (n <= 16) { /* an insertion sort: objects are small, and often nearly sorted */
        for (Py_ssize_t j = 1; j < n; j++) {
            Member key = m[j];
            Py_ssize_t k = j;
            for (; k > 0 && compare_members(&m[k - 1], &key) > 0; k--)
                m[k] = m[k - 1];
            m[k] = key;
        }
    }
    else
        qsort(m, n, sizeof(Member), compare_members);
    if ((rc = PUT(w->out, "{")))
        goto done;
    for (i = 0; i < n; i++) {
        if ((i && (rc = PUT(w->out, ","))) || (rc = put_utf8(w->out, m[i].key, m[i].len)) ||
            (rc = PUT(w->out, ":")) || (rc = put_value(w, m[i].value, depth + 1)))
            goto done;
    }
    rc = PUT(w->out, "}");
done:
    PyMem_Free(m);
    return rc;
}

static int
put_array(Walk *w, PyObject *seq, int depth)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    int rc;
    if ((rc = PUT(w->out, "[")))
        return rc;
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((i && (rc = PUT(w->out, ","))) || (rc = put_value(w, items[i], depth + 1)))
            return rc;
    }
    return PUT(w->out, "]");
}

static int
put_int(Buf *b, long long v)
{
    char tmp[24], *o = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        *--o = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--o = '-';
    return put(b, o, tmp + sizeof tmp - o);
}

static int
put_value(Walk *w, PyObject *v, int depth)
{
    if (++w->parts > MAX_PARTS || depth > MAX_DEPTH)
        return SLOW; /* the Python path names the limit */
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type)
        return put_string(w->out, v);
    if (v == Py_None)
        return PUT(w->out, "null");
    if (v == Py_True)
        return PUT(w->out, "true");
    if (v == Py_False)
        return PUT(w->out, "false");
    if (t == &PyLong_Type) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            return ERR;
        if (overflow || x > MAX_SAFE_INTEGER || x < -MAX_SAFE_INTEGER)
            return SLOW;
        return put_int(w->out, x);
    }
    if (t == &PyFloat_Type) {
        /* repr prints these exactly as ECMAScript does (RFC 8785 §3.2.2.3): plain digits
         * from 1e-4 up to 1e16, and no ".0" since none is integral. */
        double x = PyFloat_AS_DOUBLE(v);
        double a = x < 0 ? -x : x;
        if (!(a >= 1e-4 && a < 1e16) || x == (double)(long long)x)
            return SLOW;
        char *text = PyOS_double_to_string(x, 'r', 0, 0, NULL);
        if (text == NULL)
            return ERR;
        int rc = put(w->out, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return rc;
    }
    if (t == &PyDict_Type)
        return put_object(w, v, depth);
    if (PyUnicode_Check(v)) /* a str subclass: Python's path encodes its text too */
        return put_string(w->out, v);
    if (t == &PyList_Type || t == &PyTuple_Type) {
        PyObject *seq = PySequence_Fast(v, "");
        if (seq == NULL)
            return ERR;
        int rc = put_array(w, seq, depth);
        Py_DECREF(seq);
        return rc;
    }
    return SLOW;
}

static PyObject *
finish(Buf *b, int rc)
{
    PyObject *out = NULL;
    if (rc == OK)
        out = PyBytes_FromStringAndSize(b->data, b->len);
    else if (rc == SLOW)
        out = Py_NewRef(Py_None);
    PyMem_Free(b->data);
    return out;
}

static PyObject *
canonical(PyObject *module, PyObject *value)
{
    Buf b = {0};
    Walk w = {&b, 0};
    return finish(&b, put_value(&w, value, 0));
}

/* -- sealing a batch --------------------------------------------------------------------- */

static PyObject *s_action, *s_actor, *s_subject, *s_related, *s_metadata, *s_artifact,
    *s_type, *s_id, *s_role, *s_digest;

/* An attribute that must be a str (or None when `optional`); SLOW otherwise. */
static int
text_attr(PyObject *obj, PyObject *name, int optional, PyObject **out)
{
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL)
        return ERR;
    if (PyUnicode_Check(v) || (optional && v == Py_None)) {
        *out = v; /* a new reference */
        return OK;
    }
    Py_DECREF(v);
    return SLOW;
}

/* A Ref as _ref_json writes it: keys digest, id, role, type (sorted), None ones left out. */
static int
put_ref(Buf *b, PyObject *ref)
{
    PyObject *type = NULL, *id = NULL, *role = NULL, *digest = NULL;
    int rc;
    if ((rc = text_attr(ref, s_type, 0, &type)) || (rc = text_attr(ref, s_id, 0, &id)) ||
        (rc = text_attr(ref, s_role, 1, &role)) || (rc = text_attr(ref, s_digest, 1, &digest)))
        goto done;
    if ((rc = PUT(b, "{")))
        goto done;
    if (digest != Py_None &&
        ((rc = PUT(b, "\"digest\":")) || (rc = put_string(b, digest)) || (rc = PUT(b, ","))))
        goto done;
    if ((rc = PUT(b, "\"id\":")) || (rc = put_string(b, id)))
        goto done;
    if (role != Py_None && ((rc = PUT(b, ",\"role\":")) || (rc = put_string(b, role))))
        goto done;
    if ((rc = PUT(b, ",\"type\":")) || (rc = put_string(b, type)) || (rc = PUT(b, "}")))
        goto done;
done:
    Py_XDECREF(type);
    Py_XDECREF(id);
    Py_XDECREF(role);
    Py_XDECREF(digest);
    return rc;
}

typedef struct {
    PyObject *action, *actor, *actor_id, *actor_type, *subject, *subject_type, *subject_id,
        *related, *metadata, *artifact;
} DraftParts;

static void
release(DraftParts *p)
{
    Py_XDECREF(p->action);
    Py_XDECREF(p->actor);
    Py_XDECREF(p->actor_id);
    Py_XDECREF(p->actor_type);
    Py_XDECREF(p->subject);
    Py_XDECREF(p->subject_type);
    Py_XDECREF(p->subject_id);
    Py_XDECREF(p->related);
    Py_XDECREF(p->metadata);
    Py_XDECREF(p->artifact);
}

static int
draft_parts(PyObject *draft, DraftParts *p)
{
    int rc;
    if ((rc = text_attr(draft, s_action, 0, &p->action)) ||
        (rc = text_attr(draft, s_artifact, 1, &p->artifact)))
        return rc;
    if ((p->actor = PyObject_GetAttr(draft, s_actor)) == NULL ||
        (p->subject = PyObject_GetAttr(draft, s_subject)) == NULL ||
        (p->related = PyObject_GetAttr(draft, s_related)) == NULL ||
        (p->metadata = PyObject_GetAttr(draft, s_metadata)) == NULL)
        return ERR;
    if (!PyDict_CheckExact(p->metadata) ||
        !(PyList_CheckExact(p->related) || PyTuple_CheckExact(p->related)))
        return SLOW;
    if ((rc = text_attr(p->actor, s_id, 0, &p->actor_id)) ||
        (rc = text_attr(p->actor, s_type, 0, &p->actor_type)) ||
        (rc = text_attr(p->subject, s_type, 0, &p->subject_type)) ||
        (rc = text_attr(p->subject, s_id, 0, &p->subject_id)))
        return rc;
    return OK;
}

/* Event.canonical_bytes: the body's keys are fixed, so they are written in sorted order. */
static int
put_event(Buf *b, DraftParts *p, const char *event_id, long long seq, PyObject *timestamp)
{
    Walk w = {b, 1}; /* the metadata object itself is one part, as in canonical() */
    int rc;
    if ((rc = PUT(b, "{\"action\":")) || (rc = put_string(b, p->action)) ||
        (rc = PUT(b, ",\"actor\":{\"id\":")) || (rc = put_string(b, p->actor_id)) ||
        (rc = PUT(b, ",\"type\":")) || (rc = put_string(b, p->actor_type)) ||
        (rc = PUT(b, "},\"event_id\":")) || (rc = put_utf8(b, event_id, 36)) ||
        (rc = PUT(b, ",\"integrity\":{")))
        return rc;
    if (p->artifact != Py_None &&
        ((rc = PUT(b, "\"artifact_sha256\":")) || (rc = put_string(b, p->artifact))))
        return rc;
    if ((rc = PUT(b, "},\"metadata\":")) || (rc = put_object(&w, p->metadata, 1)) ||
        (rc = PUT(b, ",\"related\":[")))
        return rc;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(p->related);
    PyObject **refs = PySequence_Fast_ITEMS(p->related);
    for (Py_ssize_t i = 0; i < n; i++) {
        if ((i && (rc = PUT(b, ","))) || (rc = put_ref(b, refs[i])))
            return rc;
    }
    if ((rc = PUT(b, "],\"seq\":")) || (rc = put_int(b, seq)) || (rc = PUT(b, ",\"subject\":")) ||
        (rc = put_ref(b, p->subject)) || (rc = PUT(b, ",\"timestamp\":")) ||
        (rc = put_string(b, timestamp)) || (rc = PUT(b, "}")))
        return rc;
    return OK;
}

/* RFC 9562 §5.7: 48-bit milliseconds, version 7, 74 random bits with the variant set. */
static void
format_uuid7(char out[36], unsigned long long ms, const unsigned char *rnd)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    for (int i = 0; i < 6; i++)
        raw[i] = (unsigned char)(ms >> (8 * (5 - i)));
    memcpy(raw + 6, rnd, 10);
    raw[6] = 0x70 | (raw[6] & 0x0F);
    raw[8] = 0x80 | (raw[8] & 0x3F);
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[raw[i] >> 4];
        *o++ = hex[raw[i] & 15];
    }
}

/* A tuple from new references, or NULL (and every reference dropped) if any is NULL. */
static PyObject *
tuple_of(Py_ssize_t n, PyObject **items)
{
    PyObject *t = NULL;
    int ok = 1;
    for (Py_ssize_t i = 0; i < n; i++)
        ok &= items[i] != NULL;
    if (ok && (t = PyTuple_New(n)) != NULL) {
        for (Py_ssize_t i = 0; i < n; i++)
            PyTuple_SET_ITEM(t, i, items[i]);
        return t;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

/* The ledger_events row (log._EVENT_COLUMNS order) of one sealed event. */
static PyObject *
event_row(long long seq, const char *event_id, const unsigned char *digest, Buf *body,
          DraftParts *p, PyObject *timestamp)
{
    PyObject *items[] = {
        PyLong_FromLongLong(seq),
        PyUnicode_FromStringAndSize(event_id, 36),
        PyBytes_FromStringAndSize((const char *)digest, HASH),
        PyBytes_FromStringAndSize(body->data, body->len),
        Py_NewRef(p->action),
        Py_NewRef(p->actor_id),
        Py_NewRef(p->subject_type),
        Py_NewRef(p->subject_id),
        Py_NewRef(timestamp),
    };
    return tuple_of(9, items);
}

/* A completed Merkle node as (level, index, hash). */
static PyObject *
node_row(int level, unsigned long long index, const unsigned char *hash)
{
    PyObject *items[] = {
        PyLong_FromLong(level),
        PyLong_FromUnsignedLongLong(index),
        PyBytes_FromStringAndSize((const char *)hash, HASH),
    };
    return tuple_of(3, items);
}

static PyObject *
seal_batch(PyObject *module, PyObject *args)
{
    PyObject *drafts, *timestamp, *frontier;
    long long seq;
    unsigned long long unix_ms;
    Py_buffer rnd;
    if (!PyArg_ParseTuple(args, "O!LUKy*O!", &PyList_Type, &drafts, &seq, &timestamp, &unix_ms,
                          &rnd, &PyList_Type, &frontier))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(drafts), depth = PyList_GET_SIZE(frontier);
    long long size = seq;
    PyObject *rows = NULL, *leaves = NULL, *nodes = NULL, *result = NULL;
    unsigned char *stack = NULL;
    Buf b = {0};
    int rc = OK;
    if (rnd.len < 10 * n || seq < 0 || depth != __builtin_popcountll((unsigned long long)seq)) {
        PyErr_SetString(PyExc_ValueError,
                        "seal_batch: need 10 random bytes per draft and one frontier hash per "
                        "set bit of seq");
        goto fail;
    }
    /* The compact range: popcount(size) hashes now, at most 64 however the batch grows. */
    if ((stack = PyMem_Malloc(64 * HASH)) == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < depth; i++) {
        PyObject *item = PyList_GET_ITEM(frontier, i);
        if (!PyBytes_CheckExact(item) || PyBytes_GET_SIZE(item) != HASH) {
            PyErr_SetString(PyExc_ValueError, "seal_batch: frontier hashes must be 32 bytes");
            goto fail;
        }
        memcpy(stack + i * HASH, PyBytes_AS_STRING(item), HASH);
    }
    if ((rows = PyList_New(n)) == NULL || (leaves = PyList_New(n)) == NULL ||
        (nodes = PyList_New(0)) == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        DraftParts p = {0};
        char event_id[36];
        unsigned char digest[HASH];
        format_uuid7(event_id, unix_ms, (const unsigned char *)rnd.buf + 10 * i);
        b.len = 0;
        rc = draft_parts(PyList_GET_ITEM(drafts, i), &p);
        if (rc == OK)
            rc = put_event(&b, &p, event_id, size, timestamp);
        if (rc == OK)
            sha256(b.data, b.len, NULL, 0, NULL, 0, digest);
        PyObject *row = rc == OK ? event_row(size, event_id, digest, &b, &p, timestamp) : NULL;
        release(&p);
        if (rc != OK || row == NULL)
            goto fail;
        PyList_SET_ITEM(rows, i, row);
        /* The leaf, then every parent it completes, like a binary counter carrying. */
        unsigned char *top = stack + depth * HASH;
        static const unsigned char leaf_prefix = 0x00, node_prefix = 0x01;
        sha256(&leaf_prefix, 1, digest, HASH, NULL, 0, top);
        PyObject *leaf = PyBytes_FromStringAndSize((const char *)top, HASH);
        if (leaf == NULL)
            goto fail;
        PyList_SET_ITEM(leaves, i, leaf);
        depth++;
        unsigned long long index = (unsigned long long)size;
        for (int level = 1; index & 1; level++) {
            index >>= 1;
            unsigned char *left = stack + (depth - 2) * HASH;
            sha256(&node_prefix, 1, left, HASH, left + HASH, HASH, left);
            depth--;
            PyObject *node = node_row(level, index, left);
            if (node == NULL || PyList_Append(nodes, node)) {
                Py_XDECREF(node);
                goto fail;
            }
            Py_DECREF(node);
        }
        size++;
    }
    PyObject *edge = PyList_New(depth);
    if (edge == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < depth; i++) {
        PyObject *hash = PyBytes_FromStringAndSize((const char *)stack + i * HASH, HASH);
        if (hash == NULL) {
            Py_DECREF(edge);
            goto fail;
        }
        PyList_SET_ITEM(edge, i, hash);
    }
    result = Py_BuildValue("(NNNN)", rows, leaves, nodes, edge);
    rows = leaves = nodes = NULL; /* stolen by "N", even when building fails */
fail:
    if (rc == SLOW && !PyErr_Occurred()) {
        Py_XDECREF(result);
        result = Py_NewRef(Py_None);
    }
    Py_XDECREF(rows);
    Py_XDECREF(leaves);
    Py_XDECREF(nodes);
    PyMem_Free(stack);
    PyMem_Free(b.data);
    PyBuffer_Release(&rnd);
    return result;
}


/* -- checking stored rows ------------------------------------------------------------------ */

static int
ends_with(const char *s, Py_ssize_t n, const char *suffix, Py_ssize_t k)
{
    return k <= n && memcmp(s + n - k, suffix, k) == 0;
}

static Py_ssize_t
find(const char *s, Py_ssize_t n, Py_ssize_t from, const char *needle, Py_ssize_t k)
{
    for (Py_ssize_t i = from; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0)
            return i;
    return -1;
}

/* '"digest":"' + 64 lower-case hex + '",' : a subject's content digest, 76 bytes. */
static int
is_digest_field(const char *s)
{
    if (memcmp(s, "\"digest\":\"", 10) || memcmp(s + 74, "\",", 2))
        return 0;
    for (int i = 10; i < 74; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* mltrail.ledger.chunk.columns_match's fast path, exactly: OK when it holds, SLOW when the
 * columns must be compared by parsing the body. */
static int
columns_hold(Buf *b, const char *body, Py_ssize_t n, PyObject **cols)
{
    PyObject *seq = cols[0], *action = cols[3], *actor = cols[4], *event_id = cols[5],
             *stype = cols[6], *sid = cols[7], *ts = cols[8];
    int rc;
    if (!PyLong_CheckExact(seq))
        return SLOW;
    long long number = PyLong_AsLongLong(seq);
    if (number == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return SLOW;
    }
    /* head: {"action":A,"actor":{"id":I,"type":" */
    b->len = 0;
    if ((rc = PUT(b, "{\"action\":")) || (rc = put_string(b, action)) ||
        (rc = PUT(b, ",\"actor\":{\"id\":")) || (rc = put_string(b, actor)) ||
        (rc = PUT(b, ",\"type\":\"")))
        return rc;
    Py_ssize_t head = b->len;
    if (head > n || memcmp(body, b->data, head))
        return SLOW;
    /* mid, where the actor's type ends: "},"event_id":E,"integrity":{ */
    static const char type_end[] = "\"},\"event_id\":";
    Py_ssize_t at = find(body, n, head, type_end, sizeof type_end - 1);
    b->len = 0;
    if ((rc = PUT(b, "\"},\"event_id\":")) || (rc = put_string(b, event_id)) ||
        (rc = PUT(b, ",\"integrity\":{")))
        return rc;
    if (at < 0 || at + b->len > n || memcmp(body + at, b->data, b->len))
        return SLOW;
    /* tail: ,"seq":N,"subject":{ then "id":S,"type":T},"timestamp":TS} */
    b->len = 0;
    if ((rc = PUT(b, ",\"seq\":")) || (rc = put_int(b, number)) ||
        (rc = PUT(b, ",\"subject\":{")))
        return rc;
    Py_ssize_t lead = b->len;
    if ((rc = PUT(b, "\"id\":")) || (rc = put_string(b, sid)) || (rc = PUT(b, ",\"type\":")) ||
        (rc = put_string(b, stype)) || (rc = PUT(b, "},\"timestamp\":")) ||
        (rc = put_string(b, ts)) || (rc = PUT(b, "}")))
        return rc;
    if (ends_with(body, n, b->data, b->len))
        return OK;
    /* or a subject with content: its digest field between the lead and the rest */
    Py_ssize_t rest = b->len - lead, end = n - rest, digest_at = end - 76;
    if (ends_with(body, n, b->data + lead, rest) && digest_at > 0 &&
        is_digest_field(body + digest_at) && ends_with(body, digest_at, b->data, lead))
        return OK;
    return SLOW;
}

/* Append the int i to a list; -1 with an exception set on failure. */
static int
append_index(PyObject *list, Py_ssize_t i)
{
    PyObject *at = PyLong_FromSsize_t(i);
    int rc = at == NULL ? -1 : PyList_Append(list, at);
    Py_XDECREF(at);
    return rc;
}

static PyObject *
check_rows(PyObject *module, PyObject *rows)
{
    if (!PyList_CheckExact(rows)) {
        PyErr_SetString(PyExc_TypeError, "check_rows: rows must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(rows);
    PyObject *leaves = PyList_New(n), *bad = PyList_New(0), *suspects = PyList_New(0);
    PyObject *result = NULL;
    Buf b = {0};
    int deferred = 0;
    if (leaves == NULL || bad == NULL || suspects == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 9) {
            PyErr_SetString(PyExc_TypeError, "check_rows: each row must be a 9-tuple");
            goto done;
        }
        PyObject **cols = &PyTuple_GET_ITEM(row, 0);
        if (!PyBytes_CheckExact(cols[1]) || !PyBytes_CheckExact(cols[2])) {
            deferred = 1;
            goto done;
        }
        const char *body = PyBytes_AS_STRING(cols[2]);
        Py_ssize_t size = PyBytes_GET_SIZE(cols[2]);
        unsigned char digest[HASH], leaf[HASH];
        static const unsigned char leaf_prefix = 0x00;
        sha256(body, size, NULL, 0, NULL, 0, digest);
        sha256(&leaf_prefix, 1, digest, HASH, NULL, 0, leaf);
        PyObject *item = PyBytes_FromStringAndSize((const char *)leaf, HASH);
        if (item == NULL)
            goto done;
        PyList_SET_ITEM(leaves, i, item);
        int wrong = PyBytes_GET_SIZE(cols[1]) != HASH ||
                    memcmp(PyBytes_AS_STRING(cols[1]), digest, HASH) != 0;
        if (wrong && append_index(bad, i))
            goto done;
        int rc = columns_hold(&b, body, size, cols);
        if (rc == ERR || (rc == SLOW && append_index(suspects, i)))
            goto done;
    }
    result = PyTuple_Pack(3, leaves, bad, suspects);
done:
    if (deferred && !PyErr_Occurred())
        result = Py_NewRef(Py_None);
    Py_XDECREF(leaves);
    Py_XDECREF(bad);
    Py_XDECREF(suspects);
    PyMem_Free(b.data);
    return result;
}

static PyObject *
subtree_levels(PyObject *module, PyObject *leaves)
{
    if (!PyList_CheckExact(leaves)) {
        PyErr_SetString(PyExc_TypeError, "subtree_levels: leaves must be a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(leaves);
    PyObject *levels = PyList_New(0), *below = PySequence_List(leaves);
    static const unsigned char node_prefix = 0x01;
    if (levels == NULL || below == NULL || PyList_Append(levels, below))
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(below, i);
        if (!PyBytes_CheckExact(item) || PyBytes_GET_SIZE(item) != HASH) {
            Py_DECREF(levels);
            Py_DECREF(below);
            Py_RETURN_NONE; /* not leaf hashes: the Python path takes them as they are */
        }
    }
    while (n >= 2) {
        PyObject *level = PyList_New(n / 2);
        if (level == NULL)
            goto fail;
        for (Py_ssize_t i = 0; i < n / 2; i++) {
            unsigned char out[HASH];
            sha256(&node_prefix, 1, PyBytes_AS_STRING(PyList_GET_ITEM(below, 2 * i)), HASH,
                   PyBytes_AS_STRING(PyList_GET_ITEM(below, 2 * i + 1)), HASH, out);
            PyObject *node = PyBytes_FromStringAndSize((const char *)out, HASH);
            if (node == NULL) {
                Py_DECREF(level);
                goto fail;
            }
            PyList_SET_ITEM(level, i, node);
        }
        if (PyList_Append(levels, level)) {
            Py_DECREF(level);
            goto fail;
        }
        Py_DECREF(below);
        below = level;
        n /= 2;
    }
    Py_DECREF(below);
    return levels;
fail:
    Py_XDECREF(levels);
    Py_XDECREF(below);
    return NULL;
}

static PyMethodDef methods[] = {
    {"canonical", canonical, METH_O,
     "RFC 8785 bytes of a plain JSON value, or None if it needs the Python path."},
    {"seal_batch", seal_batch, METH_VARARGS,
     "Seal drafts into ledger rows, leaf hashes, Merkle nodes and the new frontier; None if "
     "any draft needs the Python path."},
    {"check_rows", check_rows, METH_O,
     "Leaf hashes of stored event rows, with the rows whose digest or columns need a look."},
    {"subtree_levels", subtree_levels, METH_O,
     "Every complete subtree hash of a run of leaf hashes, level by level; None if a hash is "
     "not 32 bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mltrail._native",
    "The ledger's per-event hot loops in C; see mltrail.canonical and mltrail.ledger.log.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    if (!(s_action = PyUnicode_InternFromString("action")) ||
        !(s_actor = PyUnicode_InternFromString("actor")) ||
        !(s_subject = PyUnicode_InternFromString("subject")) ||
        !(s_related = PyUnicode_InternFromString("related")) ||
        !(s_metadata = PyUnicode_InternFromString("metadata")) ||
        !(s_artifact = PyUnicode_InternFromString("artifact_sha256")) ||
        !(s_type = PyUnicode_InternFromString("type")) ||
        !(s_id = PyUnicode_InternFromString("id")) ||
        !(s_role = PyUnicode_InternFromString("role")) ||
        !(s_digest = PyUnicode_InternFromString("digest")))
        return NULL;
    return PyModule_Create(&module);
}
