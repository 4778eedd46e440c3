/*
 * One stored OTLP Span (its protobuf bytes) -> one span of the Jaeger UI's JSON, as a dict: the C
 * fast path of `tracemesh.query.trace_json`, which answers `GET /api/traces/{id}` from storage
 * without building model objects.
 *
 * Design
 * ------
 * The reference is the Python path: `otlp_proto.span_from_row`, then the standard query adjusters
 * (`query.adjusters.adjust`), then `codecs.jaeger_json.span_json`. For a span of a trace whose span
 * ids are all distinct (the caller checks that), the adjusters do only what this file does:
 *
 *   - span, event and link attributes sorted by key (a repeated key keeps its last value, as the
 *     dict `attributes_from_pb` builds does); events sorted by name, stably;
 *   - integer `ip` / `peer.ipv4` span attributes shown as dotted IPv4;
 *   - links with an all-zero trace id dropped, one warning each.
 *
 * The resource (the Jaeger process) and the scope tags are the caller's: they are shared by many
 * spans and computed once in Python. The result is the same dict, key for key and in the same
 * order, so `orjson.dumps` writes the same bytes.
 *
 * It does so only for input it fully understands. For anything else it DECLINES: it returns None
 * and the caller takes the Python path for the whole trace. Declined: a known field repeated or
 * with an unexpected wire type, ids of unexpected lengths, a `telemetry.sdk.*` / `telemetry.distro.*`
 * span attribute (the adjusters move it to the resource), a float `ip` attribute, text that is not
 * UTF-8, values nested deeper than MAX_DEPTH. Arrays, maps and non-finite floats are built as Python
 * values and handed to the Python `key_value` (registered with `setup`), which formats them.
 *
 * The input is bytes upb has accepted once (at ingest); for other bytes the result is a dict or
 * None, never a crash: every read is bounds-checked.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { FAIL = -1, OK = 0, DECLINE = 1 }; /* FAIL: a Python exception is set */

#define TRY(expr)                    \
    do {                             \
        int rc_ = (expr);            \
        if (rc_ != OK) return rc_;   \
    } while (0)

#define MAX_DEPTH 32
#define JS_MAX_SAFE_INTEGER 9007199254740991LL

static PyObject *key_value_fn; /* jaeger_json.key_value(key, value) -> dict */

/* Interned keys and constant values of the output. */
static PyObject *s_traceID, *s_spanID, *s_flags, *s_operationName, *s_references, *s_startTime,
    *s_duration, *s_tags, *s_logs, *s_processID, *s_warnings, *s_key, *s_type, *s_value,
    *s_refType, *s_timestamp, *s_fields, *s_string, *s_bool, *s_int64, *s_float64, *s_binary,
    *s_child_of, *s_follows_from, *s_event, *s_span_kind, *s_status_code, *s_error,
    *s_status_description, *s_tracestate, *s_ok, *s_error_upper, *s_empty, *s_invalid_link,
    *s_kinds[6], *one;

/* ---- protobuf wire reading ----------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Buf;

typedef struct {
    uint32_t number;
    int wire;
    uint64_t num; /* varint, fixed64 and fixed32 values */
    Buf data;     /* length-delimited values */
} Field;

static int
read_varint(Buf *b, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return DECLINE;
        uint8_t byte = *b->p++;
        if (shift == 63 && byte > 1) return DECLINE; /* more than 64 bits */
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return OK;
        }
    }
    return DECLINE;
}

static uint64_t
little_endian(const uint8_t *p, int size)
{
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* The next field of the message in `b`; DECLINE for malformed input and groups. */
static int
next_field(Buf *b, Field *f)
{
    uint64_t key;
    TRY(read_varint(b, &key));
    if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff) return DECLINE;
    f->number = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    switch (f->wire) {
    case 0:
        return read_varint(b, &f->num);
    case 1:
        if (b->end - b->p < 8) return DECLINE;
        f->num = little_endian(b->p, 8);
        b->p += 8;
        return OK;
    case 2: {
        uint64_t len;
        TRY(read_varint(b, &len));
        if (len > (uint64_t)(b->end - b->p)) return DECLINE;
        f->data.p = b->p;
        f->data.end = b->p + len;
        b->p += len;
        return OK;
    }
    case 5:
        if (b->end - b->p < 4) return DECLINE;
        f->num = little_endian(b->p, 4);
        b->p += 4;
        return OK;
    default:
        return DECLINE;
    }
}

/* ---- what upb would refuse ------------------------------------------------------------------ */

/* Strict UTF-8 as upb checks a proto3 string: no overlong forms, no surrogates, nothing past
   U+10FFFF. */
static int
utf8_ok(Buf b)
{
    const uint8_t *p = b.p;
    while (p < b.end) {
        uint8_t c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        Py_ssize_t need = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : -1;
        if (need < 0 || c > 0xF4 || b.end - p <= need) return 0;
        for (Py_ssize_t i = 1; i <= need; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] > 0x9F) return 0; /* surrogate */
        if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
        if (c == 0xF4 && p[1] > 0x8F) return 0; /* past U+10FFFF */
        p += need + 1;
    }
    return 1;
}

