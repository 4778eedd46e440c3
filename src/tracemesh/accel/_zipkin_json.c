/*
 * Zipkin v2 JSON spans -> storage rows: the C fast path of
 * `tracemesh.codecs.zipkin_json.batch_from_json_v2` / `spans_from_json_v2`.
 *
 * Design
 * ------
 * The input is the list `orjson.loads` returned for a request body. The Python path
 * (`zipkin_json._add_v2` feeding `zipkin_model.RowBuilder`) is the reference, and this file
 * reproduces its output exactly: the same `SpanRow` fields, the same serialized OTLP `Span` in
 * `raw` (same fields in the same order, same encodings, byte for byte) and the same grouping by
 * resource and scope.
 *
 * It does so only for input it fully understands. For anything else it DECLINES: it returns None
 * and the caller runs the Python path on the same list, which then gives the result or the exact
 * error message. Declining is always correct, so every check here asks "is this the plain
 * case?", never "what is wrong?", and one unusual span declines the whole request (it costs one
 * more pass, in Python, over a request that is rare by definition). Declined:
 *
 *   - any field of an unexpected JSON type; ids that are not 1-32 / 1-16 hex digits or are zero;
 *     times whose nanoseconds do not fit 64 bits;
 *   - addresses `ipaddress` rejects, and its rarer IPv6 forms (an IPv4 suffix, a scope id,
 *     IPv4-mapped, which Python >= 3.13 prints differently);
 *   - a non-ASCII `kind` or `otel.status_code` value (Python matches them after the Unicode-aware
 *     str.upper()); `otlp.link.0` (links need JSON parsing); annotation values that may carry
 *     attributes (`{...}` or containing '|'); both `otel.library.*` and `otel.scope.*` set to
 *     different values (the Python result then depends on set iteration order);
 *   - text that cannot be UTF-8 encoded (lone surrogates).
 *
 * Result: `(groups, order)`. `groups` lists `(resource_key, scope_key, rows)` in order of first
 * appearance, the keys built exactly as `RowBuilder._resource` / `_scope_for` build theirs, so the
 * caller makes one Resource, Scope and ResourceGroup per entry as RowBuilder would; `order[i]` is
 * the group index of the i-th span, for callers that want the spans in input order.
 *
 * The dictionaries are read with borrowed references and exact type checks only: nothing here
 * runs Python code that could mutate the input while it is being read.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

enum { FAIL = -1, OK = 0, DECLINE = 1 }; /* FAIL: a Python exception is set */

#define TRY(expr)                    \
    do {                             \
        int rc_ = (expr);            \
        if (rc_ != OK) return rc_;   \
    } while (0)

static PyObject *empty_str; /* "" */

/* ---- text ---------------------------------------------------------------------------------- */

typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Text;

/* A name known here, with its length (comparing names is the inner loop of every lookup). */
typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Name;
#define NAME(literal) {literal, sizeof(literal) - 1}

static int
eq(Text t, Name name)
{
    return t.len == name.len && memcmp(t.ptr, name.ptr, (size_t)name.len) == 0;
}

/* The UTF-8 of an exact str: ASCII text read in place (the usual case, no call), else the
   cached UTF-8 copy. Lone surrogates cannot be encoded: the Python path turns that into a
   DecodeError, so decline. */
static int
as_text(PyObject *str, Text *out)
{
    if (PyUnicode_IS_COMPACT_ASCII(str)) {
        out->ptr = (const char *)PyUnicode_DATA(str);
        out->len = PyUnicode_GET_LENGTH(str);
        return OK;
    }
    out->ptr = PyUnicode_AsUTF8AndSize(str, &out->len);
    if (out->ptr != NULL)
        return OK;
    if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear();
        return DECLINE;
    }
    return FAIL;
}

static int
is_ascii(Text t)
{
    for (Py_ssize_t i = 0; i < t.len; i++)
        if ((unsigned char)t.ptr[i] >= 0x80)
            return 0;
    return 1;
}

/* `t.upper() == name` for ASCII `t` (the caller declines non-ASCII text). */
static int
eq_upper(Text t, Name name)
{
    if (t.len != name.len)
        return 0;
    for (Py_ssize_t i = 0; i < t.len; i++) {
        char c = t.ptr[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c != name.ptr[i])
            return 0;
    }
    return 1;
}

/* ---- output buffer: one span's OTLP bytes, reused from span to span ----------------------- */

typedef struct {
    unsigned char *data;
    size_t len, cap;
} Buf;

/* Room for `need` more bytes; every writer below reserves first, then writes unchecked. */
static int
reserve(Buf *b, size_t need)
{
    if (b->cap - b->len >= need)
        return OK;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return FAIL;
        }
        cap *= 2;
    }
    unsigned char *data = PyMem_Realloc(b->data, cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return FAIL;
    }
    b->data = data;
    b->cap = cap;
    return OK;
}

static size_t
varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void
w_byte(Buf *b, unsigned char c)
{
    b->data[b->len++] = c;
}

