/*
 * _jaeger_thrift: Jaeger Thrift batches (an agent's `emitBatch` datagram, or a bare Batch) straight
 * to tracemesh `SpanRow`s in one pass over the bytes, compact or binary protocol.
 *
 * The truth is the pure-Python path in tracemesh/codecs/jaeger_thrift.py: fastbinary decodes the
 * structs, then `batch_from_thrift` / `_row` write each span's OTLP bytes. For the common,
 * well-formed case this module returns exactly what that path returns (the same rows, every `raw`
 * byte-for-byte identical, the same scope groups). For anything else it DECLINES (returns None) and
 * the caller runs the Python path, which gives the exact result or error message. Declining is
 * always correct, so this code only has to be right about what it accepts, and it declines
 * whenever in doubt: malformed or truncated input, a type mismatch on a known field, a repeated
 * field, a span the mapping would reject, a log time out of range, a tag type outside the five
 * known, invalid UTF-8, non-ASCII `span.kind`/`otel.status_code` values (Python's str.upper() maps
 * some non-ASCII letters to ASCII), long `http.status_code` strings, maps/sets/uuids, odd message
 * envelopes, too deep nesting, too many scopes.
 *
 * Input is hostile (UDP from anywhere): every read goes through a Cursor that checks the bytes left;
 * every length and element count is checked against the bytes left before it is used (no element
 * takes less than one byte); nesting is limited; sizes are size_t and bounded by the input size
 * times a small constant. No Python object is made for tags, logs or references: a span is parsed
 * into C structs that point into the input, then encoded into a growing buffer.
 *
 * The Batch's `process` is only skipped: its offset is returned, and Python decodes it with
 * fastbinary (once per batch) and maps it with the existing `resource_from_process`.
 *
 * Python API:
 *   setup(row_type, kinds, status_codes) -> None
 *       once at import: SpanRow, the SpanKind members by value, the StatusCode members by value.
 *   decode(data: bytes, compact: bool, envelope: bool)
 *       -> tuple[list[tuple[str, str, list[SpanRow]]], int] | None
 *       ([(scope name, scope version, rows), ...] in first-seen order, offset of the process
 *       struct), or None to decline. `envelope`: an emitBatch message, else a bare Batch.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 24  /* nested structs and lists; fastbinary allows 64, so we never accept more */
#define MAX_GROUPS 64 /* distinct scopes in one batch */
#define MAX_US 18446744073709551ULL   /* (2**64 - 1) // 1000: OTLP times are u64 nanoseconds */
#define MAX_HTTP_STATUS_TEXT 20       /* longer strings: Python's int() may refuse them */

/* Thrift types, by the binary protocol's numbers. */
enum {
    T_BAD = -1,
    T_STOP = 0,
    T_BOOL = 2,
    T_BYTE = 3,
    T_DOUBLE = 4,
    T_I16 = 6,
    T_I32 = 8,
    T_I64 = 10,
    T_STRING = 11,
    T_STRUCT = 12,
    T_MAP = 13,
    T_SET = 14,
    T_LIST = 15,
    T_UUID = 16,
};

/* Compact protocol type nibble -> type (1 and 2 are a bool field's true and false). */
static const int8_t COMPACT_TYPES[16] = {
    T_STOP,   T_BOOL, T_BOOL, T_BYTE, T_I16,    T_I32,  T_I64, T_DOUBLE,
    T_STRING, T_LIST, T_SET,  T_MAP,  T_STRUCT, T_UUID, T_BAD, T_BAD,
};

/* Jaeger's TagType, and the tag keys the mapping reads (jaeger_thrift._SPECIAL). */
enum { TAG_STRING, TAG_DOUBLE, TAG_BOOL, TAG_LONG, TAG_BINARY };
enum {
    SP_NONE,
    SP_KIND,         /* always taken: never an attribute */
    SP_STATUS_CODE,  /* always taken */
    SP_TRACE_STATE,  /* always taken */
    SP_SCOPE_NAME,   /* always taken */
    SP_ERROR,        /* taken when the mapping consumes it */
    SP_STATUS_DESC,  /* taken when the mapping consumes it */
    SP_SCOPE_VERSION, /* taken when the mapping consumes it */
    SP_HTTP_CODE,    /* only informs the status */
    SP_HTTP_MESSAGE, /* only informs the status */
    SP_COUNT,
};
#define KEY(text) {text, sizeof(text) - 1}
static const struct {
    const char *s;
    size_t n;
} SPECIAL_KEYS[SP_COUNT] = {
    {NULL, 0},
    KEY("span.kind"),
    KEY("otel.status_code"),
    KEY("w3c.tracestate"),
    KEY("otel.scope.name"),
    KEY("error"),
    KEY("otel.status_description"),
    KEY("otel.scope.version"),
    KEY("http.status_code"),
    KEY("http.status_message"),
};
#undef KEY
enum { KIND_UNSPECIFIED, KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER };
enum { STATUS_UNSET, STATUS_OK, STATUS_ERROR };

static const char EMPTY[] = "";

/* ---- registered once by setup() ------------------------------------------------------------ */

static PyTypeObject *row_type;
static PyObject *kinds[6];
static PyObject *status_codes[3];

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
    int compact;
    int depth;
    int field_bool; /* compact: the value a bool field carried in its header */
} Cursor;

typedef struct {
    const char *s;
    size_t n;
} Str;

static inline size_t left(const Cursor *c) { return (size_t)(c->end - c->p); }

static inline int take(Cursor *c, size_t n, const uint8_t **out) {
    if (left(c) < n) return 0;
    *out = c->p;
    c->p += n;
    return 1;
}

static inline int rd_u8(Cursor *c, uint8_t *v) {
    if (c->p >= c->end) return 0;
    *v = *c->p++;
    return 1;
}

static inline uint64_t be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