/* The OTLP messages a stored span holds, for `check_message`. */
enum { M_SPAN, M_EVENT, M_LINK, M_STATUS, M_KV, M_ANY, M_ARRAY, M_KVLIST, M_OTHER };
enum { F_OTHER, F_STRING, F_MESSAGE };

/* What field `number` of message `m` is; for a message field, its type in `*child`. */
static int
field_kind(int m, uint32_t number, int *child)
{
    switch (m) {
    case M_SPAN:
        if (number == 3 || number == 5) return F_STRING;
        *child = number == 9 ? M_KV : number == 11 ? M_EVENT : number == 13 ? M_LINK
               : number == 15 ? M_STATUS : M_OTHER;
        return *child == M_OTHER ? F_OTHER : F_MESSAGE;
    case M_EVENT:
        if (number == 2) return F_STRING;
        *child = M_KV;
        return number == 3 ? F_MESSAGE : F_OTHER;
    case M_LINK:
        if (number == 3) return F_STRING;
        *child = M_KV;
        return number == 4 ? F_MESSAGE : F_OTHER;
    case M_STATUS:
        return number == 2 ? F_STRING : F_OTHER;
    case M_KV:
        if (number == 1) return F_STRING;
        *child = M_ANY;
        return number == 2 ? F_MESSAGE : F_OTHER;
    case M_ANY:
        if (number == 1) return F_STRING;
        *child = number == 5 ? M_ARRAY : M_KVLIST;
        return number == 5 || number == 6 ? F_MESSAGE : F_OTHER;
    case M_ARRAY:
        *child = M_ANY;
        return number == 1 ? F_MESSAGE : F_OTHER;
    case M_KVLIST:
        *child = M_KV;
        return number == 1 ? F_MESSAGE : F_OTHER;
    default:
        return F_OTHER;
    }
}

/* DECLINE unless the protobuf parser would accept `b` as message `m` whole: framing at every
   depth, UTF-8 of every string (also in the parts this file does not show, such as a link's
   trace state), the known message and string fields with their wire type. Rendering reads
   only some fields; without this, bytes the parser refuses could render. */
static int
check_message(Buf b, int m, int depth)
{
    if (depth > MAX_DEPTH) return DECLINE;
    while (b.p < b.end) {
        Field f;
        TRY(next_field(&b, &f));
        int child = M_OTHER, kind = field_kind(m, f.number, &child);
        if (kind == F_OTHER) continue;
        if (f.wire != 2) return DECLINE;
        if (kind == F_STRING && !utf8_ok(f.data)) return DECLINE;
        if (kind == F_MESSAGE) TRY(check_message(f.data, child, depth + 1));
    }
    return OK;
}

/* A singular field seen once, with the wire type it must have. */
static int
once(uint32_t *seen, int bit, const Field *f, int wire)
{
    if ((*seen >> bit) & 1 || f->wire != wire) return DECLINE;
    *seen |= 1u << bit;
    return OK;
}

static Py_ssize_t
buf_len(Buf b)
{
    return (Py_ssize_t)(b.end - b.p);
}

static int
buf_eq(Buf b, const char *text, Py_ssize_t len)
{
    return buf_len(b) == len && memcmp(b.p, text, (size_t)len) == 0;
}

#define BUF_EQ(b, literal) buf_eq((b), literal, (Py_ssize_t)sizeof(literal) - 1)

/* Code point order, which is what Python's str comparison uses, is UTF-8 byte order. */
static int
buf_cmp(Buf a, Buf b)
{
    Py_ssize_t la = buf_len(a), lb = buf_len(b);
    int c = memcmp(a.p, b.p, (size_t)(la < lb ? la : lb));
    if (c) return c;
    return (la > lb) - (la < lb);
}

/* Growable array of byte ranges (repeated fields), inline while small. */
typedef struct {
    Buf *items;
    Py_ssize_t len, cap;
    Buf small[16];
} Bufs;

static void
bufs_init(Bufs *v)
{
    v->items = v->small;
    v->len = 0;
    v->cap = 16;
}

static int
bufs_push(Bufs *v, Buf b)
{
    if (v->len == v->cap) {
        Py_ssize_t cap = v->cap * 2;
        Buf *items = PyMem_Malloc((size_t)cap * sizeof(Buf));
        if (items == NULL) {
            PyErr_NoMemory();
            return FAIL;
        }
        memcpy(items, v->items, (size_t)v->len * sizeof(Buf));
        if (v->items != v->small) PyMem_Free(v->items);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = b;
    return OK;
}

static void
bufs_free(Bufs *v)
{
    if (v->items != v->small) PyMem_Free(v->items);
}

/* ---- Python values --------------------------------------------------------------------------- */

static PyObject *
text(Buf b) /* NULL with UnicodeDecodeError or MemoryError set */
{
    return PyUnicode_DecodeUTF8((const char *)b.p, buf_len(b), NULL);
}

/* NULL: a failure (rc FAIL, exception set) or text that is not UTF-8 (rc DECLINE, cleared). */
static int
text_rc(void)
{
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return DECLINE;
    }
    return FAIL;
}

static const char HEX[] = "0123456789abcdef";