static void
w_bytes(Buf *b, const void *p, size_t n)
{
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void
w_varint(Buf *b, uint64_t v)
{
    while (v >= 0x80) {
        w_byte(b, (unsigned char)(v | 0x80));
        v >>= 7;
    }
    w_byte(b, (unsigned char)v);
}

static void
w_fixed64(Buf *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w_byte(b, (unsigned char)(v >> (8 * i)));
}

/* A length-delimited field (otlp_bytes.field). */
static int
put_field(Buf *b, unsigned char tag, Text t)
{
    TRY(reserve(b, 11 + (size_t)t.len));
    w_byte(b, tag);
    w_varint(b, (uint64_t)t.len);
    w_bytes(b, t.ptr, (size_t)t.len);
    return OK;
}

/* Span field tags and the pieces of KeyValue / AnyValue, as in otlp_bytes. */
#define TAG_TRACE_STATE 0x1a
#define TAG_NAME 0x2a
#define TAG_KIND 0x30
#define TAG_START 0x39
#define TAG_END 0x41
#define TAG_ATTRIBUTE 0x4a
#define TAG_EVENT 0x5a
#define TAG_STATUS 0x7a
#define KV_KEY 0x0a
#define KV_VALUE 0x12
#define ANY_STRING 0x0a
#define ANY_BOOL 0x10
#define ANY_INT 0x18

/* A string-valued span attribute (otlp_bytes.string_attribute: the same bytes at any size). */
static int
put_string_attribute(Buf *b, Text key, Text value)
{
    size_t k = (size_t)key.len, v = (size_t)value.len;
    size_t any = 1 + varint_size(v) + v;
    size_t kv = 1 + varint_size(k) + k + 1 + varint_size(any) + any;
    TRY(reserve(b, 1 + varint_size(kv) + kv));
    w_byte(b, TAG_ATTRIBUTE);
    w_varint(b, kv);
    w_byte(b, KV_KEY);
    w_varint(b, k);
    w_bytes(b, key.ptr, k);
    w_byte(b, KV_VALUE);
    w_varint(b, any);
    w_byte(b, ANY_STRING);
    w_varint(b, v);
    w_bytes(b, value.ptr, v);
    return OK;
}

/* An int or bool span attribute (otlp_bytes.attribute): AnyValue holds one varint. */
static int
put_varint_attribute(Buf *b, Text key, unsigned char any_tag, uint64_t number)
{
    size_t k = (size_t)key.len;
    size_t any = 1 + varint_size(number);
    size_t kv = 1 + varint_size(k) + k + 1 + varint_size(any) + any;
    TRY(reserve(b, 1 + varint_size(kv) + kv));
    w_byte(b, TAG_ATTRIBUTE);
    w_varint(b, kv);
    w_byte(b, KV_KEY);
    w_varint(b, k);
    w_bytes(b, key.ptr, k);
    w_byte(b, KV_VALUE);
    w_varint(b, any);
    w_byte(b, any_tag);
    w_varint(b, number);
    return OK;
}

/* ---- field readers: absent and null are the same; any other type declines ------------------ */

/* The fields of each JSON object read here; a table's order is its F_* indexes. */
enum { F_TRACE_ID, F_ID, F_PARENT_ID, F_NAME, F_KIND, F_TIMESTAMP, F_DURATION, F_LOCAL,
       F_REMOTE, F_ANNOTATIONS, F_TAGS, F_DEBUG, F_SHARED, SPAN_FIELDS };
static const Name span_fields[SPAN_FIELDS] = {
    NAME("traceId"), NAME("id"), NAME("parentId"), NAME("name"), NAME("kind"),
    NAME("timestamp"), NAME("duration"), NAME("localEndpoint"), NAME("remoteEndpoint"),
    NAME("annotations"), NAME("tags"), NAME("debug"), NAME("shared"),
};
enum { F_SERVICE_NAME, F_IPV4, F_IPV6, F_PORT, ENDPOINT_FIELDS };
static const Name endpoint_fields[ENDPOINT_FIELDS] = {
    NAME("serviceName"), NAME("ipv4"), NAME("ipv6"), NAME("port"),
};
enum { F_VALUE, F_TIME, ANNOTATION_FIELDS };
static const Name annotation_fields[ANNOTATION_FIELDS] = {NAME("value"), NAME("timestamp")};

/* The named fields of a dict (borrowed; NULL when absent or null), in one pass over its items:
   orjson builds dicts with general keys, where each lookup by name would end in a string
   comparison, so a walk over ~10 items is cheaper than ~15 lookups. A non-str key declines (a
   str subclass could compare equal to a name). */
static int
read_fields(PyObject *doc, const Name *names, int count, PyObject **out)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    for (int i = 0; i < count; i++)
        out[i] = NULL;
    while (PyDict_Next(doc, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key))
            return DECLINE;
        if (!PyUnicode_IS_ASCII(key))
            continue; /* no field name is */
        Text k = {(const char *)PyUnicode_DATA(key), PyUnicode_GET_LENGTH(key)};
        for (int i = 0; i < count; i++) {
            if (eq(k, names[i])) {
                out[i] = value == Py_None ? NULL : value;
                break;
            }
        }
    }
    return OK;
}

static int
is_opt_str(PyObject *value)
{
    return value == NULL || PyUnicode_CheckExact(value);
}

/* An exact int in 0..2**64-1 (not a bool, not a float), 0 when absent. */
static int
u64_value(PyObject *value, uint64_t *out)
{
    *out = 0;
    if (value == NULL)
        return OK;
    if (!PyLong_CheckExact(value))
        return DECLINE;
    int overflow;
    long long small = PyLong_AsLongLongAndOverflow(value, &overflow); /* the quick call */
    if (small == -1 && PyErr_Occurred())
        return FAIL;
    if (!overflow) {
        if (small < 0)
            return DECLINE;
        *out = (uint64_t)small;
        return OK;
    }
    unsigned long long n = PyLong_AsUnsignedLongLong(value); /* 2**63 and up, or negative */
    if (n == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return FAIL;
        PyErr_Clear(); /* out of range: an error on the Python path */
        return DECLINE;
    }
    *out = (uint64_t)n;
    return OK;
}

/* ---- ids ----------------------------------------------------------------------------------- */

/* Hex digit values, -1 for every other byte; filled at module init. */
static signed char hex_values[256];

static void
init_hex_values(void)
{
    memset(hex_values, -1, sizeof hex_values);
    for (int i = 0; i < 10; i++)
        hex_values['0' + i] = (signed char)i;
    for (int i = 0; i < 6; i++) {
        hex_values['a' + i] = (signed char)(10 + i);
        hex_values['A' + i] = (signed char)(10 + i);
    }
}

static int
hex_digit(unsigned char c)
{
    return hex_values[c];
}

/* 1 to 2*size hex digits (either case) into `size` bytes, zero-padded on the left as
   model.ids.parse_*_id pads them; 0 when the text is anything else. */