static inline uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Two's complement reinterpretations, without implementation-defined conversions. */
static inline int64_t as_i64(uint64_t u) {
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}
static inline int32_t as_i32(uint32_t u) {
    return u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* A varint of at most `max_bytes` bytes and value at most `max`. fastbinary silently truncates
 * bigger values to the type's width; declining them spares us copying that. */
static int rd_varint(Cursor *c, int max_bytes, uint64_t max, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        uint8_t b;
        if (!rd_u8(c, &b)) return 0;
        if (i == 9 && b > 1) return 0; /* past 64 bits */
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            if (v > max) return 0;
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* zigzag: even n is n/2, odd n is -(n+1)/2 == ~(n/2). */
static inline int64_t unzigzag64(uint64_t v) {
    int64_t half = (int64_t)(v >> 1);
    return (v & 1) ? ~half : half;
}

static int rd_i32(Cursor *c, int32_t *v) {
    if (c->compact) {
        uint64_t u;
        if (!rd_varint(c, 5, UINT32_MAX, &u)) return 0;
        *v = (int32_t)unzigzag64(u); /* in int32 range: u < 2**32 */
        return 1;
    }
    const uint8_t *p;
    if (!take(c, 4, &p)) return 0;
    *v = as_i32((uint32_t)be(p, 4));
    return 1;
}

static int rd_i64(Cursor *c, int64_t *v) {
    if (c->compact) {
        uint64_t u;
        if (!rd_varint(c, 10, UINT64_MAX, &u)) return 0;
        *v = unzigzag64(u);
        return 1;
    }
    const uint8_t *p;
    if (!take(c, 8, &p)) return 0;
    *v = as_i64(be(p, 8));
    return 1;
}

/* A double's IEEE bits: little-endian in compact, big-endian in binary. */
static int rd_double(Cursor *c, uint64_t *bits) {
    const uint8_t *p;
    if (!take(c, 8, &p)) return 0;
    *bits = c->compact ? le64(p) : be(p, 8);
    return 1;
}

/* A bool field: compact carries it in the field header; binary as a byte, where fastbinary
 * reads only 1 as true and thrift's pure-Python reader any non-zero byte: decline the others. */
static int rd_bool(Cursor *c, uint8_t *v) {
    if (c->compact) {
        *v = (uint8_t)c->field_bool;
        return 1;
    }
    uint8_t b;
    if (!rd_u8(c, &b) || b > 1) return 0;
    *v = b;
    return 1;
}

static int rd_binary(Cursor *c, Str *s) {
    uint64_t n;
    if (c->compact) {
        if (!rd_varint(c, 5, UINT32_MAX, &n)) return 0;
    } else {
        int32_t len;
        if (!rd_i32(c, &len) || len < 0) return 0;
        n = (uint64_t)len;
    }
    const uint8_t *p;
    if (n > left(c) || !take(c, (size_t)n, &p)) return 0;
    s->s = (const char *)p;
    s->n = (size_t)n;
    return 1;
}

/* Strict UTF-8 as Python decodes it (no overlongs, surrogates or code points past U+10FFFF).
 * Anything else would come out of the Python path repaired with U+FFFD: declined. */
static int utf8_ok(const uint8_t *s, size_t n) {
    const uint8_t *end = s + n;
    while (s < end) {
        while ((size_t)(end - s) >= 8) { /* ASCII runs, eight bytes at a time */
            uint64_t w;
            memcpy(&w, s, 8);
            if (w & 0x8080808080808080ULL) break;
            s += 8;
        }
        if (s >= end) break;
        uint8_t b = *s;
        if (b < 0x80) {
            s++;
            continue;
        }
        size_t more;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            more = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            more = 2;
            if (b == 0xe0) lo = 0xa0;
            if (b == 0xed) hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            more = 3;
            if (b == 0xf0) lo = 0x90;
            if (b == 0xf4) hi = 0x8f;
        } else {
            return 0;
        }
        if ((size_t)(end - s) <= more || s[1] < lo || s[1] > hi) return 0;
        for (size_t k = 2; k <= more; k++)
            if ((s[k] & 0xc0) != 0x80) return 0;
        s += more + 1;
    }
    return 1;
}

static int rd_string(Cursor *c, Str *s) {
    return rd_binary(c, s) && utf8_ok((const uint8_t *)s->s, s->n);
}

/* The next field's type (T_STOP at the struct's end) and id; `last` is the previous field's id,
 * which compact field headers count from. */
static int rd_field(Cursor *c, int *last, int *type, int *id) {
    uint8_t b;
    if (!rd_u8(c, &b)) return 0;
    if (!c->compact) {
        *type = b;
        if (b == T_STOP) return 1;
        const uint8_t *p;
        if (!take(c, 2, &p)) return 0;
        *id = as_i32((uint32_t)be(p, 2) | (p[0] & 0x80 ? 0xffff0000u : 0)); /* i16 */
        return 1;
    }
    int t = COMPACT_TYPES[b & 0x0f];
    if (t == T_BAD) return 0;
    *type = t;
    if (t == T_STOP) return 1;
    if (b >> 4) {
        int v = *last + (b >> 4);
        if (v > INT16_MAX) return 0; /* fastbinary would wrap it */
        *id = v;
    } else {
        uint64_t u;
        if (!rd_varint(c, 3, UINT16_MAX, &u)) return 0;
        *id = (int)unzigzag64(u);
    }
    if (t == T_BOOL) c->field_bool = (b & 0x0f) == 1;
    *last = *id;
    return 1;
}

/* A list header; the count is at most the bytes left, since no element takes less than one. */
static int rd_list(Cursor *c, int *etype, size_t *count) {
    uint8_t b;
    uint64_t n;
    if (!rd_u8(c, &b)) return 0;
    if (c->compact) {
        *etype = COMPACT_TYPES[b & 0x0f];
        if (*etype == T_BAD) return 0;
        n = b >> 4;
        if (n == 15 && !rd_varint(c, 5, UINT32_MAX, &n)) return 0;
    } else {
        int32_t len;
        *etype = b;
        if (!rd_i32(c, &len) || len < 0) return 0;
        n = (uint64_t)len;
    }
    if (n > left(c)) return 0;
    *count = (size_t)n;
    return 1;
}

/* A list of structs (Jaeger's only kind); an empty list of another type is odd enough to decline. */
static int rd_struct_list(Cursor *c, size_t *count) {
    int etype;
    return rd_list(c, &etype, count) && etype == T_STRUCT;
}

static int enter(Cursor *c) { return ++c->depth <= MAX_DEPTH; }

static int skip_value(Cursor *c, int type, int is_field);

static int skip_struct(Cursor *c) {
    int last = 0, type, id;
    if (!enter(c)) return 0;
    for (;;) {
        if (!rd_field(c, &last, &type, &id)) return 0;
        if (type == T_STOP) break;
        if (!skip_value(c, type, 1)) return 0;
    }
    c->depth--;
    return 1;
}

/* Skips a value of an unknown field (seqNo, stats, fields of later Jaeger versions). Maps, sets
 * and uuids never occur in Jaeger data: declined. `is_field`: a compact bool field has no body. */
static int skip_value(Cursor *c, int type, int is_field) {
    const uint8_t *p;
    uint64_t u;
    int32_t i32;
    int64_t i64;
    Str s;
    switch (type) {
    case T_BOOL:
        return (c->compact && is_field) || take(c, 1, &p);
    case T_BYTE:
        return take(c, 1, &p);
    case T_I16:
        return c->compact ? rd_varint(c, 3, UINT16_MAX, &u) : take(c, 2, &p);
    case T_I32:
        return rd_i32(c, &i32);
    case T_I64:
        return rd_i64(c, &i64);
    case T_DOUBLE:
        return take(c, 8, &p);
    case T_STRING:
        return rd_binary(c, &s);
    case T_STRUCT:
        return skip_struct(c);
    case T_LIST: {
        int etype;
        size_t n;
        if (!rd_list(c, &etype, &n) || !enter(c)) return 0;
        for (size_t i = 0; i < n; i++)
            if (!skip_value(c, etype, 0)) return 0;
        c->depth--;
        return 1;
    }
    default:
        return 0;
    }
}

/* ---- the structs, parsed into views of the input -------------------------------------------- */

typedef struct {
    Str key, str, bin;
    int64_t vlong;
    uint64_t vdouble; /* IEEE bits */
    int32_t vtype;
    uint8_t vbool;
    uint8_t special; /* SP_*, for a span's own tags */
    size_t kv;       /* size of its encoded KeyValue */
} Tag;

typedef struct {
    int64_t timestamp;
    size_t first, n; /* its fields: tags[first:first + n] */
} Log;

typedef struct {
    int32_t type;
    int64_t low, high, span;
} Ref;

typedef struct {
    int64_t trace_low, trace_high, span_id, parent_id, start, duration;
    int32_t flags;
    Str name;
    size_t tags_first, tags_n;
} SpanView;

/* One span's tags (its own, then its logs' fields), logs and references; reused span to span. */
typedef struct {
    Tag *tags;
    size_t ntags, cap_tags;
    Log *logs;
    size_t nlogs, cap_logs;
    Ref *refs;
    size_t nrefs, cap_refs;
} Scratch;

/* Room for `more` elements after the `used` ones; counts are bounded by the input's length. */
static int grow(void **array, size_t *cap, size_t used, size_t more, size_t size) {
    if (more <= *cap - used) return 1;
    if (more > (size_t)PY_SSIZE_T_MAX / size - used) return 0;
    size_t want = used + more;
    if (want < *cap * 2) want = *cap * 2;
    if (want < 16) want = 16;
    if (want > (size_t)PY_SSIZE_T_MAX / size) want = used + more;
    void *bigger = PyMem_Realloc(*array, want * size);
    if (bigger == NULL) {
        PyErr_NoMemory();
        return 0;
    }
    *array = bigger;
    *cap = want;
    return 1;
}

/* The fields a struct reads, by id; anything else is skipped. A known id with another type is
 * declined (fastbinary would skip it, leaving the field unset), as is a repeated field (the
 * last would win). */
#define FIELD_LOOP_BEGIN(c, nknown, types)                                                         \
    int last_ = 0, type_, id_;                                                                     \
    uint32_t seen_ = 0;                                                                            \
    if (!enter(c)) return 0;                                                                       \
    for (;;) {                                                                                     \
        if (!rd_field((c), &last_, &type_, &id_)) return 0;                                        \
        if (type_ == T_STOP) break;                                                                \
        if (id_ < 1 || id_ >= (nknown)) {                                                          \
            if (!skip_value((c), type_, 1)) return 0;                                              \
            continue;                                                                              \
        }                                                                                          \
        if ((seen_ & (1u << id_)) || type_ != (types)[id_]) return 0;                              \
        seen_ |= 1u << id_;                                                                        \
        int ok_ = 0;                                                                               \
        switch (id_) {
#define FIELD_LOOP_END(c)                                                                          \
        }                                                                                          \
        if (!ok_) return 0;                                                                        \
    }                                                                                              \
    (c)->depth--;

static size_t vsize(uint64_t v);
static size_t kv_size(const Tag *t);

static const int8_t TAG_TYPES[8] = {0,        T_STRING, T_I32, T_STRING,
                                   T_DOUBLE, T_BOOL,   T_I64, T_STRING};

static int parse_tag(Cursor *c, Tag *t) {
    uint64_t bits = 0;
    memset(t, 0, sizeof *t);
    t->key.s = t->str.s = t->bin.s = EMPTY; /* an absent field reads as its zero value, as `or` */
    FIELD_LOOP_BEGIN(c, 8, TAG_TYPES)
    case 1: ok_ = rd_string(c, &t->key); break;
    case 2: ok_ = rd_i32(c, &t->vtype); break;
    case 3: ok_ = rd_string(c, &t->str); break;
    case 4: ok_ = rd_double(c, &bits); break;
    case 5: ok_ = rd_bool(c, &t->vbool); break;
    case 6: ok_ = rd_i64(c, &t->vlong); break;
    case 7: ok_ = rd_binary(c, &t->bin); break;
    FIELD_LOOP_END(c)
    if (t->vtype < TAG_STRING || t->vtype > TAG_BINARY) return 0; /* "<Unknown Jaeger TagType>" */
    /* `tag.vDouble or 0.0`: -0.0 is falsy, so either zero is written as +0.0; NaNs keep bits. */
    t->vdouble = (bits << 1) == 0 ? 0 : bits;
    t->kv = kv_size(t);
    return 1;
}

/* A list of tags appended to the scratch tags; their range is returned. */
static int parse_tags(Cursor *c, Scratch *s, size_t *first, size_t *n) {
    size_t count;
    if (!rd_struct_list(c, &count) || !grow((void **)&s->tags, &s->cap_tags, s->ntags, count,
                                            sizeof(Tag)))
        return 0;
    *first = s->ntags;
    *n = count;
    for (size_t i = 0; i < count; i++)
        if (!parse_tag(c, &s->tags[s->ntags++])) return 0;
    return 1;
}

static const int8_t LOG_TYPES[3] = {0, T_I64, T_LIST};

static int parse_log(Cursor *c, Scratch *s, Log *log) {
    memset(log, 0, sizeof *log);
    FIELD_LOOP_BEGIN(c, 3, LOG_TYPES)
    case 1: ok_ = rd_i64(c, &log->timestamp); break;
    case 2: ok_ = parse_tags(c, s, &log->first, &log->n); break;
    FIELD_LOOP_END(c)
    return 1;
}

static const int8_t REF_TYPES[5] = {0, T_I32, T_I64, T_I64, T_I64};

static int parse_ref(Cursor *c, Ref *ref) {
    memset(ref, 0, sizeof *ref);
    FIELD_LOOP_BEGIN(c, 5, REF_TYPES)
    case 1: ok_ = rd_i32(c, &ref->type); break;
    case 2: ok_ = rd_i64(c, &ref->low); break;
    case 3: ok_ = rd_i64(c, &ref->high); break;
    case 4: ok_ = rd_i64(c, &ref->span); break;
    FIELD_LOOP_END(c)
    return 1;
}

static int parse_logs(Cursor *c, Scratch *s) {
    size_t count;
    if (!rd_struct_list(c, &count) ||
        !grow((void **)&s->logs, &s->cap_logs, s->nlogs, count, sizeof(Log)))
        return 0;
    for (size_t i = 0; i < count; i++)
        if (!parse_log(c, s, &s->logs[s->nlogs++])) return 0;
    return 1;
}

static int parse_refs(Cursor *c, Scratch *s) {
    size_t count;
    if (!rd_struct_list(c, &count) ||
        !grow((void **)&s->refs, &s->cap_refs, s->nrefs, count, sizeof(Ref)))
        return 0;
    for (size_t i = 0; i < count; i++)
        if (!parse_ref(c, &s->refs[s->nrefs++])) return 0;
    return 1;
}

static const int8_t SPAN_TYPES[12] = {0,      T_I64, T_I64, T_I64, T_I64,  T_STRING,
                                      T_LIST, T_I32, T_I64, T_I64, T_LIST, T_LIST};

static int parse_span(Cursor *c, Scratch *s, SpanView *v) {
    memset(v, 0, sizeof *v);
    v->name.s = EMPTY;
    s->ntags = s->nlogs = s->nrefs = 0;
    FIELD_LOOP_BEGIN(c, 12, SPAN_TYPES)
    case 1: ok_ = rd_i64(c, &v->trace_low); break;
    case 2: ok_ = rd_i64(c, &v->trace_high); break;
    case 3: ok_ = rd_i64(c, &v->span_id); break;
    case 4: ok_ = rd_i64(c, &v->parent_id); break;
    case 5: ok_ = rd_string(c, &v->name); break;
    case 6: ok_ = parse_refs(c, s); break;
    case 7: ok_ = rd_i32(c, &v->flags); break;
    case 8: ok_ = rd_i64(c, &v->start); break;
    case 9: ok_ = rd_i64(c, &v->duration); break;
    case 10: ok_ = parse_tags(c, s, &v->tags_first, &v->tags_n); break;
    case 11: ok_ = parse_logs(c, s); break;
    FIELD_LOOP_END(c)
    return 1;
}

/* ---- OTLP protobuf, as jaeger_thrift._row writes it ------------------------------------------ */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Buf;

/* Room for `more` bytes; returns where they go. */
static uint8_t *reserve(Buf *b, size_t more) {
    if (more > b->cap - b->len) {
        if (more > (size_t)PY_SSIZE_T_MAX - b->len) return NULL;
        size_t want = b->len + more;
        if (want < b->cap * 2 && b->cap * 2 <= (size_t)PY_SSIZE_T_MAX) want = b->cap * 2;
        if (want < 1024) want = 1024;
        uint8_t *bigger = PyMem_Realloc(b->data, want);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        b->data = bigger;
        b->cap = want;
    }
    return b->data + b->len;
}

static size_t vsize(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v) {
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++, v >>= 8) *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *put_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static inline size_t field_size(size_t n) { return 1 + vsize(n) + n; }

/* A length-delimited field (canonical varint length, as protowire.encode_varint). */
static inline uint8_t *put_field(uint8_t *p, uint8_t tag, const void *data, size_t n) {
    *p++ = tag;
    p = put_varint(p, n);
    if (n) memcpy(p, data, n);
    return p + n;
}

/* AnyValue: string_value 1, bool_value 2, int_value 3, double_value 4, bytes_value 7. */
static size_t any_size(const Tag *t) {
    switch (t->vtype) {
    case TAG_STRING: return field_size(t->str.n);
    case TAG_DOUBLE: return 9;
    case TAG_BOOL: return 2;
    case TAG_LONG: return 1 + vsize((uint64_t)t->vlong);
    default: return field_size(t->bin.n);
    }
}

static uint8_t *put_any(uint8_t *p, const Tag *t) {
    switch (t->vtype) {
    case TAG_STRING: return put_field(p, 0x0a, t->str.s, t->str.n);
    case TAG_DOUBLE: *p++ = 0x21; return put_le(p, t->vdouble, 8);
    case TAG_BOOL: *p++ = 0x10; *p++ = t->vbool; return p;
    case TAG_LONG: *p++ = 0x18; return put_varint(p, (uint64_t)t->vlong);
    default: return put_field(p, 0x3a, t->bin.s, t->bin.n);
    }
}

/* KeyValue: key 1, value 2. */
static size_t kv_size(const Tag *t) { return field_size(t->key.n) + field_size(any_size(t)); }

/* A KeyValue as field `tag` (Span.attributes 9, Event.attributes 3, Link.attributes 4); reserve
 * field_size(t->kv) first. */
static uint8_t *put_kv(uint8_t *p, uint8_t tag, const Tag *t) {
    *p++ = tag;
    p = put_varint(p, t->kv);
    p = put_field(p, 0x0a, t->key.s, t->key.n);
    *p++ = 0x12;
    p = put_varint(p, any_size(t));
    return put_any(p, t);
}

static int put_attribute(Buf *b, uint8_t tag, const Tag *t) {
    uint8_t *p = reserve(b, field_size(t->kv));
    if (p == NULL) return 0;
    b->len = (size_t)(put_kv(p, tag, t) - b->data);
    return 1;
}

static inline int is_key(Str key, const char *name) {
    size_t n = strlen(name);
    return key.n == n && memcmp(key.s, name, n) == 0;
}

/* Span.events (11): time 1 (fixed64), name 2, attributes 3; the last `event` field names it (a
 * non-string one clears the name) and none stays an attribute. */
static int put_event(Buf *b, const Scratch *s, const Log *log) {
    if (log->timestamp < 0 || (uint64_t)log->timestamp > MAX_US) return 0;
    const Str *name = NULL;
    size_t body = 9;
    for (size_t i = log->first; i < log->first + log->n; i++) {
        const Tag *t = &s->tags[i];
        if (is_key(t->key, "event"))
            name = t->vtype == TAG_STRING ? &t->str : NULL;
        else
            body += field_size(t->kv);
    }
    if (name != NULL) body += field_size(name->n);
    uint8_t *p = reserve(b, field_size(body));
    if (p == NULL) return 0;
    *p++ = 0x5a;
    p = put_varint(p, body);
    *p++ = 0x09;
    p = put_le(p, (uint64_t)log->timestamp * 1000, 8);
    if (name != NULL) p = put_field(p, 0x12, name->s, name->n);
    for (size_t i = log->first; i < log->first + log->n; i++) {
        const Tag *t = &s->tags[i];
        if (!is_key(t->key, "event")) p = put_kv(p, 0x1a, t);
    }
    b->len = (size_t)(p - b->data);
    return 1;
}

/* Span.links (13): trace_id 1, span_id 2, attributes 4 = {opentracing.ref_type: child_of |
 * follows_from}; any refType but CHILD_OF (0) counts as follows_from, as in `_links`. */
static int put_link(Buf *b, const Ref *ref) {
    Tag attr;
    memset(&attr, 0, sizeof attr);
    attr.key.s = "opentracing.ref_type";
    attr.key.n = strlen(attr.key.s);
    attr.vtype = TAG_STRING;
    attr.str.s = ref->type == 0 ? "child_of" : "follows_from";
    attr.str.n = strlen(attr.str.s);
    attr.kv = kv_size(&attr);
    size_t body = 2 + 16 + 2 + 8 + field_size(attr.kv);
    uint8_t *p = reserve(b, field_size(body));
    if (p == NULL) return 0;
    *p++ = 0x6a;
    p = put_varint(p, body);
    *p++ = 0x0a;
    *p++ = 16;
    p = put_be64(p, (uint64_t)ref->high);
    p = put_be64(p, (uint64_t)ref->low);
    *p++ = 0x12;
    *p++ = 8;
    p = put_be64(p, (uint64_t)ref->span);
    p = put_kv(p, 0x22, &attr);
    b->len = (size_t)(p - b->data);
    return 1;
}

/* ---- the mapping's rules (jaeger_status.py, SpanKind.from_jaeger_name) ------------------------ */

static int classify(Str key) {
    for (int i = 1; i < SP_COUNT; i++)
        if (key.n == SPECIAL_KEYS[i].n && memcmp(key.s, SPECIAL_KEYS[i].s, key.n) == 0) return i;
    return SP_NONE;
}

static int is_ascii(Str s) {
    for (size_t i = 0; i < s.n; i++)
        if ((uint8_t)s.s[i] >= 0x80) return 0;
    return 1;
}

/* `s.upper() == upper`, for ASCII `s`. */
static int upper_is(Str s, const char *upper) {
    if (s.n != strlen(upper)) return 0;
    for (size_t i = 0; i < s.n; i++) {
        char ch = s.s[i];
        if (ch >= 'a' && ch <= 'z') ch = (char)(ch - 'a' + 'A');
        if (ch != upper[i]) return 0;
    }
    return 1;
}

/* SpanKind.from_jaeger_name; -1 declines non-ASCII (str.upper() maps e.g. U+017F to 'S'). */
static int kind_from_name(Str s) {
    static const char *const NAMES[6] = {"UNSPECIFIED", "INTERNAL", "SERVER",
                                         "CLIENT",      "PRODUCER", "CONSUMER"};
    if (!is_ascii(s)) return -1;
    for (int i = 0; i < 6; i++)
        if (upper_is(s, NAMES[i])) return i;
    return KIND_UNSPECIFIED;
}

/* `_NAMED.get(text.upper(), UNSET)`; -1 declines non-ASCII. */
static int status_from_name(Str s) {
    if (!is_ascii(s)) return -1;
    if (upper_is(s, "OK")) return STATUS_OK;
    if (upper_is(s, "ERROR")) return STATUS_ERROR;
    return STATUS_UNSET;
}

/* jaeger_status.http_status for a string: Go's strconv syntax `[+-]?[0-9]+`, in int64 range.
 * Returns 1 with the value, 0 when it is not one, -1 to decline (long strings). */
static int http_status_text(Str s, int64_t *out) {
    if (s.n > MAX_HTTP_STATUS_TEXT) return -1;
    size_t i = 0;
    int negative = 0;
    if (i < s.n && (s.s[i] == '+' || s.s[i] == '-')) negative = s.s[i++] == '-';
    if (i == s.n) return 0;
    uint64_t magnitude = 0;
    for (; i < s.n; i++) {
        if (s.s[i] < '0' || s.s[i] > '9') return 0;
        unsigned figure = (unsigned)(s.s[i] - '0');
        if (magnitude > (UINT64_MAX - figure) / 10) return 0; /* out of range */
        magnitude = magnitude * 10 + figure;
    }
    if (magnitude > (uint64_t)INT64_MAX + (uint64_t)negative) return 0;
    if (magnitude == 0) negative = 0;
    *out = negative ? -(int64_t)(magnitude - 1) - 1 : (int64_t)magnitude; /* INT64_MIN too */
    return 1;
}

/* jaeger_status.status_from_http */
static int status_from_http(int64_t code, int kind) {
    if (code >= 400 && code < 500 && (kind == KIND_CLIENT || kind == KIND_SERVER))
        return kind == KIND_CLIENT ? STATUS_ERROR : STATUS_UNSET;
    return code >= 100 && code < 399 ? STATUS_UNSET : STATUS_ERROR;
}

/* jaeger_status.text: a string tag's value, else "". */
static Str text(const Tag *t) {
    if (t != NULL && t->vtype == TAG_STRING) return t->str;
    Str none = {EMPTY, 0};
    return none;
}

/* ---- one span -> one row --------------------------------------------------------------------- */

typedef struct {
    Str name, version;
    PyObject *rows; /* list */
} Group;

typedef struct {
    Cursor c;
    const uint8_t *base;
    Scratch s;
    Buf out;
    Group groups[MAX_GROUPS];
    int ngroups;
    Py_ssize_t process_at; /* -1 until seen */
} Decoder;

static PyObject *bytes_be64(uint64_t v) {
    uint8_t b[8];
    put_be64(b, v);
    return PyBytes_FromStringAndSize((const char *)b, 8);
}

static int add_row(Decoder *d, Str scope_name, Str scope_version, PyObject *row) {
    Group *g = NULL;
    for (int i = 0; i < d->ngroups; i++) {
        Group *h = &d->groups[i];
        if (h->name.n == scope_name.n && h->version.n == scope_version.n &&
            memcmp(h->name.s, scope_name.s, scope_name.n) == 0 &&
            memcmp(h->version.s, scope_version.s, scope_version.n) == 0) {
            g = h;
            break;
        }
    }
    if (g == NULL) {
        if (d->ngroups == MAX_GROUPS) return 0;
        PyObject *rows = PyList_New(0);
        if (rows == NULL) return 0;
        g = &d->groups[d->ngroups++];
        g->name = scope_name;
        g->version = scope_version;
        g->rows = rows;
    }
    return PyList_Append(g->rows, row) == 0;
}

/* jaeger_thrift.invalid_reason accepting the span (a rejected one is declined). */
static int storable(const SpanView *v) {
    return (v->trace_high || v->trace_low) && v->span_id && v->start > 0 && v->duration >= 0 &&
           (uint64_t)v->start + (uint64_t)v->duration <= MAX_US;
}

/* jaeger_thrift._parent_id: without parentSpanId, the first CHILD_OF (then FOLLOWS_FROM)
 * reference within the trace. */
static int64_t parent_from_refs(const Scratch *s, const SpanView *v) {
    int64_t follows = 0;
    for (size_t i = 0; i < s->nrefs; i++) {
        const Ref *r = &s->refs[i];
        if (r->high != v->trace_high || r->low != v->trace_low) continue;
        if (r->type == 0) return r->span;
        if (follows == 0 && r->type == 1) follows = r->span;
    }
    return follows;
}

/* jaeger_thrift._row for one parsed span; the row goes to its scope's group. */
static int encode_span(Decoder *d, const SpanView *v) {
    Scratch *s = &d->s;
    Buf *b = &d->out;
    if (!storable(v)) return 0;

    /* The special tags: the last of each key counts (a dict in Python). */
    const Tag *last[SP_COUNT] = {NULL};
    for (size_t i = v->tags_first; i < v->tags_first + v->tags_n; i++) {
        Tag *t = &s->tags[i];
        t->special = (uint8_t)classify(t->key);
        if (t->special) last[t->special] = t;
    }
    Str scope_name = text(NULL), scope_version = text(NULL);
    if (last[SP_SCOPE_NAME]) { /* pop_scope */
        scope_name = text(last[SP_SCOPE_NAME]);
        scope_version = text(last[SP_SCOPE_VERSION]);
    }
    int kind = KIND_UNSPECIFIED;
    if (last[SP_KIND] && last[SP_KIND]->vtype == TAG_STRING) {
        kind = kind_from_name(last[SP_KIND]->str);
        if (kind < 0) return 0;
    }
    /* status_from_attributes */
    const Tag *error = last[SP_ERROR], *desc = last[SP_STATUS_DESC];
    int error_true = error && error->vtype == TAG_BOOL && error->vbool;
    int code = STATUS_UNSET;
    Str message = text(NULL);
    if (error_true) {
        code = STATUS_ERROR;
        message = desc ? text(desc) : text(last[SP_HTTP_MESSAGE]);
    } else if (last[SP_STATUS_CODE]) {
        code = status_from_name(text(last[SP_STATUS_CODE]));
        if (code < 0) return 0;
        message = text(desc);
    } else if (last[SP_HTTP_CODE]) {
        const Tag *http = last[SP_HTTP_CODE];
        int64_t value = 0;
        int found = 0;
        if (http->vtype == TAG_LONG) {
            value = http->vlong;
            found = 1;
        } else if (http->vtype == TAG_STRING) {
            found = http_status_text(http->str, &value);
            if (found < 0) return 0;
        }
        if (found && status_from_http(value, kind) != STATUS_UNSET) {
            code = status_from_http(value, kind);
            message = text(last[SP_HTTP_MESSAGE]);
        }
    }
    Str trace_state = text(last[SP_TRACE_STATE]);
    /* Tags the mapping consumed are dropped, every occurrence. */
    int drop_error = error_true;
    int drop_desc = desc && (error_true || last[SP_STATUS_CODE]);
    int drop_version = last[SP_SCOPE_NAME] != NULL;

    int64_t parent = v->parent_id ? v->parent_id : parent_from_refs(s, v);
    uint64_t start = (uint64_t)v->start * 1000, end = start + (uint64_t)v->duration * 1000;

    /* trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6, start 7, end 8 */
    b->len = 0;
    size_t head = 18 + 10 + (trace_state.n ? field_size(trace_state.n) : 0) + (parent ? 10 : 0) +
                  (v->name.n ? field_size(v->name.n) : 0) + 2 + 18;
    uint8_t *p = reserve(b, head);
    if (p == NULL) return 0;
    *p++ = 0x0a;
    *p++ = 16;
    p = put_be64(p, (uint64_t)v->trace_high);
    p = put_be64(p, (uint64_t)v->trace_low);
    *p++ = 0x12;
    *p++ = 8;
    p = put_be64(p, (uint64_t)v->span_id);
    if (trace_state.n) p = put_field(p, 0x1a, trace_state.s, trace_state.n);
    if (parent) {
        *p++ = 0x22;
        *p++ = 8;
        p = put_be64(p, (uint64_t)parent);
    }
    if (v->name.n) p = put_field(p, 0x2a, v->name.s, v->name.n);
    if (kind) {
        *p++ = 0x30;
        *p++ = (uint8_t)kind;
    }
    *p++ = 0x39;
    p = put_le(p, start, 8);
    *p++ = 0x41;
    p = put_le(p, end, 8);
    b->len = (size_t)(p - b->data);

    /* attributes 9 */
    for (size_t i = v->tags_first; i < v->tags_first + v->tags_n; i++) {
        const Tag *t = &s->tags[i];
        switch (t->special) {
        case SP_KIND: case SP_STATUS_CODE: case SP_TRACE_STATE: case SP_SCOPE_NAME:
            continue;
        case SP_ERROR: if (drop_error) continue; break;
        case SP_STATUS_DESC: if (drop_desc) continue; break;
        case SP_SCOPE_VERSION: if (drop_version) continue; break;
        default: break;
        }
        if (!put_attribute(b, 0x4a, t)) return 0;
    }
    /* events 11 */
    for (size_t i = 0; i < s->nlogs; i++)
        if (!put_event(b, s, &s->logs[i])) return 0;
    /* links 13: every reference but the CHILD_OF one that is the parent */
    for (size_t i = 0; i < s->nrefs; i++) {
        const Ref *r = &s->refs[i];
        if (r->type == 0 && r->span == parent) continue;
        if (!put_link(b, r)) return 0;
    }
    /* status 15: message 2, code 3 */
    if (code || message.n) {
        size_t body = (message.n ? field_size(message.n) : 0) + (code ? 2 : 0);
        if ((p = reserve(b, field_size(body))) == NULL) return 0;
        *p++ = 0x7a;
        p = put_varint(p, body);
        if (message.n) p = put_field(p, 0x12, message.s, message.n);
        if (code) {
            *p++ = 0x18;
            *p++ = (uint8_t)code;
        }
        b->len = (size_t)(p - b->data);
    }
    /* flags 16 (fixed32): Jaeger's sampled bit */
    if (v->flags & 1) {
        if ((p = reserve(b, 6)) == NULL) return 0;
        memcpy(p, "\x85\x01\x01\x00\x00\x00", 6);
        b->len += 6;
    }

    /* SpanRow(trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, raw),
     * made as tuple.__new__(SpanRow, ...) makes it. */
    PyObject *row = row_type->tp_alloc(row_type, 9);
    if (row == NULL) return 0;
    uint8_t trace_id[16];
    put_be64(put_be64(trace_id, (uint64_t)v->trace_high), (uint64_t)v->trace_low);
    PyTuple_SET_ITEM(row, 0, PyBytes_FromStringAndSize((const char *)trace_id, 16));
    PyTuple_SET_ITEM(row, 1, bytes_be64((uint64_t)v->span_id));
    PyTuple_SET_ITEM(row, 2, parent ? bytes_be64((uint64_t)parent)
                                    : PyBytes_FromStringAndSize(NULL, 0));
    PyTuple_SET_ITEM(row, 3, PyUnicode_DecodeUTF8(v->name.s, (Py_ssize_t)v->name.n, NULL));
    PyTuple_SET_ITEM(row, 4, Py_NewRef(kinds[kind]));
    PyTuple_SET_ITEM(row, 5, PyLong_FromUnsignedLongLong(start));
    PyTuple_SET_ITEM(row, 6, PyLong_FromUnsignedLongLong(end));
    PyTuple_SET_ITEM(row, 7, Py_NewRef(status_codes[code]));
    PyTuple_SET_ITEM(row, 8, PyBytes_FromStringAndSize((const char *)b->data, (Py_ssize_t)b->len));
    int ok = !PyErr_Occurred() && add_row(d, scope_name, scope_version, row);
    Py_DECREF(row); /* tuple dealloc tolerates the NULL items a failed allocation left */
    return ok;
}

/* ---- Batch, EmitBatchArgs, the message envelope ---------------------------------------------- */

static int parse_spans(Decoder *d) {
    size_t count;
    SpanView v;
    if (!rd_struct_list(&d->c, &count)) return 0;
    for (size_t i = 0; i < count; i++)
        if (!parse_span(&d->c, &d->s, &v) || !encode_span(d, &v)) return 0;
    return 1;
}

/* The process is skipped here and decoded by Python from its offset. */
static int skip_process(Decoder *d) {
    d->process_at = (Py_ssize_t)(d->c.p - d->base);
    return skip_struct(&d->c);
}

static const int8_t BATCH_TYPES[3] = {0, T_STRUCT, T_LIST}; /* seqNo and stats: skipped */

static int parse_batch(Decoder *d) {
    Cursor *c = &d->c;
    FIELD_LOOP_BEGIN(c, 3, BATCH_TYPES)
    case 1: ok_ = skip_process(d); break;
    case 2: ok_ = parse_spans(d); break;
    FIELD_LOOP_END(c)
    return seen_ == ((1u << 1) | (1u << 2)); /* both required, as Jaeger's reader insists */
}

static const int8_t ARGS_TYPES[2] = {0, T_STRUCT};

static int parse_args(Decoder *d) {
    Cursor *c = &d->c;
    FIELD_LOOP_BEGIN(c, 2, ARGS_TYPES)
    case 1: ok_ = parse_batch(d); break;
    FIELD_LOOP_END(c)
    return seen_ != 0;
}

#define METHOD "emitBatch"
#define METHOD_LEN 9
enum { MESSAGE_CALL = 1, MESSAGE_ONEWAY = 4 };

/* A strict message header of a CALL or ONEWAY `emitBatch` (thrift's Python readMessageBegin
 * reads it); the old non-strict binary form is left to Python. */
static int parse_envelope(Cursor *c) {
    const uint8_t *p;
    Str name;
    uint64_t u;
    int type;
    if (c->compact) {
        if (!take(c, 2, &p) || p[0] != 0x82 || (p[1] & 0x1f) != 1) return 0;
        type = p[1] >> 5;
        if (!rd_varint(c, 10, UINT64_MAX, &u)) return 0; /* seqid */
    } else {
        if (!take(c, 4, &p) || p[0] != 0x80 || p[1] != 0x01) return 0;
        type = p[3];
    }
    if (type != MESSAGE_CALL && type != MESSAGE_ONEWAY) return 0;
    if (!rd_binary(c, &name) || name.n != METHOD_LEN || memcmp(name.s, METHOD, METHOD_LEN) != 0)
        return 0;
    return c->compact || take(c, 4, &p); /* binary: seqid after the name */
}

/* ---- Python functions ------------------------------------------------------------------------ */

static PyObject *groups_list(Decoder *d) {
    PyObject *out = PyList_New(d->ngroups);
    if (out == NULL) return NULL;
    for (int i = 0; i < d->ngroups; i++) {
        Group *g = &d->groups[i];
        PyObject *item = Py_BuildValue("(s#s#O)", g->name.s, (Py_ssize_t)g->name.n, g->version.s,
                                       (Py_ssize_t)g->version.n, g->rows);
        if (item == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, item);
    }
    return out;
}

PyDoc_STRVAR(decode_doc,
             "decode(data: bytes, compact: bool, envelope: bool) -> "
             "tuple[list[tuple[str, str, list[SpanRow]]], int] | None\n\n"
             "Rows grouped by scope (first seen first) and the process struct's offset, exactly as "
             "tracemesh.codecs.jaeger_thrift's Python path would make them; None declines the "
             "input (that path then decides). `envelope`: an emitBatch message, else a Batch.");

static PyObject *decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "decode() takes data, compact, envelope");
        return NULL;
    }
    if (row_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup() has not been called");
        return NULL;
    }
    PyObject *data = args[0];
    int compact = PyObject_IsTrue(args[1]), envelope = PyObject_IsTrue(args[2]);
    if (compact < 0 || envelope < 0) return NULL;
    if (!PyBytes_Check(data)) Py_RETURN_NONE;

    Decoder d;
    memset(&d, 0, sizeof d);
    d.base = (const uint8_t *)PyBytes_AS_STRING(data);
    d.c.p = d.base;
    d.c.end = d.base + PyBytes_GET_SIZE(data);
    d.c.compact = compact;
    d.process_at = -1;

    int ok = envelope ? parse_envelope(&d.c) && parse_args(&d) : parse_batch(&d);
    PyObject *result = NULL;
    if (ok && d.process_at >= 0) {
        PyObject *groups = groups_list(&d), *offset = PyLong_FromSsize_t(d.process_at);
        if (groups != NULL && offset != NULL) result = PyTuple_Pack(2, groups, offset);
        Py_XDECREF(groups);
        Py_XDECREF(offset);
    } else if (!PyErr_Occurred()) {
        result = Py_NewRef(Py_None); /* declined */
    }
    for (int i = 0; i < d.ngroups; i++) Py_DECREF(d.groups[i].rows);
    PyMem_Free(d.s.tags);
    PyMem_Free(d.s.logs);
    PyMem_Free(d.s.refs);
    PyMem_Free(d.out.data);
    return result; /* NULL: an exception (out of memory) */
}