static PyObject *
hex_of(const uint8_t *p, Py_ssize_t len)
{
    PyObject *out = PyUnicode_New(len * 2, 127);
    if (out == NULL) return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = 0; i < len; i++) {
        d[2 * i] = (Py_UCS1)HEX[p[i] >> 4];
        d[2 * i + 1] = (Py_UCS1)HEX[p[i] & 15];
    }
    return out;
}

/* `jaeger_json._trace_hex`: the last 16 bytes, zero-padded on the left; 16 digits when the high
   half is zero. */
static PyObject *
trace_hex(Buf id)
{
    uint8_t full[16] = {0};
    Py_ssize_t len = buf_len(id);
    if (len >= 16)
        memcpy(full, id.end - 16, 16);
    else if (len > 0)
        memcpy(full + 16 - len, id.p, (size_t)len);
    static const uint8_t zero[8] = {0};
    if (memcmp(full, zero, 8) == 0) return hex_of(full + 8, 8);
    return hex_of(full, 16);
}

static PyObject *
base64_of(Buf b)
{
    static const char ALPHABET[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Py_ssize_t len = buf_len(b);
    PyObject *out = PyUnicode_New((len + 2) / 3 * 4, 127);
    if (out == NULL) return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(out);
    const uint8_t *p = b.p;
    Py_ssize_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        *d++ = (Py_UCS1)ALPHABET[v >> 18];
        *d++ = (Py_UCS1)ALPHABET[(v >> 12) & 63];
        *d++ = (Py_UCS1)ALPHABET[(v >> 6) & 63];
        *d++ = (Py_UCS1)ALPHABET[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) v |= (uint32_t)p[i + 1] << 8;
        *d++ = (Py_UCS1)ALPHABET[v >> 18];
        *d++ = (Py_UCS1)ALPHABET[(v >> 12) & 63];
        *d++ = i + 1 < len ? (Py_UCS1)ALPHABET[(v >> 6) & 63] : '=';
        *d++ = '=';
    }
    return out;
}

/* Sets `dict[key] = value` and releases `value`; FAIL when `value` is NULL or on error. */
static int
put(PyObject *dict, PyObject *key, PyObject *value)
{
    if (value == NULL) return FAIL;
    int rc = PyDict_SetItem(dict, key, value);
    Py_DECREF(value);
    return rc < 0 ? FAIL : OK;
}

static int
append(PyObject *list, PyObject *item)
{
    if (item == NULL) return FAIL;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc < 0 ? FAIL : OK;
}

/* {"key": key, "type": type, "value": value}; steals `value`. */
static PyObject *
tag(PyObject *key, PyObject *type, PyObject *value)
{
    if (value == NULL) return NULL;
    PyObject *out = PyDict_New();
    if (out == NULL || PyDict_SetItem(out, s_key, key) < 0 ||
        PyDict_SetItem(out, s_type, type) < 0 || PyDict_SetItem(out, s_value, value) < 0) {
        Py_XDECREF(out);
        out = NULL;
    }
    Py_DECREF(value);
    return out;
}

/* ---- AnyValue ------------------------------------------------------------------------------- */

/* Which of AnyValue's oneof fields is set (0: none), and its field. */
typedef struct {
    uint32_t which;
    Field field;
} Any;

static const int ANY_WIRE[8] = {-1, 2, 0, 0, 1, 2, 2, 2}; /* string bool int double array kv bytes */

static int
read_any(Buf b, Any *out)
{
    out->which = 0;
    while (b.p < b.end) {
        Field f;
        TRY(next_field(&b, &f));
        if (f.number > 7) continue; /* unknown: ignored, as upb does */
        if (out->which != 0 || f.wire != ANY_WIRE[f.number]) return DECLINE;
        out->which = f.number;
        out->field = f;
    }
    return OK;
}

static int read_key_value(Buf b, Buf *key, Buf *value, int *has_value);
static int kvlist_py(Buf b, int depth, PyObject **out);

/* `otlp_proto.value_from_pb`: the AnyValue as a Python value. */
static int
any_py(Buf b, int depth, PyObject **out)
{
    if (depth > MAX_DEPTH) return DECLINE;
    Any any;
    TRY(read_any(b, &any));
    Field *f = &any.field;
    switch (any.which) {
    case 0:
        *out = Py_NewRef(Py_None);
        return OK;
    case 1:
        *out = text(f->data);
        return *out ? OK : text_rc();
    case 2:
        *out = PyBool_FromLong(f->num != 0);
        return OK;
    case 3:
        *out = PyLong_FromLongLong((long long)f->num);
        return *out ? OK : FAIL;
    case 4: {
        double d;
        memcpy(&d, &f->num, sizeof d);
        *out = PyFloat_FromDouble(d);
        return *out ? OK : FAIL;
    }
    case 5: {
        PyObject *list = PyList_New(0);
        if (list == NULL) return FAIL;
        Buf items = f->data;
        while (items.p < items.end) {
            Field item;
            PyObject *value = NULL;
            int rc = next_field(&items, &item);
            if (rc == OK && item.number != 1) continue;
            if (rc == OK && item.wire != 2) rc = DECLINE;
            if (rc == OK) rc = any_py(item.data, depth + 1, &value);
            if (rc == OK) rc = append(list, value);
            if (rc != OK) {
                Py_DECREF(list);
                return rc;
            }
        }
        *out = list;
        return OK;
    }
    case 6:
        return kvlist_py(f->data, depth + 1, out);
    default: /* 7 */
        *out = PyBytes_FromStringAndSize((const char *)f->data.p, buf_len(f->data));
        return *out ? OK : FAIL;
    }
}