static int
parse_hex_id(Text t, unsigned char *out, size_t size)
{
    if (t.len < 1 || (size_t)t.len > 2 * size)
        return 0;
    const unsigned char *p = (const unsigned char *)t.ptr;
    size_t n = (size_t)t.len, pad = 2 * size - n, at = pad / 2;
    memset(out, 0, at);
    int bad = 0;
    if (pad % 2) { /* an odd digit count: the first digit is a low nibble */
        bad |= hex_values[*p];
        out[at++] = (unsigned char)(hex_values[*p++] & 0x0f);
        n--;
    }
    for (; n > 0; n -= 2, p += 2) { /* two digits a byte; any -1 makes `bad` negative */
        bad |= hex_values[p[0]] | hex_values[p[1]];
        out[at++] = (unsigned char)((hex_values[p[0]] & 0x0f) << 4 | (hex_values[p[1]] & 0x0f));
    }
    return bad >= 0;
}

static int
all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* ---- addresses ----------------------------------------------------------------------------- */

/* ipaddress.IPv4Address's rules: four 1-3 digit decimal octets <= 255, no leading zeros. A valid
   address is already in canonical form, so the text is used as is. */
static int
valid_ipv4(Text t)
{
    Py_ssize_t i = 0;
    for (int octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (i >= t.len || t.ptr[i] != '.')
                return 0;
            i++;
        }
        Py_ssize_t start = i;
        int value = 0;
        while (i < t.len && t.ptr[i] >= '0' && t.ptr[i] <= '9' && i - start < 4) {
            value = value * 10 + (t.ptr[i] - '0');
            i++;
        }
        Py_ssize_t digits = i - start;
        if (digits < 1 || digits > 3 || value > 255 || (digits > 1 && t.ptr[start] == '0'))
            return 0;
    }
    return i == t.len;
}

/* One hextet: 1-4 hex digits. */
static int
parse_hextet(const char *p, Py_ssize_t n, unsigned *out)
{
    if (n < 1 || n > 4)
        return 0;
    unsigned v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int d = hex_digit((unsigned char)p[i]);
        if (d < 0)
            return 0;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 1;
}

/* ipaddress.IPv6Address._ip_int_from_string, for text made of hex digits and colons only (an
   IPv4 suffix or a scope id declines), step for step so that exactly the same texts pass. */
static int
parse_ipv6(Text t, unsigned h[8])
{
    enum { MAX_PARTS = 9 };
    const char *start[MAX_PARTS];
    Py_ssize_t len[MAX_PARTS];
    int parts = 0;
    if (t.len < 1 || t.len > 45) /* 9 parts of <= 4 digits and 8 colons at most */
        return 0;
    Py_ssize_t from = 0;
    for (Py_ssize_t i = 0; i <= t.len; i++) {
        if (i < t.len && t.ptr[i] != ':') {
            if (hex_digit((unsigned char)t.ptr[i]) < 0)
                return 0;
            continue;
        }
        if (parts == MAX_PARTS)
            return 0;
        start[parts] = t.ptr + from;
        len[parts] = i - from;
        parts++;
        from = i + 1;
    }
    if (parts < 3)
        return 0;
    int skip = -1;
    for (int i = 1; i < parts - 1; i++) {
        if (len[i] == 0) {
            if (skip >= 0)
                return 0;
            skip = i;
        }
    }
    int hi, lo;
    if (skip >= 0) {
        hi = skip;
        lo = parts - skip - 1;
        if (len[0] == 0 && --hi)
            return 0;
        if (len[parts - 1] == 0 && --lo)
            return 0;
        if (8 - (hi + lo) < 1)
            return 0;
    } else {
        if (parts != 8 || len[0] == 0 || len[parts - 1] == 0)
            return 0;
        hi = parts;
        lo = 0;
    }
    for (int i = 0; i < 8; i++)
        h[i] = 0;
    for (int i = 0; i < hi; i++)
        if (!parse_hextet(start[i], len[i], &h[i]))
            return 0;
    for (int i = 0; i < lo; i++)
        if (!parse_hextet(start[parts - lo + i], len[parts - lo + i], &h[8 - lo + i]))
            return 0;
    return 1;
}

/* str(IPv6Address): lowercase hextets without leading zeros, the first longest run of two or
   more zero hextets written as "::". `out` holds at least 40 bytes; returns the length. */