PyDoc_STRVAR(setup_doc,
             "setup(row_type, kinds, status_codes) -> None\n\n"
             "Registers the row class (a tuple subclass without extra fields: SpanRow), the "
             "SpanKind members and the StatusCode members, each a tuple indexed by value.");

static PyObject *setup(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *type, *kind_tuple, *code_tuple;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyType_Type, &type, &PyTuple_Type, &kind_tuple,
                          &PyTuple_Type, &code_tuple))
        return NULL;
    PyTypeObject *t = (PyTypeObject *)type;
    if (!PyType_IsSubtype(t, &PyTuple_Type) || t->tp_basicsize != PyTuple_Type.tp_basicsize ||
        t->tp_itemsize != PyTuple_Type.tp_itemsize) {
        PyErr_SetString(PyExc_TypeError, "row_type must be a tuple subclass without fields");
        return NULL;
    }
    if (PyTuple_GET_SIZE(kind_tuple) != 6 || PyTuple_GET_SIZE(code_tuple) != 3) {
        PyErr_SetString(PyExc_ValueError, "expected 6 span kinds and 3 status codes");
        return NULL;
    }
    Py_XSETREF(row_type, (PyTypeObject *)Py_NewRef(type));
    for (int i = 0; i < 6; i++) Py_XSETREF(kinds[i], Py_NewRef(PyTuple_GET_ITEM(kind_tuple, i)));
    for (int i = 0; i < 3; i++)
        Py_XSETREF(status_codes[i], Py_NewRef(PyTuple_GET_ITEM(code_tuple, i)));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL, decode_doc},
    {"setup", setup, METH_VARARGS, setup_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tracemesh.accel._jaeger_thrift",
    .m_doc = "Jaeger Thrift batches straight to SpanRows; declines what it does not handle.",
    .m_size = -1, /* the registered classes are process-wide; no subinterpreter support */
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__jaeger_thrift(void) { return PyModule_Create(&module); }