/* `otlp_proto.attributes_from_pb` of a KeyValueList: a dict, a repeated key keeping its last
   value at its first position. */
static int
kvlist_py(Buf b, int depth, PyObject **out)
{
    if (depth > MAX_DEPTH) return DECLINE;
    PyObject *dict = PyDict_New();
    if (dict == NULL) return FAIL;
    while (b.p < b.end) {
        Field f;
        Buf key, value;
        int has_value, rc = next_field(&b, &f);
        if (rc == OK && f.number != 1) continue;
        if (rc == OK && f.wire != 2) rc = DECLINE;
        if (rc == OK) rc = read_key_value(f.data, &key, &value, &has_value);
        PyObject *k = NULL, *v = NULL;
        if (rc == OK) {
            k = text(key);
            if (k == NULL) rc = text_rc();
        }
        if (rc == OK) rc = any_py(value, depth + 1, &v); /* absent: empty, None */
        if (rc == OK && PyDict_SetItem(dict, k, v) < 0) rc = FAIL;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc != OK) {
            Py_DECREF(dict);
            return rc;
        }
    }
    *out = dict;
    return OK;
}

/* ---- attributes -------------------------------------------------------------------------------- */

typedef struct {
    Buf key, value;
    int has_value;
    Py_ssize_t index;
} KV;

static int
read_key_value(Buf b, Buf *key, Buf *value, int *has_value)
{
    uint32_t seen = 0;
    key->p = key->end = value->p = value->end = b.p;
    *has_value = 0;
    while (b.p < b.end) {
        Field f;
        TRY(next_field(&b, &f));
        if (f.number == 1) {
            TRY(once(&seen, 1, &f, 2));
            *key = f.data;
        } else if (f.number == 2) {
            TRY(once(&seen, 2, &f, 2));
            *value = f.data;
            *has_value = 1;
        }
    }
    return OK;
}

static int
cmp_kv(const void *x, const void *y)
{
    const KV *a = x, *b = y;
    int c = buf_cmp(a->key, b->key);
    if (c) return c;
    return (a->index > b->index) - (a->index < b->index);
}

/* The KeyValues sorted by key, stably, each repeated key reduced to its last occurrence:
   `dict(sorted(attributes_from_pb(...).items()))`. `*out` must be freed with PyMem_Free. */
static int
sorted_attributes(const Bufs *pairs, KV **out, Py_ssize_t *count)
{
    Py_ssize_t n = pairs->len;
    KV *kvs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(KV));
    if (kvs == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        kvs[i].index = i;
        int rc = read_key_value(pairs->items[i], &kvs[i].key, &kvs[i].value, &kvs[i].has_value);
        if (rc != OK) {
            PyMem_Free(kvs);
            return rc;
        }
    }
    qsort(kvs, (size_t)n, sizeof(KV), cmp_kv);
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + 1 < n && buf_cmp(kvs[i].key, kvs[i + 1].key) == 0) continue;
        kvs[kept++] = kvs[i];
    }
    *out = kvs;
    *count = kept;
    return OK;
}

static int
is_library_key(Buf key)
{
    return BUF_EQ(key, "telemetry.sdk.language") || BUF_EQ(key, "telemetry.sdk.name") ||
           BUF_EQ(key, "telemetry.sdk.version") || BUF_EQ(key, "telemetry.distro.name") ||
           BUF_EQ(key, "telemetry.distro.version");
}

/* `jaeger_json.key_value` of one attribute; `ip_key`: an integer value becomes dotted IPv4
   (`adjusters.normalize_ip_attributes`). */