static Py_ssize_t
format_ipv6(const unsigned h[8], char *out)
{
    int best = -1, best_len = 0;
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && h[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    if (best_len < 2)
        best = -1;
    char *p = out;
    for (int i = 0; i < 8; i++) {
        if (i == best) {
            p += sprintf(p, "::");
            i += best_len - 1;
            continue;
        }
        if (i > 0 && i != best + best_len)
            *p++ = ':';
        p += sprintf(p, "%x", h[i]);
    }
    return p - out;
}

/* ---- endpoints ----------------------------------------------------------------------------- */

typedef struct {
    PyObject *service; /* borrowed non-empty str, or NULL */
    Text ip;           /* canonical IPv6 (in ip6) if given, else the IPv4 text; len 0 if none */
    long port;         /* 0..65535 */
    char ip6[48];
} Endpoint;

/* zipkin_json._endpoint: `*present` is 0 for an absent or all-empty endpoint (Python's None). */
static int
read_endpoint(PyObject *value, Endpoint *ep, int *present)
{
    PyObject *f[ENDPOINT_FIELDS];
    memset(ep, 0, sizeof *ep);
    *present = 0;
    if (value == NULL)
        return OK;
    if (!PyDict_CheckExact(value))
        return DECLINE;
    TRY(read_fields(value, endpoint_fields, ENDPOINT_FIELDS, f));
    PyObject *service = f[F_SERVICE_NAME], *ipv4 = f[F_IPV4], *ipv6 = f[F_IPV6], *port = f[F_PORT];
    if (!is_opt_str(service) || !is_opt_str(ipv4) || !is_opt_str(ipv6))
        return DECLINE;
    if (service != NULL && PyUnicode_GET_LENGTH(service) > 0)
        ep->service = service;
    if (ipv4 != NULL && PyUnicode_GET_LENGTH(ipv4) > 0) {
        Text t;
        TRY(as_text(ipv4, &t));
        if (!valid_ipv4(t))
            return DECLINE;
        ep->ip = t;
    }
    if (ipv6 != NULL && PyUnicode_GET_LENGTH(ipv6) > 0) { /* wins over ipv4, both checked */
        Text t;
        unsigned h[8];
        TRY(as_text(ipv6, &t));
        if (!parse_ipv6(t, h))
            return DECLINE;
        if (h[0] == 0 && h[1] == 0 && h[2] == 0 && h[3] == 0 && h[4] == 0 && h[5] == 0xffff)
            return DECLINE; /* IPv4-mapped: printed as ::ffff:a.b.c.d since Python 3.13 */
        ep->ip.len = format_ipv6(h, ep->ip6);
        ep->ip.ptr = ep->ip6;
    }
    if (port != NULL) {
        if (!PyLong_CheckExact(port))
            return DECLINE;
        int overflow;
        long n = PyLong_AsLongAndOverflow(port, &overflow);
        if (n == -1 && PyErr_Occurred())
            return FAIL;
        if (overflow || n < 0 || n > 0xFFFF)
            return DECLINE;
        ep->port = n;
    }
    *present = ep->service != NULL || ep->ip.len > 0 || ep->port > 0;
    return OK;
}

/* The endpoints' attributes in zipkin_model._put_endpoints's order. */
enum { E_HOST_IP, E_HOST_PORT, E_PEER_SERVICE, E_PEER_IP, E_PEER_PORT, E_COUNT };
static const Name endpoint_keys[E_COUNT] = {
    NAME("net.host.ip"), NAME("net.host.port"), NAME("peer.service"), NAME("net.peer.ip"),
    NAME("net.peer.port"),
};

typedef struct {
    int set;
    Text text;     /* a string value */
    long number;   /* a port */
    int is_number;
} EndpointAttr;

static int
endpoint_attributes(const Endpoint *local, int has_local, const Endpoint *remote,
                    int has_remote, EndpointAttr out[E_COUNT])
{
    memset(out, 0, sizeof(EndpointAttr) * E_COUNT);
    if (has_local) {
        if (local->ip.len > 0)
            out[E_HOST_IP] = (EndpointAttr){1, local->ip, 0, 0};
        if (local->port > 0)
            out[E_HOST_PORT] = (EndpointAttr){1, {NULL, 0}, local->port, 1};
    }
    if (has_remote) {
        if (remote->service != NULL) {
            Text t;
            TRY(as_text(remote->service, &t));
            out[E_PEER_SERVICE] = (EndpointAttr){1, t, 0, 0};
        }
        if (remote->ip.len > 0)
            out[E_PEER_IP] = (EndpointAttr){1, remote->ip, 0, 0};
        if (remote->port > 0)
            out[E_PEER_PORT] = (EndpointAttr){1, {NULL, 0}, remote->port, 1};
    }
    return OK;
}

static int
put_endpoint_attribute(Buf *b, int which, const EndpointAttr *attr)
{
    Text key = {endpoint_keys[which].ptr, endpoint_keys[which].len};
    if (attr->is_number)
        return put_varint_attribute(b, key, ANY_INT, (uint64_t)attr->number);
    return put_string_attribute(b, key, attr->text);
}

/* ---- special tags (zipkin_model._SPECIAL_KEYS) --------------------------------------------- */

enum TagClass {
    T_PLAIN, T_RESOURCE, T_SOURCE, T_TRACE_STATE, T_STATUS_CODE, T_STATUS_DESCRIPTION, T_ERROR,
    T_SPAN_KIND, T_LINK, T_LIBRARY_NAME, T_SCOPE_NAME, T_LIBRARY_VERSION, T_SCOPE_VERSION,
    T_ENDPOINT, /* + E_* index */
};

static const struct {
    Name name;
    int cls;
} special_names[] = {
    {NAME("otlp.service.name.source"), T_SOURCE},
    {NAME("w3c.tracestate"), T_TRACE_STATE},
    {NAME("otel.status_code"), T_STATUS_CODE},
    {NAME("otel.status_description"), T_STATUS_DESCRIPTION},
    {NAME("error"), T_ERROR},
    {NAME("span.kind"), T_SPAN_KIND},
    {NAME("otlp.link.0"), T_LINK},
    {NAME("otel.library.name"), T_LIBRARY_NAME},
    {NAME("otel.scope.name"), T_SCOPE_NAME},
    {NAME("otel.library.version"), T_LIBRARY_VERSION},
    {NAME("otel.scope.version"), T_SCOPE_VERSION},
};

typedef struct {
    PyObject *special;   /* frozenset: every tag key the mapping treats specially */
    PyObject *resource;  /* frozenset: the keys that move to the resource */
} KeySets;

/* Which special tag `key` is: one set lookup for the usual plain key (its hash is cached in the
   str), then a name comparison. A key in the special set that is known here neither by name nor
   as a resource key means the Python side grew a rule this file lacks: decline. */
static int
classify(const KeySets *sets, PyObject *key, Text text, int *cls)
{
    int found = PySet_Contains(sets->special, key);
    if (found < 0)
        return FAIL;
    *cls = T_PLAIN;
    if (!found)
        return OK;
    for (size_t i = 0; i < sizeof special_names / sizeof special_names[0]; i++) {
        if (eq(text, special_names[i].name)) {
            *cls = special_names[i].cls;
            return OK;
        }
    }
    for (int i = 0; i < E_COUNT; i++) {
        if (eq(text, endpoint_keys[i])) {
            *cls = T_ENDPOINT + i;
            return OK;
        }
    }
    found = PySet_Contains(sets->resource, key);
    if (found < 0)
        return FAIL;
    *cls = T_RESOURCE;
    return found ? OK : DECLINE;
}

/* ---- one span ------------------------------------------------------------------------------ */

typedef struct {
    unsigned char trace_id[16], span_id[8], parent_id[8];
    int has_parent;
    PyObject *name;        /* borrowed str */
    int kind;              /* SpanKind value */
    uint64_t timestamp_us, start_ns, end_ns;
    Endpoint local, remote;
    int has_local, has_remote;
    PyObject *annotations; /* borrowed list, or NULL */
    PyObject *tags;        /* borrowed dict, or NULL */
    /* what the special tags say (_SpecialFields, RowBuilder._resource / _scope) */
    int any_special, has_resource_tags, drop_span_kind, drop_status_description, drop_error;
    PyObject *source, *scope_name, *scope_version; /* borrowed str, or NULL */
    Text trace_state, status_message;
    int status_code;
} Span;

static int
read_id(PyObject *value, unsigned char *out, size_t size)
{
    Text t;
    TRY(as_text(value, &t));
    if (!parse_hex_id(t, out, size) || all_zero(out, size))
        return DECLINE;
    return OK;
}

/* A parent id: none when empty or all zeros (of any length, as parse_ids allows). */
static int
read_parent(PyObject *value, Span *s)
{
    s->has_parent = 0;
    if (value == NULL || PyUnicode_GET_LENGTH(value) == 0)
        return OK;
    Text t;
    TRY(as_text(value, &t));
    Py_ssize_t i = 0;
    while (i < t.len && t.ptr[i] == '0')
        i++;
    if (i == t.len)
        return OK;
    if (!parse_hex_id(t, s->parent_id, 8))
        return DECLINE;
    s->has_parent = memcmp(s->parent_id, s->span_id, 8) != 0; /* its own parent: none */
    return OK;
}

/* zipkin_json: exact KINDS names first, then str.upper(), anything else unspecified. */
static int
read_kind(PyObject *value, int *kind)
{
    static const struct {
        Name name;
        int kind;
    } kinds[] = {
        {NAME("SERVER"), 2}, {NAME("CLIENT"), 3}, {NAME("PRODUCER"), 4}, {NAME("CONSUMER"), 5},
    };
    *kind = 0;
    if (value == NULL)
        return OK;
    Text t;
    TRY(as_text(value, &t));
    if (!is_ascii(t))
        return DECLINE;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (eq_upper(t, kinds[i].name)) {
            *kind = kinds[i].kind;
            break;
        }
    }
    return OK;
}

