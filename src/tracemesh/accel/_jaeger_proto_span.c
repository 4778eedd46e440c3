/*
 * One stored OTLP Span (its protobuf bytes) -> one Jaeger api_v2 `Span` message (its protobuf
 * bytes), wire to wire: the C fast path of Kafka's `protobuf` encoding
 * (`tracemesh.codecs.kafka_spans`), one span per message.
 *
 * The reference is the Python path: `otlp_proto.span_from_row`, then `jaeger_proto.span_to_pb`
 * with the group's process, then `SerializeToString()`. This file writes the same bytes: fields in
 * number order, proto3 defaults (empty strings, zero numbers, false) left out, the timestamp and
 * duration messages always present. The caller passes what is shared by a group, already encoded:
 * the scope tags (`otel.scope.name` / `version` KeyValue fields) and the process field.
 *
 * It DECLINES (returns None; the caller takes the Python path for that span) on anything it does
 * not fully mirror: array or map values, a repeated attribute key, ids of unexpected lengths, an
 * end before the start, a non-finite or negative-zero double, unknown wire types. Every read is
 * bounds-checked, so other bytes give bytes or None, never a crash.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

enum { OK = 0, DECLINE = 1, NOMEM = -1 };

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Buf;

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Out;

/* ---- output -------------------------------------------------------------------------------- */

static int
out_reserve(Out *o, size_t more)
{
    if (o->len + more <= o->cap) return OK;
    size_t cap = o->cap ? o->cap : 256;
    while (cap < o->len + more) cap *= 2;
    uint8_t *data = PyMem_Realloc(o->data, cap);
    if (!data) return NOMEM;
    o->data = data;
    o->cap = cap;
    return OK;
}

static int
out_bytes(Out *o, const void *src, size_t n)
{
    if (out_reserve(o, n) != OK) return NOMEM;
    memcpy(o->data + o->len, src, n);
    o->len += n;
    return OK;
}

static int
out_varint(Out *o, uint64_t v)
{
    if (out_reserve(o, 10) != OK) return NOMEM;
    while (v > 0x7F) {
        o->data[o->len++] = (uint8_t)((v & 0x7F) | 0x80);
        v >>= 7;
    }
    o->data[o->len++] = (uint8_t)v;
    return OK;
}

static size_t
varint_size(uint64_t v)
{
    size_t n = 1;
    while (v > 0x7F) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A length-delimited field whose body is o->data[start:]: insert the tag and length before it. */
static int
out_close(Out *o, uint32_t field, size_t start)
{
    size_t body = o->len - start;
    size_t head = varint_size((uint64_t)field << 3 | 2) + varint_size(body);
    if (out_reserve(o, head) != OK) return NOMEM;
    memmove(o->data + start + head, o->data + start, body);
    size_t end = o->len + head;
    o->len = start;
    out_varint(o, (uint64_t)field << 3 | 2);
    out_varint(o, body);
    o->len = end;
    return OK;
}

static int
out_field_bytes(Out *o, uint32_t field, const uint8_t *p, size_t n)
{
    if (out_varint(o, (uint64_t)field << 3 | 2) != OK || out_varint(o, n) != OK) return NOMEM;
    return out_bytes(o, p, n);
}

#define TRY(expr)                  \
    do {                           \
        int rc_ = (expr);          \
        if (rc_ != OK) return rc_; \
    } while (0)

/* ---- input --------------------------------------------------------------------------------- */

static int
read_varint(Buf *b, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end) return DECLINE;
        uint8_t byte = *b->p++;
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            *out = v;
            return OK;
        }
    }
    return DECLINE;
}

typedef struct {
    uint32_t number;
    int wire;
    uint64_t num;
    Buf data;
} Field;

static int
next_field(Buf *b, Field *f)
{
    uint64_t tag;
    TRY(read_varint(b, &tag));
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    switch (f->wire) {
    case 0:
        return read_varint(b, &f->num);
    case 1:
        if (b->end - b->p < 8) return DECLINE;
        memcpy(&f->num, b->p, 8); /* little-endian hosts only: see module init */
        b->p += 8;
        return OK;
    case 5: {
        if (b->end - b->p < 4) return DECLINE;
        uint32_t v;
        memcpy(&v, b->p, 4);
        f->num = v;
        b->p += 4;
        return OK;
    }
    case 2: {
        uint64_t n;
        TRY(read_varint(b, &n));
        if ((uint64_t)(b->end - b->p) < n) return DECLINE;
        f->data.p = b->p;
        f->data.end = b->p + n;
        b->p += n;
        return OK;
    }
    default:
        return DECLINE;
    }
}

static int
is(Buf b, const char *text)
{
    size_t n = strlen(text);
    return (size_t)(b.end - b.p) == n && memcmp(b.p, text, n) == 0;
}