static int
attribute_tag(const KV *kv, int ip_key, PyObject **out)
{
    Any any = {0};
    if (kv->has_value) TRY(read_any(kv->value, &any));
    PyObject *key = text(kv->key);
    if (key == NULL) return text_rc();
    Field *f = &any.field;
    double d = 0;
    if (any.which == 4) memcpy(&d, &f->num, sizeof d);
    if (ip_key && (any.which == 3 || any.which == 4)) {
        if (any.which == 4) { /* Python truncates big floats exactly; rare enough to leave it */
            Py_DECREF(key);
            return DECLINE;
        }
        uint32_t v = (uint32_t)f->num;
        *out = tag(key, s_string, PyUnicode_FromFormat("%u.%u.%u.%u", v >> 24, (v >> 16) & 255,
                                                       (v >> 8) & 255, v & 255));
        Py_DECREF(key);
        return *out ? OK : FAIL;
    }
    int rc = OK;
    switch (any.which) {
    case 0:
        *out = tag(key, s_string, Py_NewRef(s_empty));
        break;
    case 1: {
        PyObject *value = text(f->data);
        if (value == NULL) rc = text_rc();
        *out = value ? tag(key, s_string, value) : NULL;
        break;
    }
    case 2:
        *out = tag(key, s_bool, PyBool_FromLong(f->num != 0));
        break;
    case 3: {
        long long v = (long long)f->num;
        PyObject *value = (v >= -JS_MAX_SAFE_INTEGER && v <= JS_MAX_SAFE_INTEGER)
                              ? PyLong_FromLongLong(v)
                              : PyUnicode_FromFormat("%lld", v);
        *out = tag(key, s_int64, value);
        break;
    }
    case 7:
        *out = tag(key, s_binary, base64_of(f->data));
        break;
    default:
        if (any.which == 4 && isfinite(d)) {
            *out = tag(key, s_float64, PyFloat_FromDouble(d));
            break;
        }
        /* arrays, maps, NaN and infinities: the Python formatter's job */
        PyObject *value = NULL;
        rc = any_py(kv->value, 0, &value);
        *out = rc == OK ? PyObject_CallFunctionObjArgs(key_value_fn, key, value, NULL) : NULL;
        Py_XDECREF(value);
        if (rc == OK && *out != NULL && !PyDict_Check(*out)) {
            Py_CLEAR(*out);
            PyErr_SetString(PyExc_TypeError, "key_value must return a dict");
        }
    }
    Py_DECREF(key);
    if (rc != OK) return rc;
    return *out ? OK : FAIL;
}

/* Appends the sorted attributes' tags to `list`. `span_level`: ip keys are normalized and library
   keys declined. `event_key`: set when a key is `event`. */
static int
append_attribute_tags(PyObject *list, const Bufs *pairs, int span_level, int *event_key)
{
    KV *kvs;
    Py_ssize_t n;
    TRY(sorted_attributes(pairs, &kvs, &n));
    int rc = OK;
    for (Py_ssize_t i = 0; rc == OK && i < n; i++) {
        Buf key = kvs[i].key;
        int ip_key = span_level && (BUF_EQ(key, "ip") || BUF_EQ(key, "peer.ipv4"));
        if (span_level && is_library_key(key)) rc = DECLINE;
        /* ingest warnings (model/span_warnings.py) become the span's `warnings`: Python does it */
        if (span_level && BUF_EQ(key, "@jaeger@warnings")) rc = DECLINE;
        if (event_key && BUF_EQ(key, "event")) *event_key = 1;
        PyObject *item = NULL;
        if (rc == OK) rc = attribute_tag(&kvs[i], ip_key, &item);
        if (rc == OK) rc = append(list, item);
    }
    PyMem_Free(kvs);
    return rc;
}

/* The tags of one event's attributes, after its name as `event` unless a key is `event`. */
static int
attribute_tags_after_name(PyObject *list, const Bufs *pairs, Buf name)
{
    int event_key = 0;
    TRY(append_attribute_tags(list, pairs, 0, &event_key));
    if (buf_len(name) == 0 || event_key) return OK;
    PyObject *value = text(name);
    if (value == NULL) return text_rc();
    PyObject *item = tag(s_event, s_string, value);
    if (item == NULL || PyList_Insert(list, 0, item) < 0) {
        Py_XDECREF(item);
        return FAIL;
    }
    Py_DECREF(item);
    return OK;
}

/* ---- events and links ---------------------------------------------------------------------- */

typedef struct {
    Buf name;
    uint64_t time;
    Bufs attributes;
    Py_ssize_t index;
} EventView;

static int
read_event(Buf b, EventView *e)
{
    uint32_t seen = 0;
    e->name.p = e->name.end = b.p;
    e->time = 0;
    while (b.p < b.end) {
        Field f;
        TRY(next_field(&b, &f));
        if (f.number == 1) {
            TRY(once(&seen, 1, &f, 1));
            e->time = f.num;
        } else if (f.number == 2) {
            TRY(once(&seen, 2, &f, 2));
            e->name = f.data;
        } else if (f.number == 3) {
            if (f.wire != 2) return DECLINE;
            TRY(bufs_push(&e->attributes, f.data));
        }
    }
    return OK;
}

static int
cmp_event(const void *x, const void *y)
{
    const EventView *a = *(EventView *const *)x, *b = *(EventView *const *)y;
    int c = buf_cmp(a->name, b->name);
    if (c) return c;
    return (a->index > b->index) - (a->index < b->index);
}