/* `name = name or value` over two candidate tags, as RowBuilder._scope does; the result would
   depend on set iteration order when both are set and differ. */
static int
scope_part(PyObject *a, PyObject *b, PyObject **out)
{
    int a_set = a != NULL && PyUnicode_GET_LENGTH(a) > 0;
    int b_set = b != NULL && PyUnicode_GET_LENGTH(b) > 0;
    if (a_set && b_set) {
        int same = PyUnicode_Compare(a, b);
        if (same == -1 && PyErr_Occurred())
            return FAIL;
        if (same != 0)
            return DECLINE;
    }
    *out = a_set ? a : b_set ? b : NULL;
    return OK;
}

static int
status_from_name(Text t, int *code)
{
    static const struct {
        Name name;
        int code;
    } codes[] = {
        {NAME("STATUS_CODE_UNSET"), 0}, {NAME("STATUS_CODE_OK"), 1},
        {NAME("STATUS_CODE_ERROR"), 2}, {NAME("UNSET"), 0}, {NAME("OK"), 1}, {NAME("ERROR"), 2},
    };
    if (!is_ascii(t))
        return DECLINE;
    *code = 0;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (eq_upper(t, codes[i].name)) {
            *code = codes[i].code;
            break;
        }
    }
    return OK;
}

/* First pass over the tags: types checked, special tags read (_SpecialFields.take). */
static int
read_tags(const KeySets *sets, Span *s)
{
    PyObject *key, *value, *status_code = NULL, *status_description = NULL, *error = NULL;
    PyObject *span_kind = NULL, *library_name = NULL, *scope_name = NULL;
    PyObject *library_version = NULL, *scope_version = NULL;
    Py_ssize_t pos = 0;
    while (PyDict_Next(s->tags, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_CheckExact(value))
            return DECLINE;
        Text text;
        int cls;
        TRY(as_text(key, &text));
        TRY(classify(sets, key, text, &cls));
        if (cls == T_PLAIN)
            continue;
        s->any_special = 1;
        switch (cls) {
        case T_RESOURCE: s->has_resource_tags = 1; break;
        case T_SOURCE: s->source = value; break;
        case T_TRACE_STATE: TRY(as_text(value, &s->trace_state)); break;
        case T_STATUS_CODE: status_code = value; break;
        case T_STATUS_DESCRIPTION: status_description = value; break;
        case T_ERROR: error = value; break;
        case T_SPAN_KIND: span_kind = value; break;
        case T_LINK: return DECLINE;
        case T_LIBRARY_NAME: library_name = value; break;
        case T_SCOPE_NAME: scope_name = value; break;
        case T_LIBRARY_VERSION: library_version = value; break;
        case T_SCOPE_VERSION: scope_version = value; break;
        default: break; /* endpoint keys: replaced in place when written */
        }
    }
    if (!s->any_special)
        return OK;
    TRY(scope_part(library_name, scope_name, &s->scope_name));
    TRY(scope_part(library_version, scope_version, &s->scope_version));
    if (span_kind != NULL && s->kind == 0) {
        s->drop_span_kind = 1;
        if (PyUnicode_CompareWithASCIIString(span_kind, "internal") == 0)
            s->kind = 1;
    }
    if (status_code != NULL) {
        Text t;
        TRY(as_text(status_code, &t));
        TRY(status_from_name(t, &s->status_code));
        if (status_description != NULL) {
            s->drop_status_description = 1;
            TRY(as_text(status_description, &s->status_message));
        }
    }
    if (error != NULL) {
        s->status_code = 2;
        if (PyUnicode_CompareWithASCIIString(error, "true") == 0)
            s->drop_error = 1;
        else if (PyUnicode_GET_LENGTH(error) > 0 && s->status_message.len == 0)
            TRY(as_text(error, &s->status_message));
    }
    return OK;
}