/* ---- KeyValue ------------------------------------------------------------------------------ */

/* The key and the AnyValue of one OTLP KeyValue. */
static int
split_kv(Buf kv, Buf *key, Buf *value, int *has_value)
{
    Field f;
    key->p = key->end = kv.p;
    *has_value = 0;
    while (kv.p < kv.end) {
        TRY(next_field(&kv, &f));
        if (f.number == 1 && f.wire == 2) *key = f.data;
        else if (f.number == 2 && f.wire == 2) {
            *value = f.data;
            *has_value = 1;
        }
    }
    return OK;
}

/* A Jaeger KeyValue field (`field` of the enclosing message) for an OTLP key and AnyValue. */
static int
write_tag(Out *o, uint32_t field, Buf key, Buf value, int has_value)
{
    size_t start = o->len;
    if (key.end > key.p) TRY(out_field_bytes(o, 1, key.p, (size_t)(key.end - key.p)));
    Field f = {0};
    int set = 0;
    Buf v = value;
    while (has_value && v.p < v.end) { /* the last value field wins, as in a oneof */
        TRY(next_field(&v, &f));
        if (f.number >= 1 && f.number <= 7) set = 1;
        if (f.number == 5 || f.number == 6) return DECLINE; /* arrays, maps: Python formats them */
    }
    if (set) {
        switch (f.number) {
        case 1: /* string: v_type STRING (0, left out), v_str = 3 */
            if (f.wire != 2) return DECLINE;
            if (f.data.end > f.data.p)
                TRY(out_field_bytes(o, 3, f.data.p, (size_t)(f.data.end - f.data.p)));
            break;
        case 2: /* bool: v_type BOOL = 1, v_bool = 4 */
            if (f.wire != 0) return DECLINE;
            TRY(out_varint(o, 2 << 3 | 0));
            TRY(out_varint(o, 1));
            if (f.num) {
                TRY(out_varint(o, 4 << 3 | 0));
                TRY(out_varint(o, 1));
            }
            break;
        case 3: /* int: v_type INT64 = 2, v_int64 = 5 */
            if (f.wire != 0) return DECLINE;
            TRY(out_varint(o, 2 << 3 | 0));
            TRY(out_varint(o, 2));
            if (f.num) {
                TRY(out_varint(o, 5 << 3 | 0));
                TRY(out_varint(o, f.num));
            }
            break;
        case 4: { /* double: v_type FLOAT64 = 3, v_float64 = 6 */
            if (f.wire != 1) return DECLINE;
            double d;
            memcpy(&d, &f.num, 8);
            if (!isfinite(d) || (d == 0.0 && f.num != 0)) return DECLINE;
            TRY(out_varint(o, 2 << 3 | 0));
            TRY(out_varint(o, 3));
            if (f.num) {
                TRY(out_varint(o, 6 << 3 | 1));
                TRY(out_bytes(o, &f.num, 8));
            }
            break;
        }
        case 7: /* bytes: v_type BINARY = 4, v_binary = 7 */
            if (f.wire != 2) return DECLINE;
            TRY(out_varint(o, 2 << 3 | 0));
            TRY(out_varint(o, 4));
            if (f.data.end > f.data.p)
                TRY(out_field_bytes(o, 7, f.data.p, (size_t)(f.data.end - f.data.p)));
            break;
        }
    }
    /* no value: a STRING tag with an empty v_str, which is all defaults */
    return out_close(o, field, start);
}

static int
write_text_tag(Out *o, uint32_t field, const char *key, Buf text)
{
    size_t start = o->len;
    TRY(out_field_bytes(o, 1, (const uint8_t *)key, strlen(key)));
    if (text.end > text.p) TRY(out_field_bytes(o, 3, text.p, (size_t)(text.end - text.p)));
    return out_close(o, field, start);
}

#define MAX_ATTRS 256

/* The attributes (field `number` of `msg`) as Jaeger tags; DECLINE on a repeated key. */
static int
write_attributes(Out *o, uint32_t field, Buf msg, uint32_t number, int *has_event_key)
{
    Buf keys[MAX_ATTRS];
    int count = 0;
    Field f;
    while (msg.p < msg.end) {
        TRY(next_field(&msg, &f));
        if (f.number != number) continue;
        if (f.wire != 2) return DECLINE;
        Buf key, value;
        int has_value;
        TRY(split_kv(f.data, &key, &value, &has_value));
        if (count == MAX_ATTRS) return DECLINE;
        size_t n = (size_t)(key.end - key.p);
        for (int i = 0; i < count; i++)
            if ((size_t)(keys[i].end - keys[i].p) == n && memcmp(keys[i].p, key.p, n) == 0)
                return DECLINE;
        keys[count++] = key;
        if (has_event_key && is(key, "event")) *has_event_key = 1;
        if (field) TRY(write_tag(o, field, key, value, has_value));
    }
    return OK;
}