/* `jaeger_json.log_json` of every event, sorted by name (stably). */
static int
logs_json(const Bufs *events, PyObject *logs)
{
    Py_ssize_t n = events->len;
    /* Sorted through pointers: a view holds a pointer into itself (its inline Bufs). */
    EventView *views = PyMem_Calloc((size_t)(n ? n : 1), sizeof(EventView));
    EventView **order = PyMem_Calloc((size_t)(n ? n : 1), sizeof(EventView *));
    if (views == NULL || order == NULL) {
        PyMem_Free(views);
        PyMem_Free(order);
        PyErr_NoMemory();
        return FAIL;
    }
    int rc = OK;
    Py_ssize_t ready = 0;
    for (; rc == OK && ready < n; ready++) {
        bufs_init(&views[ready].attributes);
        views[ready].index = ready;
        order[ready] = &views[ready];
        rc = read_event(events->items[ready], &views[ready]);
    }
    if (rc == OK) qsort(order, (size_t)n, sizeof(EventView *), cmp_event);
    for (Py_ssize_t i = 0; rc == OK && i < n; i++) {
        EventView *e = order[i];
        PyObject *log = PyDict_New(), *fields = PyList_New(0);
        if (log == NULL || fields == NULL) rc = FAIL;
        if (rc == OK) rc = attribute_tags_after_name(fields, &e->attributes, e->name);
        if (rc == OK) rc = put(log, s_timestamp, PyLong_FromUnsignedLongLong(e->time / 1000));
        if (rc == OK && PyDict_SetItem(log, s_fields, fields) < 0) rc = FAIL;
        Py_XDECREF(fields);
        if (rc == OK) rc = append(logs, log);
        else Py_XDECREF(log);
    }
    for (Py_ssize_t i = 0; i < ready; i++) bufs_free(&views[i].attributes);
    PyMem_Free(views);
    PyMem_Free(order);
    return rc;
}

/* A link's trace id, span id and whether its `opentracing.ref_type` is `child_of` (the last
   occurrence of the key decides, as in a dict). */
static int
read_link(Buf b, Buf *trace_id, Buf *span_id, int *child_of)
{
    uint32_t seen = 0;
    trace_id->p = trace_id->end = span_id->p = span_id->end = b.p;
    *child_of = 0;
    while (b.p < b.end) {
        Field f;
        TRY(next_field(&b, &f));
        if (f.number == 1) {
            TRY(once(&seen, 1, &f, 2));
            *trace_id = f.data;
        } else if (f.number == 2) {
            TRY(once(&seen, 2, &f, 2));
            *span_id = f.data;
        } else if (f.number == 4) {
            if (f.wire != 2) return DECLINE;
            Buf key, value;
            int has_value;
            TRY(read_key_value(f.data, &key, &value, &has_value));
            if (!BUF_EQ(key, "opentracing.ref_type")) continue;
            Any any = {0};
            if (has_value) TRY(read_any(value, &any));
            *child_of = any.which == 1 && BUF_EQ(any.field.data, "child_of");
        }
    }
    return OK;
}

static PyObject *
reference(PyObject *ref_type, PyObject *trace_id_hex, PyObject *span_id_hex)
{
    PyObject *out = PyDict_New();
    if (out == NULL || PyDict_SetItem(out, s_refType, ref_type) < 0 ||
        put(out, s_traceID, trace_id_hex) != OK || put(out, s_spanID, span_id_hex) != OK) {
        Py_XDECREF(out);
        return NULL;
    }
    return out;
}

static int
is_zero(Buf b)
{
    for (const uint8_t *p = b.p; p < b.end; p++)
        if (*p) return 0;
    return 1;
}

/* `jaeger_json.span_references` after `adjusters.remove_empty_links`; counts the dropped links. */
static int
references_json(Buf trace_id, Buf parent, const Bufs *links, PyObject *refs, int *dropped)
{
    if (buf_len(parent)) {
        PyObject *ref = reference(s_child_of, trace_hex(trace_id), hex_of(parent.p, 8));
        TRY(append(refs, ref));
    }
    for (Py_ssize_t i = 0; i < links->len; i++) {
        Buf link_trace, link_span;
        int child_of;
        TRY(read_link(links->items[i], &link_trace, &link_span, &child_of));
        if (is_zero(link_trace)) { /* empty or all zeros */
            (*dropped)++;
            continue;
        }
        PyObject *type = child_of ? s_child_of : s_follows_from;
        if (buf_len(parent) && buf_cmp(link_trace, trace_id) == 0 &&
            buf_cmp(link_span, parent) == 0) {
            if (PyDict_SetItem(PyList_GET_ITEM(refs, 0), s_refType, type) < 0) return FAIL;
            continue;
        }
        TRY(append(refs, reference(type, trace_hex(link_trace),
                                   hex_of(link_span.p, buf_len(link_span)))));
    }
    return OK;
}

/* ---- the span ---------------------------------------------------------------------------------- */

typedef struct {
    Buf trace_id, span_id, parent, name, trace_state, status_message;
    uint64_t start, end;
    uint32_t flags;
    int32_t kind, status_code;
    Bufs attributes, events, links;
} SpanView;

static int
read_status(Buf b, SpanView *s)
{
    uint32_t seen = 0;
    while (b.p < b.end) {
        Field f;
        TRY(next_field(&b, &f));
        if (f.number == 2) {
            TRY(once(&seen, 2, &f, 2));
            s->status_message = f.data;
        } else if (f.number == 3) {
            TRY(once(&seen, 3, &f, 0));
            s->status_code = (int32_t)f.num;
        }
    }
    return OK;
}

