/*
 * The tag index of a disk block, computed from the stored OTLP Span bytes: the C fast path of
 * `tracemesh.storage.disk.tags.tag_hashes`, which is the reference and must give the same bytes.
 *
 * For every record batch of `batch_rows` spans: the 32-bit hashes of each `key=value` of the
 * span attributes, event attributes and link attributes (values in their search text form:
 * strings as they are, bools `true`/`false`, ints in decimal), each once, in order of first
 * appearance. A value
 * whose text form is not computed here (double, bytes, array, kvlist, unset, or a KeyValue with
 * its value field repeated, which protobuf merges) adds the hash of the key alone, meaning "any
 * value". A span whose structure cannot be read (bad varint, length past the end, a group, a known
 * message field with the wrong wire type) marks its batch unindexed: searches read it.
 *
 * Every read is bounds-checked: for any bytes the result is an index or an unindexed mark, never
 * a crash.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SEED_PAIR 0x243F6A8885A308D3ULL
#define SEED_KEY 0x13198A2E03707344ULL
#define K_LEN 0x9E3779B97F4A7C15ULL
#define K_WORD 0xFF51AFD7ED558CCDULL
#define K_FINAL 0xC4CEB9FE1A85EC53ULL

static inline uint64_t load64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
#else
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--) w = (w << 8) | p[i];
    return w;
#endif
}

static uint64_t mix(uint64_t h, const uint8_t *p, size_t n) {
    h ^= (uint64_t)n * K_LEN;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w = load64(p); /* little-endian words, on any host */
        h = (h ^ w) * K_WORD;
        h ^= h >> 32;
    }
    if (n) {
        uint64_t w = 0;
        for (size_t i = n; i-- > 0;) w = (w << 8) | p[i];
        h = (h ^ w) * K_WORD;
        h ^= h >> 32;
    }
    return h;
}

static uint32_t finish(uint64_t h) {
    h ^= h >> 33;
    h *= K_FINAL;
    h ^= h >> 33;
    return (uint32_t)(h >> 32);
}

/* ---- growable u32 array ------------------------------------------------------------------ */

typedef struct {
    uint32_t *data;
    size_t len, cap;
} Vec;

static int push(Vec *v, uint32_t x) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 1024;
        uint32_t *data = realloc(v->data, cap * sizeof(uint32_t));
        if (!data) {
            PyErr_NoMemory();
            return -1;
        }
        v->data = data;
        v->cap = cap;
    }
    v->data[v->len++] = x;
    return 0;
}

/* ---- protobuf reading -------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p, *end;
} Reader;

static int varint(Reader *r, uint64_t *out) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *out = x;
            return 0;
        }
    }
    return -1;
}

/* Skip a field's payload of the given wire type; -1 on a group or damage. */
static int skip(Reader *r, int wire) {
    uint64_t n;
    switch (wire) {
    case 0:
        return varint(r, &n);
    case 1:
        if (r->end - r->p < 8) return -1;
        r->p += 8;
        return 0;
    case 2:
        if (varint(r, &n) || n > (uint64_t)(r->end - r->p)) return -1;
        r->p += n;
        return 0;
    case 5:
        if (r->end - r->p < 4) return -1;
        r->p += 4;
        return 0;
    default:
        return -1;
    }
}

static int bytes_field(Reader *r, Reader *out) {
    uint64_t n;
    if (varint(r, &n) || n > (uint64_t)(r->end - r->p)) return -1;
    out->p = r->p;
    out->end = r->p + n;
    r->p += n;
    return 0;
}

/* One KeyValue: push its hash; -1 when the message cannot be read. */
static int key_value(Reader r, Vec *out) {
    Reader key = {NULL, NULL}, value = {NULL, NULL};
    int values = 0;
    while (r.p < r.end) {
        uint64_t tag;
        if (varint(&r, &tag)) return -1;
        int field = (int)(tag >> 3), wire = (int)(tag & 7);
        if (field == 1 || field == 2) {
            if (wire != 2) return -1;
            if (bytes_field(&r, field == 1 ? &key : &value)) return -1;
            values += field == 2;
        } else if (skip(&r, wire)) {
            return -1;
        }
    }
    if (!key.p) key.p = key.end = (const uint8_t *)"";
    size_t key_len = (size_t)(key.end - key.p);
    /* The value's text form, when it is a string, bool or int set exactly once. */
    const uint8_t *text = NULL;
    size_t text_len = 0;
    char digits[24];
    if (values == 1) {
        int kind = 0; /* the oneof member set last: 1 string, 2 bool, 3 int, other: no text */
        Reader s = {NULL, NULL};
        uint64_t number = 0;
        while (value.p < value.end) {
            uint64_t tag;
            if (varint(&value, &tag)) return -1;
            int field = (int)(tag >> 3), wire = (int)(tag & 7);
            if (field == 1 && wire == 2) {
                if (bytes_field(&value, &s)) return -1;
                kind = 1;
            } else if ((field == 2 || field == 3) && wire == 0) {
                if (varint(&value, &number)) return -1;
                kind = field;
            } else if (field >= 1 && field <= 7) {
                if (skip(&value, wire)) return -1;
                kind = 9;
            } else if (skip(&value, wire)) {
                return -1;
            }
        }
        if (kind == 1) {
            text = s.p;
            text_len = (size_t)(s.end - s.p);
        } else if (kind == 2) {
            text = (const uint8_t *)(number ? "true" : "false");
            text_len = number ? 4 : 5;
        } else if (kind == 3) {
            int64_t signed_value = (int64_t)number;
            uint64_t magnitude = signed_value < 0 ? 0 - number : number;
            char *at = digits + sizeof digits;
            do {
                *--at = (char)('0' + magnitude % 10);
                magnitude /= 10;
            } while (magnitude);
            if (signed_value < 0) *--at = '-';
            text = (const uint8_t *)at;
            text_len = (size_t)(digits + sizeof digits - at);
        }
    }
    uint32_t h = text ? finish(mix(mix(SEED_PAIR, key.p, key_len), text, text_len))
                      : finish(mix(SEED_KEY, key.p, key_len));
    return push(out, h);
}