/* zipkin_json._add_v2's checks, the usual case only. */
static int
read_span(PyObject *doc, const KeySets *sets, Span *s)
{
    PyObject *f[SPAN_FIELDS];
    memset(s, 0, sizeof *s);
    if (!PyDict_CheckExact(doc))
        return DECLINE;
    TRY(read_fields(doc, span_fields, SPAN_FIELDS, f));
    if (f[F_TRACE_ID] == NULL || f[F_ID] == NULL || !PyUnicode_CheckExact(f[F_TRACE_ID]) ||
        !PyUnicode_CheckExact(f[F_ID]) || !is_opt_str(f[F_PARENT_ID]) ||
        !is_opt_str(f[F_NAME]) || !is_opt_str(f[F_KIND]))
        return DECLINE;
    TRY(read_id(f[F_TRACE_ID], s->trace_id, 16));
    TRY(read_id(f[F_ID], s->span_id, 8));
    TRY(read_parent(f[F_PARENT_ID], s));
    s->name = f[F_NAME] != NULL ? f[F_NAME] : empty_str;
    TRY(read_kind(f[F_KIND], &s->kind));
    uint64_t duration_us;
    TRY(u64_value(f[F_TIMESTAMP], &s->timestamp_us));
    TRY(u64_value(f[F_DURATION], &duration_us));
    /* RowBuilder.add refuses an end past 2**64-1 ns; any overflow here means that. */
    if (s->timestamp_us > UINT64_MAX / 1000 || duration_us > UINT64_MAX / 1000)
        return DECLINE;
    s->start_ns = s->timestamp_us * 1000;
    if (duration_us * 1000 > UINT64_MAX - s->start_ns)
        return DECLINE;
    s->end_ns = s->start_ns + duration_us * 1000;
    TRY(read_endpoint(f[F_LOCAL], &s->local, &s->has_local));
    TRY(read_endpoint(f[F_REMOTE], &s->remote, &s->has_remote));
    s->annotations = f[F_ANNOTATIONS];
    if (s->annotations != NULL && !PyList_CheckExact(s->annotations))
        return DECLINE;
    s->tags = f[F_TAGS];
    if (s->tags != NULL) {
        if (!PyDict_CheckExact(s->tags))
            return DECLINE;
        TRY(read_tags(sets, s));
    }
    for (int i = F_DEBUG; i <= F_SHARED; i++) /* checked, not kept */
        if (f[i] != NULL && !PyBool_Check(f[i]))
            return DECLINE;
    return OK;
}

/* ---- one span's OTLP bytes (RowBuilder._encode) -------------------------------------------- */

static int
put_head(Buf *b, const Span *s)
{
    Text name;
    TRY(as_text(s->name, &name));
    TRY(reserve(b, 2 + 16 + 2 + 8 + 2 + 8 + 2 + 9 + 9));
    w_bytes(b, "\x0a\x10", 2);
    w_bytes(b, s->trace_id, 16);
    w_bytes(b, "\x12\x08", 2);
    w_bytes(b, s->span_id, 8);
    if (s->has_parent) {
        w_bytes(b, "\x22\x08", 2);
        w_bytes(b, s->parent_id, 8);
    }
    if (s->trace_state.len > 0)
        TRY(put_field(b, TAG_TRACE_STATE, s->trace_state));
    if (name.len > 0)
        TRY(put_field(b, TAG_NAME, name));
    TRY(reserve(b, 2 + 9 + 9));
    if (s->kind) {
        w_byte(b, TAG_KIND);
        w_byte(b, (unsigned char)s->kind);
    }
    if (s->start_ns) {
        w_byte(b, TAG_START);
        w_fixed64(b, s->start_ns);
    }
    if (s->end_ns) {
        w_byte(b, TAG_END);
        w_fixed64(b, s->end_ns);
    }
    return OK;
}

/* Is this tag written as an attribute, or taken by the resource, scope or status? */
static int
tag_kept(const Span *s, int cls)
{
    switch (cls) {
    case T_RESOURCE: case T_SOURCE: case T_TRACE_STATE: case T_STATUS_CODE:
    case T_LIBRARY_NAME: case T_SCOPE_NAME: case T_LIBRARY_VERSION: case T_SCOPE_VERSION:
        return 0;
    case T_SPAN_KIND: return !s->drop_span_kind;
    case T_STATUS_DESCRIPTION: return !s->drop_status_description;
    case T_ERROR: return !s->drop_error;
    default: return 1;
    }
}

/* The tags in their order, then the endpoints' attributes. An endpoint attribute whose key is
   also a tag takes that tag's place, as _put_endpoints assigning into the tags dict does. */
static int
put_attributes(Buf *b, const KeySets *sets, const Span *s)
{
    EndpointAttr endpoints[E_COUNT];
    TRY(endpoint_attributes(&s->local, s->has_local, &s->remote, s->has_remote, endpoints));
    if (s->tags != NULL) {
        PyObject *key, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(s->tags, &pos, &key, &value)) {
            Text k, v;
            int cls = T_PLAIN;
            TRY(as_text(key, &k));
            if (s->any_special)
                TRY(classify(sets, key, k, &cls));
            if (cls >= T_ENDPOINT && endpoints[cls - T_ENDPOINT].set) {
                TRY(put_endpoint_attribute(b, cls - T_ENDPOINT, &endpoints[cls - T_ENDPOINT]));
                endpoints[cls - T_ENDPOINT].set = 0;
                continue;
            }
            if (!tag_kept(s, cls))
                continue;
            TRY(as_text(value, &v));
            TRY(put_string_attribute(b, k, v));
        }
    }
    for (int i = 0; i < E_COUNT; i++)
        if (endpoints[i].set)
            TRY(put_endpoint_attribute(b, i, &endpoints[i]));
    if (s->timestamp_us == 0) { /* START_TIME_ABSENT = True */
        static const char name[] = "otel.zipkin.absentField.startTime";
        Text key = {name, sizeof name - 1};
        TRY(put_varint_attribute(b, key, ANY_BOOL, 1));
    }
    return OK;
}