static int
read_span(Buf b, SpanView *s)
{
    uint32_t seen = 0;
    while (b.p < b.end) {
        Field f;
        TRY(next_field(&b, &f));
        switch (f.number) {
        case 1: TRY(once(&seen, 1, &f, 2)); s->trace_id = f.data; break;
        case 2: TRY(once(&seen, 2, &f, 2)); s->span_id = f.data; break;
        case 3: TRY(once(&seen, 3, &f, 2)); s->trace_state = f.data; break;
        case 4: TRY(once(&seen, 4, &f, 2)); s->parent = f.data; break;
        case 5: TRY(once(&seen, 5, &f, 2)); s->name = f.data; break;
        case 6: TRY(once(&seen, 6, &f, 0)); s->kind = (int32_t)f.num; break;
        case 7: TRY(once(&seen, 7, &f, 1)); s->start = f.num; break;
        case 8: TRY(once(&seen, 8, &f, 1)); s->end = f.num; break;
        case 9:
            if (f.wire != 2) return DECLINE;
            TRY(bufs_push(&s->attributes, f.data));
            break;
        case 11:
            if (f.wire != 2) return DECLINE;
            TRY(bufs_push(&s->events, f.data));
            break;
        case 13:
            if (f.wire != 2) return DECLINE;
            TRY(bufs_push(&s->links, f.data));
            break;
        case 15: TRY(once(&seen, 15, &f, 2)); TRY(read_status(f.data, s)); break;
        case 16: TRY(once(&seen, 16, &f, 5)); s->flags = (uint32_t)f.num; break;
        default: break; /* dropped counts and unknown fields: not shown */
        }
    }
    if (buf_len(s->trace_id) != 16 || buf_len(s->span_id) != 8) return DECLINE;
    if (buf_len(s->parent) == 8 && is_zero(s->parent)) s->parent.end = s->parent.p;
    if (buf_len(s->parent) != 0 && buf_len(s->parent) != 8) return DECLINE;
    return OK;
}

/* `jaeger_json.span_tags`: scope tags (the caller's), attributes, kind, status, trace state. */
static int
tags_json(const SpanView *s, PyObject *head, PyObject *tags)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(head); i++)
        TRY(append(tags, PyDict_Copy(PyTuple_GET_ITEM(head, i))));
    TRY(append_attribute_tags(tags, &s->attributes, 1, NULL));
    int32_t kind = s->kind >= 0 && s->kind <= 5 ? s->kind : 0;
    if (kind) TRY(append(tags, tag(s_span_kind, s_string, Py_NewRef(s_kinds[kind]))));
    int32_t code = s->status_code >= 0 && s->status_code <= 2 ? s->status_code : 0;
    if (code) {
        PyObject *name = code == 1 ? s_ok : s_error_upper;
        TRY(append(tags, tag(s_status_code, s_string, Py_NewRef(name))));
    }
    if (code == 2) TRY(append(tags, tag(s_error, s_bool, Py_NewRef(Py_True))));
    if (buf_len(s->status_message)) {
        PyObject *value = text(s->status_message);
        if (value == NULL) return text_rc();
        TRY(append(tags, tag(s_status_description, s_string, value)));
    }
    if (buf_len(s->trace_state)) {
        PyObject *value = text(s->trace_state);
        if (value == NULL) return text_rc();
        TRY(append(tags, tag(s_tracestate, s_string, value)));
    }
    return OK;
}

static int
span_dict(Buf raw, PyObject *process_id, PyObject *head, PyObject *out)
{
    SpanView s;
    memset(&s, 0, sizeof s);
    s.trace_id.p = s.trace_id.end = s.span_id.p = s.span_id.end = s.parent.p = s.parent.end =
        s.name.p = s.name.end = s.trace_state.p = s.trace_state.end = s.status_message.p =
            s.status_message.end = raw.p;
    bufs_init(&s.attributes);
    bufs_init(&s.events);
    bufs_init(&s.links);
    int dropped = 0, rc = check_message(raw, M_SPAN, 0);
    if (rc == OK) rc = read_span(raw, &s);
    PyObject *name = NULL, *refs = NULL, *tags = NULL, *logs = NULL;
    if (rc == OK) rc = put(out, s_traceID, trace_hex(s.trace_id));
    if (rc == OK) rc = put(out, s_spanID, hex_of(s.span_id.p, 8));
    if (rc == OK && (s.flags & 1) && PyDict_SetItem(out, s_flags, one) < 0) rc = FAIL;
    if (rc == OK && (name = text(s.name)) == NULL) rc = text_rc();
    if (rc == OK && PyDict_SetItem(out, s_operationName, name) < 0) rc = FAIL;
    if (rc == OK && (refs = PyList_New(0)) == NULL) rc = FAIL;
    if (rc == OK) rc = references_json(s.trace_id, s.parent, &s.links, refs, &dropped);
    if (rc == OK && PyDict_SetItem(out, s_references, refs) < 0) rc = FAIL;
    if (rc == OK) rc = put(out, s_startTime, PyLong_FromUnsignedLongLong(s.start / 1000));
    if (rc == OK) {
        uint64_t duration = s.end > s.start ? (s.end - s.start) / 1000 : 0;
        rc = put(out, s_duration, PyLong_FromUnsignedLongLong(duration));
    }
    if (rc == OK && (tags = PyList_New(0)) == NULL) rc = FAIL;
    if (rc == OK) rc = tags_json(&s, head, tags);
    if (rc == OK && PyDict_SetItem(out, s_tags, tags) < 0) rc = FAIL;
    if (rc == OK && (logs = PyList_New(0)) == NULL) rc = FAIL;
    if (rc == OK) rc = logs_json(&s.events, logs);
    if (rc == OK && PyDict_SetItem(out, s_logs, logs) < 0) rc = FAIL;
    if (rc == OK && PyDict_SetItem(out, s_processID, process_id) < 0) rc = FAIL;
    if (rc == OK) {
        PyObject *warnings = Py_NewRef(Py_None);
        if (dropped) {
            Py_DECREF(warnings);
            warnings = PyList_New(dropped);
            for (int i = 0; warnings && i < dropped; i++)
                PyList_SET_ITEM(warnings, i, Py_NewRef(s_invalid_link));
        }
        rc = put(out, s_warnings, warnings);
    }
    Py_XDECREF(name);
    Py_XDECREF(refs);
    Py_XDECREF(tags);
    Py_XDECREF(logs);
    bufs_free(&s.attributes);
    bufs_free(&s.events);
    bufs_free(&s.links);
    return rc;
}