/* Every KeyValue in field `attributes` of the message in `r`. */
static int attributes_of(Reader r, int attributes, Vec *out) {
    while (r.p < r.end) {
        uint64_t tag;
        if (varint(&r, &tag)) return -1;
        int field = (int)(tag >> 3), wire = (int)(tag & 7);
        if (field == attributes) {
            Reader kv;
            if (wire != 2 || bytes_field(&r, &kv) || key_value(kv, out)) return -1;
        } else if (skip(&r, wire)) {
            return -1;
        }
    }
    return 0;
}

static int span(Reader r, Vec *out) {
    while (r.p < r.end) {
        uint64_t tag;
        if (varint(&r, &tag)) return -1;
        int field = (int)(tag >> 3), wire = (int)(tag & 7);
        if (field == 9 || field == 11 || field == 13) {
            Reader inner;
            if (wire != 2 || bytes_field(&r, &inner)) return -1;
            if (field == 9 ? key_value(inner, out) : attributes_of(inner, field == 11 ? 3 : 4, out))
                return -1;
        } else if (skip(&r, wire)) {
            return -1;
        }
    }
    return 0;
}

/* Append the batch's distinct hashes to `all` in order of first appearance, using `seen` (an
 * open-addressing set of 2^bits slots, 0 = empty; hash 0 is tracked apart). */
static int append_distinct(Vec *all, const Vec *batch, Vec *seen) {
    size_t slots = 1024;
    while (slots < 2 * batch->len) slots *= 2;
    if (seen->cap < slots) {
        uint32_t *data = realloc(seen->data, slots * sizeof(uint32_t));
        if (!data) {
            PyErr_NoMemory();
            return -1;
        }
        seen->data = data;
        seen->cap = slots;
    }
    memset(seen->data, 0, slots * sizeof(uint32_t));
    int zero = 0;
    for (size_t i = 0; i < batch->len; i++) {
        uint32_t h = batch->data[i];
        if (h == 0) {
            if (zero) continue;
            zero = 1;
        } else {
            size_t at = (h * 0x9E3779B1u) & (slots - 1);
            while (seen->data[at] && seen->data[at] != h) at = (at + 1) & (slots - 1);
            if (seen->data[at]) continue;
            seen->data[at] = h;
        }
        if (push(all, h)) return -1;
    }
    return 0;
}

PyDoc_STRVAR(tag_hashes_doc,
             "tag_hashes(raws, batch_rows) -> (hashes, offsets, unindexed)\n\n"
             "Per batch of `batch_rows` spans, the distinct tag hashes in order of first appearance (u32 little-endian, "
             "all batches back to back), the batches' start offsets into them plus the end "
             "(u32), and one byte per batch: 1 when a span of it could not be read.");

static PyObject *tag_hashes(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "tag_hashes(raws, batch_rows)");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(args[0], "raws must be a sequence of bytes");
    if (!seq) return NULL;
    Py_ssize_t batch_rows = PyLong_AsSsize_t(args[1]);
    if (batch_rows <= 0) {
        Py_DECREF(seq);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "batch_rows must be positive");
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t batches = (count + batch_rows - 1) / batch_rows;
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!PyBytes_Check(items[i])) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "raws must be a sequence of bytes");
            return NULL;
        }
    }
    Vec all = {NULL, 0, 0}, batch = {NULL, 0, 0}, tmp = {NULL, 0, 0};
    uint32_t *offsets = malloc(((size_t)batches + 1) * sizeof(uint32_t));
    char *unindexed = calloc((size_t)batches + 1, 1);
    PyObject *result = NULL;
    if (!offsets || !unindexed) goto fail;
    for (Py_ssize_t b = 0; b < batches; b++) {
        offsets[b] = (uint32_t)all.len;
        batch.len = 0;
        Py_ssize_t last = (b + 1) * batch_rows < count ? (b + 1) * batch_rows : count;
        for (Py_ssize_t i = b * batch_rows; i < last; i++) {
            const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(items[i]);
            Reader r = {p, p + PyBytes_GET_SIZE(items[i])};
            size_t before = batch.len;
            if (span(r, &batch)) {
                if (PyErr_Occurred()) goto fail;
                batch.len = before;
                unindexed[b] = 1;
            }
        }
        if (append_distinct(&all, &batch, &tmp)) goto fail;
        if (all.len > UINT32_MAX) goto fail;
    }
    offsets[batches] = (uint32_t)all.len;
    result = Py_BuildValue("(y#y#y#)", all.data ? (const char *)all.data : "", (Py_ssize_t)(all.len * 4),
                           (const char *)offsets, (Py_ssize_t)((batches + 1) * 4), unindexed,
                           batches);
    goto done;