/* Annotations as events (event_from_annotation's plain-name case; otlp_bytes.event). */
static int
put_events(Buf *b, const Span *s)
{
    if (s->annotations == NULL)
        return OK;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(s->annotations); i++) {
        PyObject *item = PyList_GET_ITEM(s->annotations, i), *f[ANNOTATION_FIELDS];
        if (!PyDict_CheckExact(item))
            return DECLINE;
        TRY(read_fields(item, annotation_fields, ANNOTATION_FIELDS, f));
        PyObject *value = f[F_VALUE];
        if (value == NULL || !PyUnicode_CheckExact(value))
            return DECLINE;
        uint64_t time_us;
        TRY(u64_value(f[F_TIME], &time_us));
        if (time_us > UINT64_MAX / 1000)
            return DECLINE;
        Text name;
        TRY(as_text(value, &name));
        if (name.len > 0 && ((name.ptr[0] == '{' && name.ptr[name.len - 1] == '}') ||
                             memchr(name.ptr, '|', (size_t)name.len) != NULL))
            return DECLINE; /* may carry attributes */
        size_t body = (time_us ? 9 : 0) + (name.len ? 1 + varint_size((size_t)name.len) : 0) +
                      (size_t)name.len;
        TRY(reserve(b, 1 + varint_size(body) + body));
        w_byte(b, TAG_EVENT);
        w_varint(b, body);
        if (time_us) {
            w_byte(b, 0x09);
            w_fixed64(b, time_us * 1000);
        }
        if (name.len) {
            w_byte(b, 0x12);
            w_varint(b, (size_t)name.len);
            w_bytes(b, name.ptr, (size_t)name.len);
        }
    }
    return OK;
}

static int
put_status(Buf *b, const Span *s)
{
    if (s->status_code == 0 && s->status_message.len == 0)
        return OK;
    size_t m = (size_t)s->status_message.len;
    size_t body = (m ? 1 + varint_size(m) + m : 0) + (s->status_code ? 2 : 0);
    TRY(reserve(b, 1 + varint_size(body) + body));
    w_byte(b, TAG_STATUS);
    w_varint(b, body);
    if (m) {
        w_byte(b, 0x12);
        w_varint(b, m);
        w_bytes(b, s->status_message.ptr, m);
    }
    if (s->status_code) {
        w_byte(b, 0x18);
        w_byte(b, (unsigned char)s->status_code);
    }
    return OK;
}

static int
encode_span(Buf *b, const KeySets *sets, const Span *s)
{
    b->len = 0;
    TRY(put_head(b, s));
    TRY(put_attributes(b, sets, s));
    TRY(put_events(b, s));
    return put_status(b, s);
}

/* ---- rows and groups ----------------------------------------------------------------------- */

/* A SpanRow (a tuple subclass: allocated and filled as tuple.__new__ does). */
static PyObject *
new_row(PyTypeObject *row_type, const Span *s, const Buf *raw)
{
    PyObject *row = row_type->tp_alloc(row_type, 9);
    if (row == NULL)
        return NULL;
    PyObject *items[9] = {
        PyBytes_FromStringAndSize((const char *)s->trace_id, 16),
        PyBytes_FromStringAndSize((const char *)s->span_id, 8),
        PyBytes_FromStringAndSize((const char *)s->parent_id, s->has_parent ? 8 : 0),
        Py_NewRef(s->name),
        PyLong_FromLong(s->kind),
        PyLong_FromUnsignedLongLong(s->start_ns),
        PyLong_FromUnsignedLongLong(s->end_ns),
        PyLong_FromLong(s->status_code),
        PyBytes_FromStringAndSize((const char *)raw->data, (Py_ssize_t)raw->len),
    };
    int failed = 0;
    for (int i = 0; i < 9; i++) {
        failed |= items[i] == NULL;
        PyTuple_SET_ITEM(row, i, items[i]); /* NULLs are fine: tuple dealloc skips them */
    }
    if (failed) {
        Py_DECREF(row);
        return NULL;
    }
    /* Only bytes, str and int inside: the row can never be part of a reference cycle, so the
       collector need not traverse it (it untracks such plain tuples itself, not subclasses). */
    PyObject_GC_UnTrack(row);
    return row;
}

/* RowBuilder._resource's key: (service,) or (service, source, *sorted(moved tags)). */
static PyObject *
resource_key(const KeySets *sets, const Span *s, PyObject *service)
{
    PyObject *moved = PyList_New(0), *key = NULL;
    if (moved == NULL)
        return NULL;
    if (s->has_resource_tags) {
        PyObject *tag, *value;
        Py_ssize_t pos = 0;
        while (PyDict_Next(s->tags, &pos, &tag, &value)) {
            int found = PySet_Contains(sets->resource, tag);
            if (found < 0)
                goto done;
            if (!found)
                continue;
            PyObject *pair = PyTuple_Pack(2, tag, value);
            if (pair == NULL || PyList_Append(moved, pair) < 0) {
                Py_XDECREF(pair);
                goto done;
            }
            Py_DECREF(pair);
        }
        if (PyList_Sort(moved) < 0) /* (str, str) pairs with unique keys: no Python code runs */
            goto done;
    }
    PyObject *source = s->source != NULL ? s->source : empty_str;
    Py_ssize_t n = PyList_GET_SIZE(moved);
    int long_form = n > 0 || PyUnicode_GET_LENGTH(source) > 0;
    key = PyTuple_New(long_form ? 2 + n : 1);
    if (key == NULL)
        goto done;
    PyTuple_SET_ITEM(key, 0, Py_NewRef(service));
    if (long_form) {
        PyTuple_SET_ITEM(key, 1, Py_NewRef(source));
        for (Py_ssize_t i = 0; i < n; i++)
            PyTuple_SET_ITEM(key, 2 + i, Py_NewRef(PyList_GET_ITEM(moved, i)));
    }
done:
    Py_DECREF(moved);
    return key;
}