/* ---- entry points ------------------------------------------------------------------------------ */

PyDoc_STRVAR(span_json_doc,
"span_json(raw, process_id, head_tags, /)\n--\n\n"
"The Jaeger JSON dict of one stored OTLP span (bytes) of a trace whose span ids are distinct,\n"
"adjusted as the standard query adjusters would; `head_tags` (a tuple of tag dicts, copied) come\n"
"first in its tags. None when the span needs the Python path.");

static PyObject *
span_json(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyUnicode_Check(args[1]) ||
        !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "span_json(bytes, str, tuple)");
        return NULL;
    }
    if (key_value_fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call setup(key_value) first");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args[2]); i++) {
        if (!PyDict_Check(PyTuple_GET_ITEM(args[2], i))) {
            PyErr_SetString(PyExc_TypeError, "head_tags must hold dicts");
            return NULL;
        }
    }
    const uint8_t *data = (const uint8_t *)PyBytes_AS_STRING(args[0]);
    Buf raw = {data, data + PyBytes_GET_SIZE(args[0])};
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    int rc = span_dict(raw, args[1], args[2], out);
    if (rc == OK) return out;
    Py_DECREF(out);
    return rc == DECLINE ? Py_NewRef(Py_None) : NULL;
}

static PyObject *
setup(PyObject *self, PyObject *key_value)
{
    (void)self;
    if (!PyCallable_Check(key_value)) {
        PyErr_SetString(PyExc_TypeError, "setup(key_value): a callable");
        return NULL;
    }
    Py_XSETREF(key_value_fn, Py_NewRef(key_value));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"span_json", (PyCFunction)(void (*)(void))span_json, METH_FASTCALL, span_json_doc},
    {"setup", setup, METH_O, "setup(key_value): the formatter of arrays, maps and NaN."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tracemesh.accel._jaeger_span",
    "C fast path for stored OTLP spans -> Jaeger UI JSON (see tracemesh.query.trace_json).", -1,
    methods, NULL, NULL, NULL, NULL,
};

static int
intern(PyObject **slot, const char *value)
{
    if (*slot == NULL) *slot = PyUnicode_InternFromString(value);
    return *slot ? 0 : -1;
}

PyMODINIT_FUNC
PyInit__jaeger_span(void)
{
    static const char *kinds[6] = {"", "internal", "server", "client", "producer", "consumer"};
    struct {
        PyObject **slot;
        const char *value;
    } names[] = {
        {&s_traceID, "traceID"}, {&s_spanID, "spanID"}, {&s_flags, "flags"},
        {&s_operationName, "operationName"}, {&s_references, "references"},
        {&s_startTime, "startTime"}, {&s_duration, "duration"}, {&s_tags, "tags"},
        {&s_logs, "logs"}, {&s_processID, "processID"}, {&s_warnings, "warnings"},
        {&s_key, "key"}, {&s_type, "type"}, {&s_value, "value"}, {&s_refType, "refType"},
        {&s_timestamp, "timestamp"}, {&s_fields, "fields"}, {&s_string, "string"},
        {&s_bool, "bool"}, {&s_int64, "int64"}, {&s_float64, "float64"}, {&s_binary, "binary"},
        {&s_child_of, "CHILD_OF"}, {&s_follows_from, "FOLLOWS_FROM"}, {&s_event, "event"},
        {&s_span_kind, "span.kind"}, {&s_status_code, "otel.status_code"}, {&s_error, "error"},
        {&s_status_description, "otel.status_description"}, {&s_tracestate, "w3c.tracestate"},
        {&s_ok, "OK"}, {&s_error_upper, "ERROR"}, {&s_empty, ""},
        {&s_invalid_link, "Invalid span link removed"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (intern(names[i].slot, names[i].value) < 0) return NULL;
    for (int i = 0; i < 6; i++)
        if (intern(&s_kinds[i], kinds[i]) < 0) return NULL;
    if (one == NULL && (one = PyLong_FromLong(1)) == NULL) return NULL;
    return PyModule_Create(&module);
}