static int
write_time(Out *o, uint32_t field, uint64_t ns)
{
    size_t start = o->len;
    uint64_t seconds = ns / 1000000000u, nanos = ns % 1000000000u;
    if (seconds) {
        TRY(out_varint(o, 1 << 3 | 0));
        TRY(out_varint(o, seconds));
    }
    if (nanos) {
        TRY(out_varint(o, 2 << 3 | 0));
        TRY(out_varint(o, nanos));
    }
    return out_close(o, field, start);
}

/* ---- span ---------------------------------------------------------------------------------- */

static const char *KINDS[6] = {NULL, "internal", "server", "client", "producer", "consumer"};
static const uint8_t ZERO[16];

static int
link_is_child_of(Buf link)
{
    Field f;
    int child = 0;
    while (link.p < link.end) {
        if (next_field(&link, &f) != OK) return 0;
        if (f.number != 4 || f.wire != 2) continue;
        Buf key, value = {0};
        int has_value;
        if (split_kv(f.data, &key, &value, &has_value) != OK) return 0;
        if (!is(key, "opentracing.ref_type")) continue;
        child = 0; /* the last occurrence wins, as in the attributes dict */
        Field vf;
        while (has_value && value.p < value.end) {
            if (next_field(&value, &vf) != OK) return 0;
            child = vf.number == 1 && vf.wire == 2 && is(vf.data, "child_of");
        }
    }
    return child;
}

static int
write_ref(Out *o, const uint8_t *trace, const uint8_t *span, int follows)
{
    size_t start = o->len;
    TRY(out_field_bytes(o, 1, trace, 16));
    TRY(out_field_bytes(o, 2, span, 8));
    if (follows) {
        TRY(out_varint(o, 3 << 3 | 0));
        TRY(out_varint(o, 1));
    }
    return out_close(o, 4, start);
}