typedef struct {
    PyObject *groups; /* list of (resource_key, scope_key, rows) */
    PyObject *index;  /* group key -> position in groups */
    PyObject *order;  /* group position of each span */
} Groups;

/* The rows list of the span's group, created on first use. The plain case (resource (service,),
   scope ("", "")) is keyed by the service str alone, to skip building two tuples per span;
   every other group by (resource_key, scope_key), which can never equal a str. */
static PyObject *
group_rows(Groups *g, const KeySets *sets, const Span *s)
{
    PyObject *service = s->has_local && s->local.service != NULL ? s->local.service : empty_str;
    PyObject *scope_name = s->scope_name != NULL ? s->scope_name : empty_str;
    PyObject *scope_version = s->scope_version != NULL ? s->scope_version : empty_str;
    PyObject *resource = NULL, *scope = NULL, *key = NULL, *rows = NULL, *position = NULL;
    int plain = !s->has_resource_tags && (s->source == NULL || PyUnicode_GET_LENGTH(s->source) == 0)
                && scope_name == empty_str && scope_version == empty_str;
    if (plain) {
        key = Py_NewRef(service);
    } else {
        resource = resource_key(sets, s, service);
        scope = resource ? PyTuple_Pack(2, scope_name, scope_version) : NULL;
        key = scope ? PyTuple_Pack(2, resource, scope) : NULL;
        if (key == NULL)
            goto done;
    }
    position = PyDict_GetItemWithError(g->index, key);
    if (position != NULL) {
        Py_INCREF(position);
        PyObject *group = PyList_GET_ITEM(g->groups, PyLong_AsSsize_t(position));
        rows = PyTuple_GET_ITEM(group, 2);
    } else if (!PyErr_Occurred()) {
        if (plain) {
            resource = PyTuple_Pack(1, service);
            scope = resource ? PyTuple_Pack(2, empty_str, empty_str) : NULL;
        }
        PyObject *new_rows = scope ? PyList_New(0) : NULL;
        PyObject *group = new_rows ? PyTuple_Pack(3, resource, scope, new_rows) : NULL;
        Py_XDECREF(new_rows);
        position = group ? PyLong_FromSsize_t(PyList_GET_SIZE(g->groups)) : NULL;
        if (position == NULL || PyList_Append(g->groups, group) < 0 ||
            PyDict_SetItem(g->index, key, position) < 0) {
            Py_XDECREF(group);
            goto done;
        }
        rows = new_rows; /* kept alive by the group, now in g->groups */
        Py_DECREF(group);
    }
    if (rows != NULL && PyList_Append(g->order, position) < 0)
        rows = NULL;
done:
    Py_XDECREF(position);
    Py_XDECREF(key);
    Py_XDECREF(resource);
    Py_XDECREF(scope);
    return rows; /* borrowed */
}

/* ---- entry point --------------------------------------------------------------------------- */

PyDoc_STRVAR(rows_from_v2_doc,
"rows_from_v2(spans, row_type, special_keys, resource_keys, /)\n--\n\n"
"Storage rows for a list of parsed Zipkin v2 spans: (groups, order) as described in the\n"
"module source, or None when any span needs the Python path.");

static PyObject *
rows_from_v2(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "rows_from_v2 takes 4 arguments");
        return NULL;
    }
    PyObject *spans = args[0];
    KeySets sets = {args[2], args[3]};
    if (!PyList_Check(spans) || !PyType_Check(args[1]) ||
        !PyType_IsSubtype((PyTypeObject *)args[1], &PyTuple_Type) ||
        !PyAnySet_Check(sets.special) || !PyAnySet_Check(sets.resource)) {
        PyErr_SetString(PyExc_TypeError,
                        "rows_from_v2(list, tuple subclass, frozenset, frozenset)");
        return NULL;
    }
    PyTypeObject *row_type = (PyTypeObject *)args[1];
    Groups g = {PyList_New(0), PyDict_New(), PyList_New(0)};
    Buf raw = {NULL, 0, 0};
    PyObject *result = NULL;
    int rc = g.groups && g.index && g.order ? OK : FAIL;
    for (Py_ssize_t i = 0; rc == OK && i < PyList_GET_SIZE(spans); i++) {
        Span s;
        rc = read_span(PyList_GET_ITEM(spans, i), &sets, &s);
        if (rc == OK)
            rc = encode_span(&raw, &sets, &s);
        if (rc != OK)
            break;
        PyObject *rows = group_rows(&g, &sets, &s);
        PyObject *row = rows ? new_row(row_type, &s, &raw) : NULL;
        if (row == NULL || PyList_Append(rows, row) < 0)
            rc = FAIL;
        Py_XDECREF(row);
    }
    if (rc == OK)
        result = PyTuple_Pack(2, g.groups, g.order);
    else if (rc == DECLINE)
        result = Py_NewRef(Py_None);
    PyMem_Free(raw.data);
    Py_XDECREF(g.groups);
    Py_XDECREF(g.index);
    Py_XDECREF(g.order);
    return result;
}

static PyMethodDef methods[] = {
    {"rows_from_v2", (PyCFunction)(void (*)(void))rows_from_v2, METH_FASTCALL, rows_from_v2_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tracemesh.accel._zipkin_json",
    "C fast path for Zipkin v2 JSON ingest (see tracemesh.codecs.zipkin_json).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__zipkin_json(void)
{
    init_hex_values();
    if (empty_str == NULL && (empty_str = PyUnicode_FromStringAndSize("", 0)) == NULL)
        return NULL;
    return PyModule_Create(&module);
}