fail:
    if (!PyErr_Occurred()) PyErr_NoMemory();
done:
    free(all.data);
    free(batch.data);
    free(tmp.data);
    free(offsets);
    free(unindexed);
    Py_DECREF(seq);
    return result;
}

PyDoc_STRVAR(sort_index_doc,
             "sort_index(hashes, offsets) -> (sorted_hashes, batches)\n\n"
             "The (hash, batch) pairs of a block's index sorted by hash, then batch: native u32 "
             "hashes and u16 batch numbers (offsets: native u32, batches+1 of them).");

static PyObject *sort_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "sort_index(hashes, offsets)");
        return NULL;
    }
    Py_buffer hv, ov;
    if (PyObject_GetBuffer(args[0], &hv, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &ov, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&hv);
        return NULL;
    }
    PyObject *result = NULL;
    if (hv.len % 4 || ov.len % 4) { /* the reference's array() refuses a partial item */
        PyErr_SetString(PyExc_ValueError, "bytes length not a multiple of item size");
        PyBuffer_Release(&hv);
        PyBuffer_Release(&ov);
        return NULL;
    }
    size_t n = (size_t)hv.len / 4, batches = (size_t)ov.len / 4;
    const uint32_t *offsets = ov.buf;
    uint64_t *a = malloc((n ? n : 1) * sizeof(uint64_t));
    uint64_t *b = malloc((n ? n : 1) * sizeof(uint64_t));
    uint32_t *hashes = malloc((n ? n : 1) * sizeof(uint32_t));
    uint16_t *numbers = malloc((n ? n : 1) * sizeof(uint16_t));
    if (!a || !b || !hashes || !numbers) {
        PyErr_NoMemory();
        goto done;
    }
    if (batches == 0 || batches - 1 > 65536 || offsets[batches - 1] != n) {
        PyErr_SetString(PyExc_ValueError, "offsets do not fit the hashes");
        goto done;
    }
    for (size_t batch = 0; batch + 1 < batches; batch++) {
        if (offsets[batch] > offsets[batch + 1] || offsets[batch + 1] > n) {
            PyErr_SetString(PyExc_ValueError, "offsets do not fit the hashes");
            goto done;
        }
        /* hashes before offsets[0] belong to no batch: left out, as the reference does (and
           a[] holds only what was written: no uninitialised entry is ever sorted) */
        for (size_t i = offsets[batch]; i < offsets[batch + 1]; i++)
            a[i - offsets[0]] = ((uint64_t)((const uint32_t *)hv.buf)[i] << 16) | batch;
    }
    n -= offsets[0];
    /* LSD radix sort on the 48-bit keys, 16 bits at a time: (hash, batch) order */
    size_t *counts = calloc(65536, sizeof(size_t));
    if (!counts) {
        PyErr_NoMemory();
        goto done;
    }
    for (int pass = 0; pass < 3; pass++) {
        int shift = 16 * pass;
        memset(counts, 0, 65536 * sizeof(size_t));
        for (size_t i = 0; i < n; i++) counts[(a[i] >> shift) & 0xFFFF]++;
        size_t sum = 0;
        for (size_t d = 0; d < 65536; d++) {
            size_t c = counts[d];
            counts[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) b[counts[(a[i] >> shift) & 0xFFFF]++] = a[i];
        uint64_t *swap = a;
        a = b;
        b = swap;
    }
    free(counts);
    for (size_t i = 0; i < n; i++) {
        hashes[i] = (uint32_t)(a[i] >> 16);
        numbers[i] = (uint16_t)(a[i] & 0xFFFF);
    }
    result = Py_BuildValue("(y#y#)", (const char *)hashes, (Py_ssize_t)(n * 4),
                           (const char *)numbers, (Py_ssize_t)(n * 2));
done:
    free(a);
    free(b);
    free(hashes);
    free(numbers);
    PyBuffer_Release(&hv);
    PyBuffer_Release(&ov);
    return result;
}

static PyMethodDef methods[] = {
    {"tag_hashes", (PyCFunction)(void (*)(void))tag_hashes, METH_FASTCALL, tag_hashes_doc},
    {"sort_index", (PyCFunction)(void (*)(void))sort_index, METH_FASTCALL, sort_index_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "tracemesh.accel._span_tags", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__span_tags(void) { return PyModule_Create(&module); }