static int
transcode(Buf span, Buf scope_tags, Buf process, Out *o)
{
    Buf trace = {0}, id = {0}, parent = {0}, name = {0}, trace_state = {0}, status = {0};
    uint64_t kind = 0, start = 0, end = 0;
    Field f;
    Buf b = span;
    while (b.p < b.end) {
        TRY(next_field(&b, &f));
        switch (f.number) {
        case 1: trace = f.data; break;
        case 2: id = f.data; break;
        case 3: trace_state = f.data; break;
        case 4: parent = f.data; break;
        case 5: name = f.data; break;
        case 6: kind = f.num; break;
        case 7: start = f.num; break;
        case 8: end = f.num; break;
        case 15: status = f.data; break;
        default: break;
        }
        if ((f.number <= 5 || f.number == 15) && f.wire != 2) return DECLINE;
        if ((f.number == 7 || f.number == 8) && f.wire != 1) return DECLINE;
    }
    if (trace.end - trace.p != 16 || id.end - id.p != 8 || end < start) return DECLINE;
    int has_parent = parent.end - parent.p == 8 && memcmp(parent.p, ZERO, 8) != 0;
    if (parent.end > parent.p && parent.end - parent.p != 8) return DECLINE;

    TRY(out_field_bytes(o, 1, trace.p, 16));
    TRY(out_field_bytes(o, 2, id.p, 8));
    if (name.end > name.p) TRY(out_field_bytes(o, 3, name.p, (size_t)(name.end - name.p)));

    /* references: the parent first as CHILD_OF; a link to it only changes its type */
    size_t parent_ref = o->len;
    if (has_parent) TRY(write_ref(o, trace.p, parent.p, 0));
    size_t parent_len = o->len - parent_ref;
    b = span;
    while (b.p < b.end) {
        TRY(next_field(&b, &f));
        if (f.number != 13) continue;
        Buf lt = {0}, ls = {0}, lb = f.data;
        Field lf;
        while (lb.p < lb.end) {
            TRY(next_field(&lb, &lf));
            if (lf.number == 1) lt = lf.data;
            else if (lf.number == 2) ls = lf.data;
        }
        if (lt.end - lt.p != 16 || ls.end - ls.p != 8) return DECLINE;
        int follows = !link_is_child_of(f.data);
        if (has_parent && memcmp(lt.p, trace.p, 16) == 0 && memcmp(ls.p, parent.p, 8) == 0) {
            /* rewrite the parent reference (written first) with this type, keep what follows */
            size_t rest = o->len - parent_ref - parent_len;
            uint8_t *saved = PyMem_Malloc(rest + 1);
            if (!saved) return NOMEM;
            memcpy(saved, o->data + parent_ref + parent_len, rest);
            o->len = parent_ref;
            int rc = write_ref(o, trace.p, parent.p, follows);
            parent_len = o->len - parent_ref;
            if (rc == OK) rc = out_bytes(o, saved, rest);
            PyMem_Free(saved);
            TRY(rc);
            continue;
        }
        TRY(write_ref(o, lt.p, ls.p, follows));
    }

    TRY(write_time(o, 6, start));
    TRY(write_time(o, 7, end - start));

    /* tags: scope, attributes, kind, status, status message, trace state */
    TRY(out_bytes(o, scope_tags.p, (size_t)(scope_tags.end - scope_tags.p)));
    TRY(write_attributes(o, 8, span, 9, NULL));
    if (kind >= 1 && kind <= 5) {
        Buf k = {(const uint8_t *)KINDS[kind], (const uint8_t *)KINDS[kind] + strlen(KINDS[kind])};
        TRY(write_text_tag(o, 8, "span.kind", k));
    }
    uint64_t code = 0;
    Buf message = {0};
    Buf sb = status;
    while (sb.p < sb.end) {
        TRY(next_field(&sb, &f));
        if (f.number == 3 && f.wire == 0) code = f.num;
        else if (f.number == 2 && f.wire == 2) message = f.data;
        else if (f.number == 2 || f.number == 3) return DECLINE;
    }
    if (code == 1 || code == 2) {
        const char *word = code == 1 ? "OK" : "ERROR";
        Buf w = {(const uint8_t *)word, (const uint8_t *)word + strlen(word)};
        TRY(write_text_tag(o, 8, "otel.status_code", w));
    }
    if (code == 2) {
        size_t at = o->len;
        static const char error[] = "error";
        TRY(out_field_bytes(o, 1, (const uint8_t *)error, 5));
        TRY(out_varint(o, 2 << 3 | 0));
        TRY(out_varint(o, 1));
        TRY(out_varint(o, 4 << 3 | 0));
        TRY(out_varint(o, 1));
        TRY(out_close(o, 8, at));
    }
    if (message.end > message.p) TRY(write_text_tag(o, 8, "otel.status_description", message));
    if (trace_state.end > trace_state.p) TRY(write_text_tag(o, 8, "w3c.tracestate", trace_state));

    /* logs: one per event, its name as an `event` field unless an attribute has that key */
    b = span;
    while (b.p < b.end) {
        TRY(next_field(&b, &f));
        if (f.number != 11) continue;
        if (f.wire != 2) return DECLINE;
        Buf eb = f.data, ename = {0};
        uint64_t etime = 0;
        Field ef;
        while (eb.p < eb.end) {
            TRY(next_field(&eb, &ef));
            if (ef.number == 1 && ef.wire == 1) etime = ef.num;
            else if (ef.number == 2 && ef.wire == 2) ename = ef.data;
            else if (ef.number == 1 || ef.number == 2) return DECLINE;
        }
        int has_event_key = 0;
        TRY(write_attributes(o, 0, f.data, 3, &has_event_key)); /* checks only */
        size_t at = o->len;
        TRY(write_time(o, 1, etime));
        if (ename.end > ename.p && !has_event_key) TRY(write_text_tag(o, 2, "event", ename));
        TRY(write_attributes(o, 2, f.data, 3, NULL));
        TRY(out_close(o, 9, at));
    }
    return out_bytes(o, process.p, (size_t)(process.end - process.p));
}

static PyObject *
span_bytes(PyObject *self, PyObject *args)
{
    Py_buffer raw, scope, proc;
    if (!PyArg_ParseTuple(args, "y*y*y*", &raw, &scope, &proc)) return NULL;
    Buf span = {raw.buf, (const uint8_t *)raw.buf + raw.len};
    Buf scope_tags = {scope.buf, (const uint8_t *)scope.buf + scope.len};
    Buf process = {proc.buf, (const uint8_t *)proc.buf + proc.len};
    Out o = {0};
    int rc = transcode(span, scope_tags, process, &o);
    PyBuffer_Release(&raw);
    PyBuffer_Release(&scope);
    PyBuffer_Release(&proc);
    PyObject *result = NULL;
    if (rc == OK) result = PyBytes_FromStringAndSize((const char *)o.data, (Py_ssize_t)o.len);
    else if (rc == DECLINE) result = Py_NewRef(Py_None);
    else PyErr_NoMemory();
    PyMem_Free(o.data);
    return result;
}

static PyMethodDef methods[] = {
    {"span_bytes", span_bytes, METH_VARARGS,
     "span_bytes(otlp_span, scope_tags, process_field) -> Jaeger api_v2 Span bytes, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jaeger_proto_span", NULL, -1, methods,
};

PyMODINIT_FUNC
PyInit__jaeger_proto_span(void)
{
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) { /* fixed64 fields are read with memcpy */
        PyErr_SetString(PyExc_ImportError, "_jaeger_proto_span needs a little-endian host");
        return NULL;
    }
    return PyModule_Create(&module);
}
