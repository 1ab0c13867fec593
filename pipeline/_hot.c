/*
 * pipeline._hot: the per-event hot path in C.
 *
 * One call, event(), takes one encoded request event and, when it is an ordinary valid
 * event, does what the Python reference does for it: orjson decode, the contract checks
 * of codec._fast_request, the network lookup (NetworkEnricher.lookup) and the window
 * update of WindowStore.add. It works on the same Python objects (the store's dicts, the
 * account's slots, array('d') buckets), so every other part of the core (closing buckets,
 * views, scoring, snapshots) is unchanged and unaware of it.
 *
 * Contract: event() either completes the event exactly as the Python path would, or
 * returns FALLBACK having changed nothing but caches (the account directory entry of a
 * new account aside, which the Python path creates identically). The caller then runs the
 * Python path, which names the reason of a bad event, handles duplicates, the first event
 * of a partition and anything unusual. tests/unit/test_hot.py proves the equivalence on
 * generated events and on whole simulations.
 *
 * A message of many newline-delimited events is not decoded: event() returns PACKED and
 * the caller offers it line by line (flow.is_packed is the same test in Python).
 *
 * No prompt or completion content passes through here: events carry counts and
 * fingerprints only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define FALLBACK (-1)
#define PACKED (-2) /* a message of many events (newline-delimited): split it first */

/* bucket counters: the layout of pipeline.features.windows */
enum { IDX, REQ, PT, CT, ERR, THR, RISKY, FPD, REP, NNET, NAGENT, GAPS, GSUM, GSQ, NEWM, FIRST, LAST, K };
/* how an account stores a bucket (windows.BUCKET, which configure checks): the arithmetic
 * is on K doubles (bucket_load, bucket_store), so every sum is what it was with doubles */
#pragma pack(push, 4) /* 84 bytes, not 88: six records fit in pymalloc's 512-byte blocks */
typedef struct {
    int32_t idx; /* the bucket's index; the hour accumulator's is minus its minutes */
    uint32_t req, pt, ct, err, thr, risky, fpd, rep, nnet, nagent, gaps;
    double gsum, gsq;
    uint32_t newm;
    double first, last;
} Bucket;
#pragma pack(pop)
_Static_assert(sizeof(Bucket) == 84, "windows.BUCKET is 84 bytes");
enum { D_KEY, D_IP, D_NET, D_ASN, D_COUNTRY, D_AGENT, D_MODEL };
#define KNOWN 8
#define S_LAST 32
#define S_BACK 4
#define BACK_MAX ((1LL << 28) - 1)
#define RECENT_IDS 8
/* an account's seen table's header (windows.HEAD): the event-id ring's cursor, its ids,
 * the account's last_ts (the bits of a double), its hours, its views; then, once learned,
 * its 5-minute history (windows.STATS doubles' bits: n, last, means, variances) and its
 * hourly one */
#define HEAD (RECENT_IDS + 4)
#define H_IDS_AT 2
#define H_IDS 3
#define H_LAST_TS (H_IDS + RECENT_IDS)
#define STATS 6
#define H_SHORT (H_LAST_TS + 3)
#define FP_CAP 64
#define KNOWN_CAP 32
#define SEEN_CAP 256
#define NEW_MODEL_SECONDS 86400.0
#define GAP_MAX 3600.0
#define MAX_INDEX (1LL << 32) /* bucket indices beyond this take the Python path */

/* the request contract's limits (schemas/request-event.v1.json, codec._fast_request) */
#define MAX_TOKENS 100000000LL
#define STATUS_MIN 100
#define STATUS_MAX 599
#define MAX_LATENCY_MS 86400000LL
#define MAX_BYTES 10000000000LL
#define MAX_ID 128 /* ids, endpoint, model, org, fingerprint (characters) */
#define MAX_UA 512

/* integer tables: the layout and rules of pipeline.features.table */
#define M61 ((1ULL << 61) - 1)
#define LEN_MIX 0x9E3779B1ULL
#define FIB 0x9E3779B97F4A7C15ULL
#define PACKED_MIN 8
#define PAIRS_MIN 16
#define PACK_BITS 33
#define PACK_MASK ((1ULL << PACK_BITS) - 1)
#define PACK_KEY_MAX ((1ULL << (64 - PACK_BITS)) - 1)

/* ---- configuration (set once by pipeline.features.windows) ---- */
static PyObject *orjson_loads, *normalize_ip, *seconds_cache, *risky_kinds,
    *account_state_type, *array_type, *view_type, *empty_args, *zero_word, *zero_double,
    *zero_byte;
static Py_ssize_t max_event_bytes = 65536;

enum { R_EVENT_ID, R_ACCOUNT_ID, R_KEY, R_UA, R_ENDPOINT, R_MODEL, R_IP, R_TS, R_PT, R_CT,
       R_STATUS, R_LAT, NREQ };
/* attribute names */
static PyObject *a_accounts, *a_active, *a_max_ts, *a_first_ts, *a_closed, *a_late,
    *a_model_first, *a_bucket_seconds, *a_view_buckets, *a_grace, *a_buckets, *a_seen,
    *a_fps, *a_cache, *a_overrides, *a_lookup, *a_lookup_parsed, *small_four, *a_kind,
    *a_prefix, *a_asn, *a_country, *a_hot_memo, *a_phase,
    *a_young, *a_min_short, *a_hot_log, *a_expiry, *a_in_hour, *a_active_flag, *a_children,
    *a_l_mass, *a_r_mass;

/* ---- BLAKE2b with an 8-byte digest (hashlib.blake2b(data, digest_size=8)) ---- */
static const uint64_t b2_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
static const uint8_t b2_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

/* the little-endian word at p (one load where the machine is little-endian) */
static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#elif !defined(__BYTE_ORDER__)
    v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
#endif
    return v;
}

#define B2_G(a, b, c, d, x, y)          \
    do {                                \
        a = a + b + (x);                \
        d = rotr64(d ^ a, 32);          \
        c = c + d;                      \
        b = rotr64(b ^ c, 24);          \
        a = a + b + (y);                \
        d = rotr64(d ^ a, 16);          \
        c = c + d;                      \
        b = rotr64(b ^ c, 63);          \
    } while (0)

static void b2_compress(uint64_t h[8], const uint8_t block[128], uint64_t t, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = b2_iv[i];
    }
    v[12] ^= t;
    if (last) v[14] = ~v[14];
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = b2_sigma[r];
        B2_G(v[0], v[4], v[8], v[12], m[s[0]], m[s[1]]);
        B2_G(v[1], v[5], v[9], v[13], m[s[2]], m[s[3]]);
        B2_G(v[2], v[6], v[10], v[14], m[s[4]], m[s[5]]);
        B2_G(v[3], v[7], v[11], v[15], m[s[6]], m[s[7]]);
        B2_G(v[0], v[5], v[10], v[15], m[s[8]], m[s[9]]);
        B2_G(v[1], v[6], v[11], v[12], m[s[10]], m[s[11]]);
        B2_G(v[2], v[7], v[8], v[13], m[s[12]], m[s[13]]);
        B2_G(v[3], v[4], v[9], v[14], m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* int.from_bytes(blake2b(data, digest_size=8).digest(), "little", signed=True) */
static int64_t blake2b_64(const uint8_t *data, size_t len) {
    uint64_t h[8];
    uint8_t block[128];
    memcpy(h, b2_iv, sizeof h);
    h[0] ^= 0x01010000ULL ^ 8ULL;
    uint64_t t = 0;
    while (len > 128) {
        t += 128;
        b2_compress(h, data, t, 0);
        data += 128;
        len -= 128;
    }
    memset(block, 0, sizeof block);
    memcpy(block, data, len);
    t += len;
    b2_compress(h, block, t, 1);
    return (int64_t)h[0];
}

static PyObject *hot_event_id_hash(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL) return NULL;
    return PyLong_FromUnsignedLongLong((uint64_t)blake2b_64((const uint8_t *)s, (size_t)n));
}

/* ---- helpers ---- */

/* Python's float floor division (float_floor_div in Objects/floatobject.c), so that bucket
 * indices are bit-for-bit those of ``int(ts // bucket_seconds)``. */
static double py_floordiv(double vx, double wx) {
    double mod = fmod(vx, wx);
    double div = (vx - mod) / wx;
    double floordiv;
    if (mod) {
        if ((wx < 0) != (mod < 0)) div -= 1.0;
    }
    if (div) {
        floordiv = floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
        floordiv = copysign(0.0, vx / wx);
    }
    return floordiv;
}

/* windows._stamp: the seen value after a sighting in bucket ``index`` */
static inline uint64_t stamp_new(uint64_t index, int dim) { return (index << S_LAST) | dim; }

static inline uint64_t stamp(uint64_t v, uint64_t index) {
    uint64_t last = v >> S_LAST;
    if (index > last) {
        uint64_t back = index - last;
        if (back > BACK_MAX) back = BACK_MAX;
        return (index << S_LAST) | (back << S_BACK) | (v & 15);
    }
    uint64_t back = last - index;
    if (back < ((v >> S_BACK) & BACK_MAX))
        return (v & ~((uint64_t)BACK_MAX << S_BACK)) | (back << S_BACK);
    return v;
}

/* ---- integer tables (pipeline.features.table) ---- */

static inline uint64_t red61(uint64_t x) { return (x & M61) + (x >> 61); }

/* x * 2**s mod 2**61 - 1, for x < 2**61 - 1 */
static inline uint64_t rot61(uint64_t x, unsigned s) {
    return s ? (((x << s) & M61) | (x >> (61 - s))) : x;
}

/* table.value_hash: (int.from_bytes(data, "little") + len * LEN_MIX) % (2**61 - 1) */
static uint64_t value_hash(const uint8_t *p, size_t n) {
    uint64_t h = 0;
    unsigned s = 0; /* 2**64 = 2**3 (mod 2**61 - 1): word j weighs 2**(3j mod 61) */
    size_t i = 0;
    for (;; i += 8) {
        uint64_t w;
        if (i + 8 <= n) {
            w = load64(p + i);
        } else {
            w = 0;
            for (size_t k = n; k > i; k--) w = (w << 8) | p[k - 1];
        }
        w = red61(w);
        if (w >= M61) w -= M61;
        h = red61(h + rot61(w, s));
        if (h >= M61) h -= M61;
        if (i + 8 >= n) break;
        s += 3;
        if (s >= 61) s -= 61;
    }
    h = red61(h + (uint64_t)n * LEN_MIX);
    if (h >= M61) h -= M61;
    return h;
}

static PyObject *hot_value_hash(PyObject *self, PyObject *arg) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(arg, &n);
    if (s == NULL) return NULL;
    return PyLong_FromUnsignedLongLong(value_hash((const uint8_t *)s, (size_t)n));
}

static inline uint64_t slot_of(uint64_t key, uint64_t cap) {
    return (key * FIB) >> (64 - __builtin_ctzll(cap));
}

/* table._room: the capacity for count + 1 keys, doubling from cap */
static inline uint64_t room(uint64_t count, uint64_t cap) {
    while ((count + 1) * 8 > cap * 7) cap *= 2;
    return cap;
}

/* a writable table held by an attribute of an account (seen, fps) */
typedef struct {
    PyObject *obj; /* new reference; NULL when the attribute is None */
    Py_buffer view;
    uint64_t *t;
    uint64_t n; /* words */
} Table;

static int table_open(Table *tb, PyObject *obj) {
    tb->obj = obj;
    if (PyObject_GetBuffer(obj, &tb->view, PyBUF_WRITABLE) < 0) {
        tb->obj = NULL;
        Py_DECREF(obj);
        return -1;
    }
    tb->t = (uint64_t *)tb->view.buf;
    tb->n = (uint64_t)tb->view.len / 8;
    return 0;
}

static void table_close(Table *tb) {
    if (tb->obj != NULL) {
        PyBuffer_Release(&tb->view);
        Py_CLEAR(tb->obj);
    }
}

/* array('Q') of ``words`` zeros, allocated exactly (table._ZERO) */
static PyObject *zero_array(uint64_t words) {
    return PySequence_Repeat(zero_word, (Py_ssize_t)words);
}

/* a new table (array('Q')) of ``cap`` slots holding ``words`` (slot contents in slot
 * order, two words per pair slot) re-inserted: table.pair_rebuild / packed_rebuild. A pair
 * table gets the ``h`` header words ``head`` (table.pairs). */
static PyObject *make_table(uint64_t cap, const uint64_t *words, uint64_t nwords, int pairs,
                            const uint64_t *head, uint64_t h) {
    PyObject *nt = zero_array(pairs ? 2 + h + 2 * cap : cap + 1);
    if (nt == NULL) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(nt, &view, PyBUF_WRITABLE) < 0) {
        Py_DECREF(nt);
        return NULL;
    }
    uint64_t *t = (uint64_t *)view.buf;
    uint64_t count = 0;
    if (pairs) {
        t[1] = h;
        if (h) memcpy(t + 2, head, h * 8);
        uint64_t *slots = t + 2 + h;
        for (uint64_t j = 0; j < nwords; j += 2) {
            uint64_t i = slot_of(words[j], cap);
            while (slots[2 * i]) i = (i + 1) & (cap - 1);
            slots[2 * i] = words[j];
            slots[2 * i + 1] = words[j + 1];
            count++;
        }
    } else {
        for (uint64_t j = 0; j < nwords; j++) {
            uint64_t i = slot_of(words[j] >> PACK_BITS, cap);
            while (t[1 + i]) i = (i + 1) & (cap - 1);
            t[1 + i] = words[j];
            count++;
        }
    }
    t[0] = count;
    PyBuffer_Release(&view);
    return nt;
}

/* the occupied slots of a table, in slot order (pairs: two words each), that ``keep``:
 * with floor_ set, only values >= floor_ (or, keep_known, flagged KNOWN) */
static uint64_t *table_words(const uint64_t *t, uint64_t n, int pairs, uint64_t floor_,
                             int keep_known, uint64_t *nwords) {
    uint64_t *w = PyMem_Malloc(n * 8 + 8);
    if (w == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    uint64_t m = 0;
    if (pairs) {
        for (uint64_t p = 2 + t[1]; p < n; p += 2) {
            uint64_t v = t[p + 1];
            if (t[p] && (v >= floor_ || (keep_known && (v & KNOWN)))) {
                w[m++] = t[p];
                w[m++] = v;
            }
        }
    } else {
        for (uint64_t p = 1; p < n; p++)
            if (t[p] && (t[p] & PACK_MASK) >= floor_) w[m++] = t[p];
    }
    *nwords = m;
    return w;
}

/* a table with only what table_words keeps, rebuilt to fit (at least ``min_cap`` slots);
 * Py_None (new reference) when everything is kept */
static PyObject *filtered(const uint64_t *t, uint64_t n, int pairs, uint64_t floor_,
                          int keep_known, uint64_t min_cap) {
    uint64_t nw;
    uint64_t *w = table_words(t, n, pairs, floor_, keep_known, &nw);
    if (w == NULL) return NULL;
    uint64_t kept = pairs ? nw / 2 : nw;
    PyObject *out;
    if (kept == t[0]) {
        out = Py_None;
        Py_INCREF(out);
    } else {
        out = make_table(room(kept == 0 ? 0 : kept - 1, min_cap), w, nw, pairs, t + 2,
                         pairs ? t[1] : 0);
    }
    PyMem_Free(w);
    return out;
}

/* set ``nt`` (stolen) as the account's ``attr`` and make it the open table */
static int table_swap(Table *tb, PyObject *st, PyObject *attr, PyObject *nt) {
    if (nt == NULL) return -1;
    if (PyObject_SetAttr(st, attr, nt) < 0) {
        Py_DECREF(nt);
        return -1;
    }
    table_close(tb);
    return table_open(tb, nt);
}

/* a table grown to ``cap`` slots, everything kept */
static int table_grow(Table *tb, PyObject *st, PyObject *attr, int pairs, uint64_t cap) {
    uint64_t nw;
    uint64_t *w = table_words(tb->t, tb->n, pairs, 0, 0, &nw);
    if (w == NULL) return -1;
    PyObject *nt = make_table(cap, w, nw, pairs, tb->t + 2, pairs ? tb->t[1] : 0);
    PyMem_Free(w);
    return table_swap(tb, st, attr, nt);
}

/* n words: a count, the header length h, h header words, then a power of two of (key,
 * value) slots (table.pairs) */
static inline int is_pair_table(const uint64_t *t, uint64_t n) {
    if (n < 4 || t[1] > n - 4 || (n - 2 - t[1]) & 1) return 0;
    uint64_t cap = (n - 2 - t[1]) >> 1;
    return !(cap & (cap - 1));
}

static inline uint64_t pair_cap(const uint64_t *t, uint64_t n) { return (n - 2 - t[1]) >> 1; }

/* table.pair_find */
static inline uint64_t pair_find(const uint64_t *t, uint64_t n, uint64_t key) {
    uint64_t base = 2 + t[1], cap = (n - base) >> 1;
    uint64_t i = slot_of(key, cap);
    for (;;) {
        uint64_t p = base + 2 * i, k = t[p];
        if (k == key || k == 0) return p;
        i = (i + 1) & (cap - 1);
    }
}

/* windows._see: stamp a sighting of ``key`` into the account's seen table; *out = the
 * value now held. -1 on error (only allocation can fail). */
static int see(Table *tb, PyObject *st, uint64_t key, uint64_t index, int dim, uint64_t *out) {
    uint64_t p = pair_find(tb->t, tb->n, key);
    if (tb->t[p]) {
        uint64_t v = tb->t[p + 1];
        if ((v >> S_LAST) != index) tb->t[p + 1] = v = stamp(v, index);
        *out = v;
        return 0;
    }
    uint64_t cap = pair_cap(tb->t, tb->n), grown = room(tb->t[0], cap);
    if (grown != cap) {
        if (table_grow(tb, st, a_seen, 1, grown) < 0) return -1;
        p = pair_find(tb->t, tb->n, key);
    }
    tb->t[p] = key;
    tb->t[p + 1] = *out = stamp_new(index, dim);
    tb->t[0] += 1;
    return 0;
}

/* table.packed_find */
static inline uint64_t packed_find(const uint64_t *t, uint64_t n, uint64_t key) {
    uint64_t cap = n - 1;
    uint64_t i = slot_of(key, cap);
    for (;;) {
        uint64_t w = t[1 + i];
        if (w == 0 || (w >> PACK_BITS) == key) return 1 + i;
        i = (i + 1) & (cap - 1);
    }
}

/* table.packed_set for a key not in the table */
static int packed_insert(Table *tb, PyObject *st, uint64_t key, uint64_t value) {
    uint64_t cap = tb->n - 1, grown = room(tb->t[0], cap);
    if (grown != cap && table_grow(tb, st, a_fps, 0, grown) < 0) return -1;
    tb->t[packed_find(tb->t, tb->n, key)] = (key << PACK_BITS) | value;
    tb->t[0] += 1;
    return 0;
}

static int get_ll(PyObject *o, long long lo, long long hi, long long *out) {
    /* exact int in [lo, hi]: 1; otherwise 0 (never an error) */
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int set_double_attr(PyObject *obj, PyObject *name, double value) {
    PyObject *f = PyFloat_FromDouble(value);
    if (f == NULL) return -1;
    int rc = PyObject_SetAttr(obj, name, f);
    Py_DECREF(f);
    return rc;
}

static int get_double_attr(PyObject *obj, PyObject *name, double *out) {
    PyObject *o = PyObject_GetAttr(obj, name);
    if (o == NULL) return -1;
    *out = PyFloat_AsDouble(o);
    Py_DECREF(o);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int get_ll_attr(PyObject *obj, PyObject *name, long long *out) {
    PyObject *o = PyObject_GetAttr(obj, name);
    if (o == NULL) return -1;
    *out = PyLong_AsLongLong(o);
    Py_DECREF(o);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* the ts string -> epoch seconds, as codec._fast_ts with its per-second cache; 0 if not
 * an ordinary, already-cached timestamp (the Python path then decides) */
static char last_head[19];
static double last_base;
static int have_last;

static int fast_ts(const char *s, Py_ssize_t n, double *out) {
    if (n < 20 || n > 40) return 0;
    /* the tail: (\.[0-9]{1,9})?(Z|\+00:00) from position 19 */
    Py_ssize_t i = 19;
    long long us = 0;
    if (s[i] == '.') {
        Py_ssize_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 6) us = us * 10 + (s[i] - '0');
            i++;
        }
        Py_ssize_t digits = i - start;
        if (digits < 1 || digits > 9) return 0;
        for (Py_ssize_t d = digits; d < 6; d++) us *= 10;
    }
    if (!((n - i == 1 && s[i] == 'Z') || (n - i == 6 && memcmp(s + i, "+00:00", 6) == 0)))
        return 0;
    double base;
    if (have_last && memcmp(s, last_head, 19) == 0) {
        base = last_base;
    } else {
        PyObject *head = PyUnicode_FromStringAndSize(s, 19);
        if (head == NULL) {
            PyErr_Clear();
            return 0;
        }
        PyObject *b = PyDict_GetItemWithError(seconds_cache, head);
        Py_DECREF(head);
        if (b == NULL || !PyFloat_CheckExact(b)) {
            PyErr_Clear();
            return 0;
        }
        base = PyFloat_AS_DOUBLE(b);
        memcpy(last_head, s, 19);
        last_base = base;
        have_last = 1;
    }
    *out = s[19] == '.' ? base + (double)us / 1e6 : base;
    return 1;
}

/* Is ``text`` an IPv4 address already in canonical form (four decimal octets, no leading
 * zeros)? Then codec.normalize_ip would return an equal string; most addresses are. Its
 * value goes to ``*addr`` unless NULL (network.parse's, and so its address_key). */
static int canonical_ipv4(const char *s, Py_ssize_t n, uint32_t *addr) {
    if (n < 7 || n > 15) return 0;
    int parts = 0, digits = 0, value = 0;
    uint32_t whole = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (digits == 0 || value > 255 || (digits > 1 && s[i - digits] == '0')) return 0;
            parts++;
            whole = whole << 8 | (uint32_t)value;
            digits = value = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            if (++digits > 3) return 0;
            value = value * 10 + (s[i] - '0');
        } else {
            return 0;
        }
    }
    if (parts != 4) return 0;
    if (addr != NULL) *addr = whole;
    return 1;
}

/* (through + 1) << shift as the floor of a table filter; 0 keeps everything when the
 * window reaches back before bucket 0 (the Python floor is then negative) */
static inline uint64_t floor_of(long long through, int shift) {
    return through + 1 > 0 ? (uint64_t)(through + 1) << shift : 0;
}

/* windows._expire_fps on the account's open fingerprint table: 1 if some expired (the
 * table is replaced), 0 if none did */
static int expire_fps(Table *tb, PyObject *st, int64_t through) {
    PyObject *nt = filtered(tb->t, tb->n, 0, floor_of(through, 1), 0, PACKED_MIN);
    if (nt == NULL) return -1;
    if (nt == Py_None) {
        Py_DECREF(nt);
        return 0;
    }
    return table_swap(tb, st, a_fps, nt) < 0 ? -1 : 1;
}

/* ---- the close path's table operations (windows._Tables, in C) ---- */

typedef struct {
    Py_buffer view;
    const uint64_t *t;
    uint64_t n;
} RTable;

/* a table opened for reading; ``pairs``: it must be a pair table (its header length read
 * from it is then safe to use) */
static int rtable(PyObject *obj, RTable *r, int pairs) {
    if (PyObject_GetBuffer(obj, &r->view, PyBUF_SIMPLE) < 0) return -1;
    r->t = (const uint64_t *)r->view.buf;
    r->n = (uint64_t)r->view.len / 8;
    if (r->view.len % 8 || r->n < 2 || (pairs && !is_pair_table(r->t, r->n))) {
        PyBuffer_Release(&r->view);
        PyErr_SetString(PyExc_ValueError, pairs ? "not a pair table" : "not an integer table");
        return -1;
    }
    return 0;
}

/* the arguments (table, int[, int]) of a close-path function; the table opened for reading */
static int table_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t ints, int pairs,
                      const char *usage, RTable *r, long long *a, long long *b) {
    if (nargs != 1 + ints) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    long long *out[2] = {a, b};
    for (Py_ssize_t i = 0; i < ints; i++)
        if ((*out[i] = PyLong_AsLongLong(args[1 + i])) == -1 && PyErr_Occurred()) return -1;
    return rtable(args[0], r, pairs);
}

static PyObject *hot_expire_fps(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    long long through;
    RTable r;
    if (table_args(args, nargs, 1, 0, "expire_fps(fps, through)", &r, &through, NULL) < 0)
        return NULL;
    PyObject *out = filtered(r.t, r.n, 0, floor_of(through, 1), 0, PACKED_MIN);
    PyBuffer_Release(&r.view);
    return out;
}

static PyObject *hot_prune_seen(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    long long through;
    RTable r;
    if (table_args(args, nargs, 1, 1, "prune_seen(seen, through)", &r, &through, NULL) < 0)
        return NULL;
    PyObject *out = filtered(r.t, r.n, 1, floor_of(through, S_LAST), 1, PAIRS_MIN);
    PyBuffer_Release(&r.view);
    return out;
}

static PyObject *hot_scan_seen(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    long long lo, hi;
    RTable r;
    if (table_args(args, nargs, 2, 1, "scan_seen(seen, lo, hi)", &r, &lo, &hi) < 0)
        return NULL;
    long distinct[8] = {0};
    PyObject *nets = PyList_New(0), *agents = PyList_New(0), *ips = PyList_New(0), *out = NULL;
    if (nets == NULL || agents == NULL || ips == NULL) goto done;
    for (uint64_t p = 2 + r.t[1]; p + 1 < r.n; p += 2) {
        uint64_t key = r.t[p], v = r.t[p + 1];
        if (!key) continue;
        long long last = (long long)(v >> S_LAST);
        if (last > hi) last -= (long long)((v >> S_BACK) & BACK_MAX);
        if (lo < last && last <= hi) {
            int dim = (int)(v & 7);
            distinct[dim]++;
            if (dim == D_NET || dim == D_AGENT || dim == D_IP) {
                PyObject *to = dim == D_NET ? nets : dim == D_AGENT ? agents : ips;
                PyObject *k = PyLong_FromUnsignedLongLong(key);
                if (k == NULL || PyList_Append(to, k) < 0) {
                    Py_XDECREF(k);
                    goto done;
                }
                Py_DECREF(k);
            }
        }
    }
    out = Py_BuildValue("[llllllll]OOO", distinct[0], distinct[1], distinct[2], distinct[3],
                        distinct[4], distinct[5], distinct[6], distinct[7], nets, agents, ips);
done:
    Py_XDECREF(nets);
    Py_XDECREF(agents);
    Py_XDECREF(ips);
    PyBuffer_Release(&r.view);
    return out;
}

/* remember(seen, nets, agents): AccountState.remember on the seen table, in place */
static PyObject *hot_remember(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "remember(seen, nets: list, agents: list)");
        return NULL;
    }
    Py_buffer v;
    if (PyObject_GetBuffer(args[0], &v, PyBUF_WRITABLE) < 0) return NULL;
    uint64_t *t = (uint64_t *)v.buf, n = (uint64_t)v.len / 8;
    if (v.len % 8 || !is_pair_table(t, n)) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "not a pair table");
        return NULL;
    }
    long known[8] = {0};
    for (uint64_t p = 2 + t[1]; p + 1 < n; p += 2)
        if (t[p] && (t[p + 1] & KNOWN)) known[t[p + 1] & 7]++;
    for (int which = 0; which < 2; which++) {
        PyObject *keys = args[1 + which];
        int dim = which ? D_AGENT : D_NET;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
            uint64_t key = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(keys, i));
            if (key == (uint64_t)-1 && PyErr_Occurred()) {
                PyBuffer_Release(&v);
                return NULL;
            }
            uint64_t p = pair_find(t, n, key);
            if (t[p] && !(t[p + 1] & KNOWN) && known[dim] < KNOWN_CAP) {
                t[p + 1] |= KNOWN;
                known[dim]++;
            }
        }
    }
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

static PyObject *hot_repeated_fps(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    long long lo;
    RTable r;
    if (table_args(args, nargs, 1, 0, "repeated_fps(fps, lo)", &r, &lo, NULL) < 0) return NULL;
    PyObject *out = PyList_New(0);
    for (uint64_t p = 1; out != NULL && p < r.n; p++) {
        uint64_t w = r.t[p], v = w & PACK_MASK;
        if (w && (v & 1) && (long long)(v >> 1) > lo) {
            PyObject *k = PyLong_FromUnsignedLongLong(w >> PACK_BITS);
            if (k == NULL || PyList_Append(out, k) < 0) Py_CLEAR(out);
            Py_XDECREF(k);
        }
    }
    PyBuffer_Release(&r.view);
    return out;
}

/* ---- view(): windows.make_view, the Python reference, in C ---- */

static const char *value_names[] = {
    "requests_per_min", "prompt_tokens_per_min", "completion_tokens_per_min",
    "completion_tokens_per_request", "completion_prompt_ratio", "distinct_api_keys",
    "distinct_ips", "distinct_networks", "distinct_asns", "distinct_countries",
    "distinct_models", "risky_network_share", "error_rate", "throttled_rate", "template_reuse",
    "new_network_share", "new_client_share", "new_model_share", "interarrival_cv",
    "active_minutes"};
#define NVALUES 20
static const char *count_names[] = {"requests", "prompt_tokens", "completion_tokens",
                                    "fingerprinted", "distinct_api_keys", "distinct_ips",
                                    "distinct_networks", "risky_network_requests"};
#define NCOUNTS 8
static const char *field_names[] = {"kind", "account_id", "start", "end", "first_ts",
                                    "last_ts", "values", "counts", "nets", "agents", "ips",
                                    "fingerprints", "state"};
enum { F_KIND, F_ACCOUNT, F_START, F_END, F_FIRST, F_LAST, F_VALUES, F_COUNTS, F_NETS, F_AGENTS,
       F_IPS, F_FPS, F_STATE, NFIELDS };
static PyObject *value_keys[NVALUES], *count_keys[NCOUNTS], *field_keys[NFIELDS];

static int dbuf(PyObject *arr, Py_buffer *v, double **out);

/* the View's fingerprints: fp_label of each repeated fingerprint after bucket lo */
static PyObject *repeated_labels(PyObject *st, const double *b, PyObject *lo) {
    PyObject *out = PySet_New(NULL);
    if (out == NULL || b[REP] == 0) return out;
    PyObject *fo = PyObject_GetAttr(st, a_fps);
    if (fo == NULL) goto error;
    if (fo == Py_None) {
        Py_DECREF(fo);
        return out;
    }
    PyObject *fargs[2] = {fo, lo};
    PyObject *keys = hot_repeated_fps(NULL, fargs, 2);
    Py_DECREF(fo);
    if (keys == NULL) goto error;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        char label[24];
        snprintf(label, sizeof label, "%08llx",
                 PyLong_AsUnsignedLongLong(PyList_GET_ITEM(keys, i)));
        PyObject *u = PyUnicode_FromString(label);
        if (u == NULL || PySet_Add(out, u) < 0) {
            Py_XDECREF(u);
            Py_DECREF(keys);
            goto error;
        }
        Py_DECREF(u);
    }
    Py_DECREF(keys);
    return out;
error:
    Py_XDECREF(out);
    return NULL;
}

/* view(kind, st, start, end, b, lo, hi, active_minutes) -> View: make_view's result, the
 * same values computed in the same order (IEEE doubles: the same bits) */
static PyObject *hot_view(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "view(kind, st, start, end, b, lo, hi, active_minutes)");
        return NULL;
    }
    if (view_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_hot.view_type(View) first");
        return NULL;
    }
    PyObject *st = args[1], *lo = args[5];
    double start = PyFloat_AsDouble(args[2]), end = PyFloat_AsDouble(args[3]);
    double active = PyFloat_AsDouble(args[7]);
    if (PyErr_Occurred()) return NULL;
    PyObject *seen = NULL, *scan = NULL, *fps = NULL, *values = NULL, *counts = NULL;
    PyObject *view = NULL, *result = NULL;
    Py_buffer bv;
    double *b;
    if (dbuf(args[4], &bv, &b) < 0) return NULL;
    double n = b[REQ], minutes = (end - start) / 60.0, fpd = b[FPD], gaps = b[GAPS], cv;
    if (n == 0 || minutes == 0) {
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        goto done;
    }
    if ((seen = PyObject_GetAttr(st, a_seen)) == NULL) goto done;
    PyObject *sargs[3] = {seen, lo, args[6]};
    if ((scan = hot_scan_seen(NULL, sargs, 3)) == NULL) goto done;
    PyObject *distinct = PyTuple_GET_ITEM(scan, 0);
    if ((fps = repeated_labels(st, b, lo)) == NULL) goto done;
    if (gaps >= 2) {
        double mean = b[GSUM] / gaps, var = b[GSQ] / gaps - mean * mean;
        var = var > 0.0 ? var : 0.0; /* max(0.0, var) */
        cv = mean > 0 ? sqrt(var) / mean : 0.0;
    } else {
        cv = 1.0;
    }
    double dv[NVALUES] = {
        n / minutes,
        b[PT] / minutes,
        b[CT] / minutes,
        b[CT] / n,
        b[CT] / (b[PT] + 1.0),
        0, 0, 0, 0, 0, 0, /* the distinct counts, below */
        b[RISKY] / n,
        b[ERR] / n,
        b[THR] / n,
        fpd != 0.0 ? b[REP] / fpd : 0.0,
        b[NNET] / n,
        b[NAGENT] / n,
        b[NEWM] / n,
        cv,
        active,
    };
    static const int dims[6] = {D_KEY, D_IP, D_NET, D_ASN, D_COUNTRY, D_MODEL};
    for (int j = 0; j < 6; j++) {
        dv[5 + j] = PyLong_AsDouble(PyList_GET_ITEM(distinct, dims[j]));
        if (dv[5 + j] == -1.0 && PyErr_Occurred()) goto done;
    }
    if ((values = _PyDict_NewPresized(NVALUES)) == NULL) goto done;
    for (int j = 0; j < NVALUES; j++) {
        PyObject *x = PyFloat_FromDouble(dv[j]);
        if (x == NULL || PyDict_SetItem(values, value_keys[j], x) < 0) {
            Py_XDECREF(x);
            goto done;
        }
        Py_DECREF(x);
    }
    if ((counts = _PyDict_NewPresized(NCOUNTS)) == NULL) goto done;
    PyObject *cv_[NCOUNTS] = {
        PyLong_FromDouble(n), PyLong_FromDouble(b[PT]), PyLong_FromDouble(b[CT]),
        PyLong_FromDouble(fpd), Py_XNewRef(PyList_GET_ITEM(distinct, D_KEY)),
        Py_XNewRef(PyList_GET_ITEM(distinct, D_IP)),
        Py_XNewRef(PyList_GET_ITEM(distinct, D_NET)), PyLong_FromDouble(b[RISKY])};
    int bad = 0;
    for (int j = 0; j < NCOUNTS; j++) {
        if (!bad && (cv_[j] == NULL || PyDict_SetItem(counts, count_keys[j], cv_[j]) < 0))
            bad = 1;
        Py_XDECREF(cv_[j]);
    }
    if (bad) goto done;
    view = PyBaseObject_Type.tp_new((PyTypeObject *)view_type, empty_args, NULL);
    if (view == NULL) goto done;
    PyObject *account = PyObject_GetAttr(st, field_keys[F_ACCOUNT]);
    if (account == NULL) goto done;
    PyObject *first = PyFloat_FromDouble(b[FIRST]), *last = PyFloat_FromDouble(b[LAST]);
    PyObject *fields[NFIELDS] = {args[0],
                                 account,
                                 args[2],
                                 args[3],
                                 first,
                                 last,
                                 values,
                                 counts,
                                 PyTuple_GET_ITEM(scan, 1),
                                 PyTuple_GET_ITEM(scan, 2),
                                 PyTuple_GET_ITEM(scan, 3),
                                 fps,
                                 st};
    bad = first == NULL || last == NULL;
    for (int j = 0; j < NFIELDS && !bad; j++)
        bad = PyObject_SetAttr(view, field_keys[j], fields[j]) < 0;
    Py_DECREF(account);
    Py_XDECREF(first);
    Py_XDECREF(last);
    if (bad) goto done;
    result = Py_NewRef(view);
done:
    PyBuffer_Release(&bv);
    Py_XDECREF(seen);
    Py_XDECREF(scan);
    Py_XDECREF(fps);
    Py_XDECREF(values);
    Py_XDECREF(counts);
    Py_XDECREF(view);
    return result;
}

/* ---- an account's buckets: one array('B') of Bucket records, in index order ---- */

/* a count as stored: saturated at 2**32 - 1 (windows.pack_buckets) */
static inline uint32_t u32_of(double x) { return x >= 4294967295.0 ? UINT32_MAX : (uint32_t)x; }

/* a count plus ``n`` (not negative: the schema's minimum), saturated as u32_of does */
static inline uint32_t sat_add(uint32_t a, long long n) {
    uint64_t s = (uint64_t)a + (uint64_t)n;
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

/* a stored bucket as K doubles (windows.unpack_buckets) */
static void bucket_load(const Bucket *s, double d[K]) {
    d[IDX] = s->idx;
    d[REQ] = s->req;
    d[PT] = s->pt;
    d[CT] = s->ct;
    d[ERR] = s->err;
    d[THR] = s->thr;
    d[RISKY] = s->risky;
    d[FPD] = s->fpd;
    d[REP] = s->rep;
    d[NNET] = s->nnet;
    d[NAGENT] = s->nagent;
    d[GAPS] = s->gaps;
    d[GSUM] = s->gsum;
    d[GSQ] = s->gsq;
    d[NEWM] = s->newm;
    d[FIRST] = s->first;
    d[LAST] = s->last;
}

/* K doubles stored as a bucket (windows.pack_buckets) */
static void bucket_store(Bucket *s, const double d[K]) {
    s->idx = (int32_t)d[IDX];
    s->req = u32_of(d[REQ]);
    s->pt = u32_of(d[PT]);
    s->ct = u32_of(d[CT]);
    s->err = u32_of(d[ERR]);
    s->thr = u32_of(d[THR]);
    s->risky = u32_of(d[RISKY]);
    s->fpd = u32_of(d[FPD]);
    s->rep = u32_of(d[REP]);
    s->nnet = u32_of(d[NNET]);
    s->nagent = u32_of(d[NAGENT]);
    s->gaps = u32_of(d[GAPS]);
    s->gsum = d[GSUM];
    s->gsq = d[GSQ];
    s->newm = u32_of(d[NEWM]);
    s->first = d[FIRST];
    s->last = d[LAST];
}

/* the account's buckets opened for writing: *b the records, *n how many */
static int buckets_open(PyObject *arr, Py_buffer *v, Bucket **b, Py_ssize_t *n) {
    if (PyObject_GetBuffer(arr, v, PyBUF_WRITABLE) < 0) return -1;
    if (v->itemsize != 1 || v->len % (Py_ssize_t)sizeof(Bucket)) {
        PyBuffer_Release(v);
        PyErr_SetString(PyExc_ValueError, "not buckets (array('B') of windows.BUCKET records)");
        return -1;
    }
    *b = (Bucket *)v->buf;
    *n = v->len / (Py_ssize_t)sizeof(Bucket);
    return 0;
}

/* 1 and the position of open bucket ``index``, or 0 and where it goes (open buckets are
 * the last ones, in index order; every closed one is below ``index``) */
static int open_bucket(const Bucket *b, Py_ssize_t n, long long index, Py_ssize_t *at) {
    Py_ssize_t i = n;
    while (i && b[i - 1].idx > index) i--;
    if (i && b[i - 1].idx == index) {
        *at = i - 1;
        return 1;
    }
    *at = i;
    return 0;
}

/* where the hour accumulator ends: 1, or 0 without one (windows._hour_end; its index is
 * minus its minutes, a bucket's is its index) */
static inline Py_ssize_t hour_end(const Bucket *b, Py_ssize_t n) { return n && b[0].idx < 0; }

/* the position where the buckets of index ``through`` or below end (windows._ring_end) */
static Py_ssize_t ring_end(const Bucket *b, Py_ssize_t n, long long through) {
    Py_ssize_t i = hour_end(b, n);
    while (i < n && b[i].idx <= through) i++;
    return i;
}

/* ``arr`` with its buckets [at, at + cut) replaced by the K counters ``ins`` (none when
 * NULL), as a new array of exactly that size (one resized in place keeps spare room), set
 * on ``st``: every change of an account's bucket count goes through here (windows: slices
 * and concatenation). New reference. */
static PyObject *splice_buckets(PyObject *st, PyObject *arr, Py_ssize_t at, Py_ssize_t cut,
                                const double *ins) {
    Py_buffer ov, nv;
    Bucket *old;
    Py_ssize_t n, add = ins ? 1 : 0;
    if (buckets_open(arr, &ov, &old, &n) < 0) return NULL;
    PyObject *out = PySequence_Repeat(zero_byte, (n - cut + add) * (Py_ssize_t)sizeof(Bucket));
    if (out == NULL || PyObject_GetBuffer(out, &nv, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&ov);
        Py_XDECREF(out);
        return NULL;
    }
    Bucket *nb = (Bucket *)nv.buf;
    if (at) memcpy(nb, old, at * sizeof(Bucket)); /* old is NULL while the array is empty */
    if (ins) bucket_store(nb + at, ins);
    if (n > at + cut) memcpy(nb + at + add, old + at + cut, (n - at - cut) * sizeof(Bucket));
    PyBuffer_Release(&nv);
    PyBuffer_Release(&ov);
    if (PyObject_SetAttr(st, a_buckets, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* ---- close(): WindowStore._close for every account of one closing bucket ---- */

/* a double counter buffer (array('d') of K) opened for writing */
static int dbuf(PyObject *arr, Py_buffer *v, double **out) {
    if (PyObject_GetBuffer(arr, v, PyBUF_WRITABLE) < 0) return -1;
    if (v->len != (Py_ssize_t)(K * sizeof(double)) || v->itemsize != sizeof(double)) {
        PyBuffer_Release(v);
        PyErr_SetString(PyExc_ValueError, "not a bucket (array('d') of K counters)");
        return -1;
    }
    *out = (double *)v->buf;
    return 0;
}

/* Python's a % b for b > 0 */
static inline long long pymod(long long a, long long b) {
    long long r = a % b;
    return r < 0 ? r + b : r;
}

/* replace the account's table ``attr`` by its filtered copy when something was dropped */
static int refilter(PyObject *st, PyObject *attr, int pairs, uint64_t floor_, int keep_known,
                    uint64_t min_cap, uint64_t only_above) {
    PyObject *obj = PyObject_GetAttr(st, attr);
    if (obj == NULL) return -1;
    if (obj == Py_None) {
        Py_DECREF(obj);
        return 0;
    }
    RTable r;
    if (rtable(obj, &r, pairs) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    PyObject *nt = Py_None;
    Py_INCREF(nt);
    if (r.t[0] > only_above) {
        Py_DECREF(nt);
        nt = filtered(r.t, r.n, pairs, floor_, keep_known, min_cap);
    }
    PyBuffer_Release(&r.view);
    Py_DECREF(obj);
    if (nt == NULL) return -1;
    int rc = nt == Py_None ? 0 : PyObject_SetAttr(st, attr, nt);
    Py_DECREF(nt);
    return rc;
}

/* the learned per-minute rates of stats_short (in the seen table's header): 1 = hot (or
 * no history), 0 = not */
static int is_hot(PyObject *st, const double *o, double min_short, long long young_views,
                  double hot_log) {
    if (o[REQ] < min_short) return 0;
    PyObject *obj = PyObject_GetAttr(st, a_seen);
    if (obj == NULL) return -1;
    RTable r;
    if (rtable(obj, &r, 1) < 0) {
        Py_DECREF(obj);
        return -1;
    }
    int hot = 1; /* no 5-minute history */
    if (r.t[1] >= HEAD + STATS && r.t[H_SHORT] != 0) {
        double d[STATS];
        memcpy(d, &r.t[H_SHORT], sizeof d);
        hot = d[0] < (double)young_views || log1p(o[REQ]) >= d[2] + hot_log ||
              log1p(o[CT]) >= d[3] + hot_log;
    }
    PyBuffer_Release(&r.view);
    Py_DECREF(obj);
    return hot;
}

/* one account's bucket ``index`` closed; *view = (st, roll, ring length) or NULL */
static int close_one(PyObject *st, long long index, long long vb, double min_short,
                     long long young_views, double hot_log, PyObject *expiry,
                     PyObject *in_hour, PyObject **view) {
    *view = NULL;
    int rc = -1;
    PyObject *buckets = NULL, *phase = NULL, *roll = NULL;
    Py_buffer bv;
    int have_bv = 0;
    Bucket *all;
    double ob[K];
    Py_ssize_t nd;

    /* the first open bucket is ``index``'s: closes go in index order */
    if ((buckets = PyObject_GetAttr(st, a_buckets)) == NULL) goto done;
    if (buckets_open(buckets, &bv, &all, &nd) < 0) goto done;
    have_bv = 1;
    Py_ssize_t at = ring_end(all, nd, index - 1);
    if (at == nd || all[at].idx != index) {
        /* every (account, bucket) is registered once, when the bucket is created */
        PyErr_Format(PyExc_AssertionError, "no open bucket %lld for %R", index, st);
        goto done;
    }
    bucket_load(all + at, ob);

    /* the hour accumulator, first in the buckets: minus its minutes in IDX, counters
     * summed, first/last kept; the account's first bucket of the hour starts it */
    if (hour_end(all, nd)) {
        double hb[K];
        bucket_load(all, hb);
        double first = ob[FIRST] < hb[FIRST] ? ob[FIRST] : hb[FIRST];
        double last = ob[LAST] > hb[LAST] ? ob[LAST] : hb[LAST];
        double minutes = 1 - hb[IDX];
        for (int j = 0; j < K; j++) hb[j] += ob[j];
        hb[IDX] = -minutes;
        hb[FIRST] = first;
        hb[LAST] = last;
        bucket_store(all, hb);
    } else { /* the hour goes in front of the buckets */
        double hb[K];
        memcpy(hb, ob, sizeof hb);
        hb[IDX] = -1.0;
        PyBuffer_Release(&bv);
        have_bv = 0;
        PyObject *grown = splice_buckets(st, buckets, 0, 0, hb);
        if (grown == NULL) goto done;
        Py_SETREF(buckets, grown);
        if (PyList_Append(in_hour, st) < 0) goto done;
        if (buckets_open(buckets, &bv, &all, &nd) < 0) goto done;
        have_bv = 1;
        at += 1;
    }
    const Py_ssize_t lo = 1; /* where the closed buckets start, after the hour */

    /* when the short view's closed buckets expire */
    {
        PyObject *key = PyLong_FromLongLong(index + vb);
        if (key == NULL) goto done;
        PyObject *lst = PyDict_GetItemWithError(expiry, key);
        int bad;
        if (lst != NULL) {
            bad = PyList_Append(lst, st) < 0;
        } else if (PyErr_Occurred()) {
            bad = 1;
        } else {
            PyObject *nl = PyList_New(1);
            bad = nl == NULL;
            if (!bad) {
                Py_INCREF(st);
                PyList_SET_ITEM(nl, 0, st);
                bad = PyDict_SetItem(expiry, key, nl) < 0;
                Py_DECREF(nl);
            }
        }
        Py_DECREF(key);
        if (bad) goto done;
    }
    /* a view at the account's view boundary, or in between for a hot minute */
    long long ph;
    if ((phase = PyObject_GetAttr(st, a_phase)) == NULL) goto done;
    if ((ph = PyLong_AsLongLong(phase)) == -1 && PyErr_Occurred()) goto done;
    int due = !pymod(index + 1 + ph, vb);
    if (!due && (due = is_hot(st, ob, min_short, young_views, hot_log)) < 0) goto done;

    /* if due, the view's counters: its closed buckets (``index``'s last) summed in index
     * order, before the cut below takes the first of them */
    long long horizon = index - vb;
    Py_ssize_t from = ring_end(all, nd, horizon);
    Py_ssize_t ring = at - from + 1; /* closed buckets in the view */
    double sums[K] = {0}, first = 0, last = 0;
    for (Py_ssize_t i = 0; due && i < ring; i++) {
        double b[K];
        bucket_load(all + from + i, b);
        for (int j = 0; j < K; j++) sums[j] += b[j];
        if (i == 0 || b[FIRST] < first) first = b[FIRST];
        if (i == 0 || b[LAST] > last) last = b[LAST];
    }
    sums[FIRST] = first;
    sums[LAST] = last;
    /* then the closed buckets no later view covers are cut out, after the hour: the next
     * one (``index + 1``'s) starts after ``horizon + 1`` */
    Py_ssize_t gone = ring_end(all, nd, horizon + 1);
    PyBuffer_Release(&bv);
    have_bv = 0;
    if (gone > lo) { /* a new array of exactly the rest (PySequence_DelSlice keeps room) */
        PyObject *rest = splice_buckets(st, buckets, lo, gone - lo, NULL);
        if (rest == NULL) goto done;
        Py_SETREF(buckets, rest);
    }
    if (refilter(st, a_seen, 1, floor_of(horizon, S_LAST), 1, PAIRS_MIN, SEEN_CAP) < 0)
        goto done;
    if (refilter(st, a_fps, 0, floor_of(horizon, 1), 0, PACKED_MIN, 0) < 0) goto done;
    if (!due || sums[REQ] < min_short) {
        rc = 0;
        goto done;
    }
    if ((roll = PySequence_Repeat(zero_double, K)) == NULL) goto done;
    {
        Py_buffer rv;
        double *rb;
        if (dbuf(roll, &rv, &rb) < 0) goto done;
        memcpy(rb, sums, sizeof sums);
        PyBuffer_Release(&rv);
    }
    if ((*view = Py_BuildValue("OOn", st, roll, ring)) == NULL) goto done;
    rc = 0;
done:
    if (have_bv) PyBuffer_Release(&bv);
    Py_XDECREF(buckets);
    Py_XDECREF(phase);
    Py_XDECREF(roll);
    return rc;
}

static PyObject *hot_close(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "close(windows, states: list, index)");
        return NULL;
    }
    PyObject *ws = args[0], *states = args[1];
    long long index = PyLong_AsLongLong(args[2]);
    if (index == -1 && PyErr_Occurred()) return NULL;
    long long vb, young_views;
    double min_short, hot_log;
    PyObject *expiry = NULL, *in_hour = NULL, *out = NULL;
    if (get_ll_attr(ws, a_view_buckets, &vb) < 0 || get_ll_attr(ws, a_young, &young_views) < 0 ||
        get_double_attr(ws, a_min_short, &min_short) < 0 ||
        get_double_attr(ws, a_hot_log, &hot_log) < 0)
        return NULL;
    if (vb <= 0) {
        PyErr_SetString(PyExc_ValueError, "view_buckets must be positive");
        return NULL;
    }
    if ((expiry = PyObject_GetAttr(ws, a_expiry)) == NULL) goto done;
    if ((in_hour = PyObject_GetAttr(ws, a_in_hour)) == NULL) goto done;
    if (!PyDict_Check(expiry) || !PyList_Check(in_hour)) {
        PyErr_SetString(PyExc_TypeError, "WindowStore._expiry / _in_hour have the wrong type");
        goto done;
    }
    if ((out = PyList_New(0)) == NULL) goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(states); i++) {
        PyObject *view;
        if (close_one(PyList_GET_ITEM(states, i), index, vb, min_short, young_views, hot_log,
                      expiry, in_hour, &view) < 0) {
            Py_CLEAR(out);
            goto done;
        }
        if (view != NULL) {
            int bad = PyList_Append(out, view) < 0;
            Py_DECREF(view);
            if (bad) {
                Py_CLEAR(out);
                goto done;
            }
        }
    }
done:
    Py_XDECREF(expiry);
    Py_XDECREF(in_hour);
    return out;
}

/* ---- partition() ---- */

/* Kafka's murmur2 (kafka.partitioner.default.murmur2, the Java client's Utils.murmur2) */
static uint32_t murmur2(const uint8_t *data, size_t len) {
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28cU ^ (uint32_t)len;
    size_t n4 = len / 4;
    for (size_t i = 0; i < n4; i++) {
        uint32_t k = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 |
                     (uint32_t)data[4 * i + 2] << 16 | (uint32_t)data[4 * i + 3] << 24;
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    const uint8_t *tail = data + (len & ~(size_t)3);
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)tail[2] << 16; /* fall through */
    case 2:
        h ^= (uint32_t)tail[1] << 8; /* fall through */
    case 1:
        h ^= tail[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

/* the partition Kafka's default partitioner picks for a key: murmur2, sign bit cleared */
static inline long kafka_partition(const char *key, size_t n, uint32_t partitions) {
    return (long)((murmur2((const uint8_t *)key, n) & 0x7FFFFFFFU) % partitions);
}

/* records(data, end, partitions, line) -> (records, line): the lines of
 * data[:end] (newline-terminated, the last one perhaps not) as replay.file_records
 * makes them, one (partition, line number, key, raw, 0) per non-empty line: raw is the line
 * without its trailing CR/LF, key the account id found by replay._account_key (None if
 * none), the partition Kafka's for that key (0 without one). Line numbers start at
 * ``line``; the number after the last line is returned with them. */
static PyObject *hot_records(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "records(data: bytes, end, partitions, line)");
        return NULL;
    }
    Py_ssize_t end = PyLong_AsSsize_t(args[1]);
    long long parts = PyLong_AsLongLong(args[2]), line = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred()) return NULL;
    if (end < 0 || end > PyBytes_GET_SIZE(args[0]) || parts <= 0) {
        PyErr_SetString(PyExc_ValueError, "records: bad range or partition count");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(args[0]);
    static const char marker[] = "\"account_id\":";
    const size_t mlen = sizeof marker - 1;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (const char *p = data, *stop = data + end; p < stop; line++) {
        const char *nl = memchr(p, '\n', (size_t)(stop - p));
        const char *next = nl ? nl + 1 : stop;
        const char *q = nl ? nl : stop;
        while (q > p && (q[-1] == '\r' || q[-1] == '\n')) q--;
        if (q > p) {
            const char *k0 = NULL, *k1 = NULL;
            for (const char *m = p; m + mlen <= q; m++) {
                m = memchr(m, '"', (size_t)(q - m));
                if (m == NULL || m + mlen > q) break;
                if (memcmp(m, marker, mlen) == 0) {
                    const char *j = memchr(m + mlen, '"', (size_t)(q - m - mlen));
                    const char *k = j ? memchr(j + 1, '"', (size_t)(q - j - 1)) : NULL;
                    if (j != NULL && k != NULL) {
                        k0 = j + 1;
                        k1 = k;
                    }
                    break;
                }
            }
            long pt = k0 && k1 > k0 ? kafka_partition(k0, (size_t)(k1 - k0), (uint32_t)parts) : 0;
            /* (partition, line, key, raw, 0), built directly: Py_BuildValue's format string,
             * parsed per line, was 8 % of reading a file into records */
            PyObject *rec = PyTuple_New(5);
            if (rec != NULL) {
                PyTuple_SET_ITEM(rec, 0, PyLong_FromLong(pt));
                PyTuple_SET_ITEM(rec, 1, PyLong_FromLongLong(line));
                PyTuple_SET_ITEM(rec, 2, k0 ? PyBytes_FromStringAndSize(k0, k1 - k0)
                                            : Py_NewRef(Py_None));
                PyTuple_SET_ITEM(rec, 3, PyBytes_FromStringAndSize(p, q - p));
                PyTuple_SET_ITEM(rec, 4, PyLong_FromLong(0));
                for (int j = 0; j < 5; j++) {
                    if (PyTuple_GET_ITEM(rec, j) == NULL) {
                        Py_CLEAR(rec); /* (a tuple's NULL items are skipped on dealloc) */
                        break;
                    }
                }
            }
            if (rec == NULL || PyList_Append(out, rec) < 0) {
                Py_XDECREF(rec);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(rec);
        }
        p = next;
    }
    return Py_BuildValue("(NL)", out, line);
}

/* flow.partition_for: the partition Kafka's default partitioner picks for a bytes key */
static PyObject *hot_partition(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "partition(key: bytes, partitions: int)");
        return NULL;
    }
    long n = PyLong_AsLong(args[1]);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n <= 0) {
        PyErr_SetString(PyExc_ValueError, "partitions must be positive");
        return NULL;
    }
    return PyLong_FromLong(
        kafka_partition(PyBytes_AS_STRING(args[0]), (size_t)PyBytes_GET_SIZE(args[0]), (uint32_t)n));
}

/* ---- event() ---- */

/* One decoded event: its string fields as UTF-8 spans (of the message itself, or of the
 * decoded document's strings), the numbers, and the three strings the core keeps or looks
 * up as objects (new references; ``ip`` may stay NULL until an address lookup needs it). */
typedef struct {
    const char *s[R_TS + 1];
    Py_ssize_t n[R_TS + 1];
    const char *fp; /* NULL: no prompt fingerprint */
    Py_ssize_t fpn;
    PyObject *account, *model, *ip;
    long long pt, ct, status;
    double ts;
} Fields;

enum { O_ORG = NREQ, O_FP, O_RQ, O_RS, NKEYS };
static const char *key_names[NKEYS] = {
    "event_id", "account_id", "api_key_id", "user_agent", "endpoint", "model", "ip", "ts",
    "prompt_tokens", "completion_tokens", "status", "latency_ms", "org_id",
    "prompt_fingerprint", "request_bytes", "response_bytes"};
static PyObject *json_keys[NKEYS]; /* key_names, interned: orjson documents' keys */

static inline const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* The bytes of the word ``w`` that end or spoil a plain string (a quote, a backslash, a
 * control character, DEL or a byte above ASCII), each as its high bit. Only the lowest
 * flag is exact, and it is: a borrow of "below n" or a carry of "+ 1" only starts at a
 * flagged byte and only spills upwards. */
static inline uint64_t special_bytes(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
#define HAS_BELOW(x, n) (((x) - ones * (n)) & ~(x))
    uint64_t below = HAS_BELOW(w, 0x20) | HAS_BELOW(w ^ (ones * '"'), 1) |
                     HAS_BELOW(w ^ (ones * '\\'), 1);
#undef HAS_BELOW
    return (below | (w + ones) | w) & high; /* (w + 1) | w: a byte >= 0x7f */
}

/* The JSON string at ``p`` (its opening quote) when it is printable ASCII without escapes:
 * its span, and the position after it; NULL for any other string. Eight bytes at a time:
 * the first special byte must be the closing quote. */
static inline const char *scan_str(const char *p, const char *end, const char **s,
                                   Py_ssize_t *n) {
    const unsigned char *c = (const unsigned char *)p + 1, *e = (const unsigned char *)end;
    for (; e - c >= 8; c += 8) {
        uint64_t m = special_bytes(load64(c));
        if (m) {
            c += __builtin_ctzll(m) >> 3; /* load64 is little-endian: byte k is bits 8k.. */
            goto found;
        }
    }
    for (; c < e; c++)
        if (*c == '"' || *c < 0x20 || *c > 0x7e || *c == '\\') goto found;
    return NULL;
found:
    if (*c != '"') return NULL;
    *s = p + 1;
    *n = (const char *)c - (p + 1);
    return (const char *)c + 1;
}

/* The JSON number at ``p`` when it is an integer of at most 18 digits (*isint, *iv) or a
 * decimal without exponent (*dv); the position after it. NULL for anything else. */
static const char *scan_num(const char *p, const char *end, int *isint, long long *iv,
                            double *dv) {
    const char *start = p;
    int neg = *p == '-';
    p += neg;
    if (p >= end || *p < '0' || *p > '9') return NULL;
    if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9') return NULL; /* not JSON */
    long long v = 0;
    int digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (++digits > 18) return NULL;
        v = v * 10 + (*p - '0');
    }
    if (p < end && *p == '.') {
        const char *f = ++p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == f || p - start > 40) return NULL;
        if (p < end && (*p == 'e' || *p == 'E')) return NULL;
        char buf[48];
        memcpy(buf, start, (size_t)(p - start));
        buf[p - start] = '\0';
        double d = PyOS_string_to_double(buf, NULL, NULL);
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return NULL;
        }
        *isint = 0;
        *dv = d;
        return p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) return NULL;
    *isint = 1;
    *iv = neg ? -v : v;
    return p;
}

/* The string fields' lengths (in characters) within the contract's limits? */
static int lengths_ok(const Py_ssize_t len[R_TS + 1]) {
    for (int i = 0; i < R_TS; i++) {
        Py_ssize_t lo = i == R_UA ? 0 : i == R_IP ? 2 : 1;
        Py_ssize_t hi = i == R_UA ? MAX_UA : i == R_IP ? 45 : MAX_ID;
        if (len[i] < lo || len[i] > hi) return 0;
    }
    return 1; /* the timestamp's form is fast_ts's to check */
}

/* key_names by length: each row the indices of the names of that length, then -1 */
#define KEY_LEN_MAX 18
static signed char keys_by_len[KEY_LEN_MAX + 1][NKEYS + 1];

static inline int key_of(const char *k, Py_ssize_t n) {
    if (n < 1 || n > KEY_LEN_MAX) return -1;
    for (const signed char *i = keys_by_len[n]; *i >= 0; i++)
        if (key_names[*i][0] == k[0] && memcmp(key_names[*i], k, (size_t)n) == 0) return *i;
    return -1;
}

/* The common spelling of an event, read without building a document: one flat JSON object
 * whose strings are printable ASCII without escapes, whose numbers are plain integers or
 * decimals, with every required field once and the checks of decode() passed. 1 = *e is
 * filled but for its objects; 0 = anything else (decode() then asks orjson). Never an
 * error. Whatever it accepts, orjson reads as the same values (a property test). */
static int scan(const char *p, Py_ssize_t len, Fields *e) {
    const char *end = p + len;
    unsigned seen = 0;
    e->fp = NULL;
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = skip_ws(p + 1, end);
    for (;;) {
        const char *ks, *vs;
        Py_ssize_t kn, vn;
        if (p >= end || *p != '"' || (p = scan_str(p, end, &ks, &kn)) == NULL) return 0;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return 0;
        p = skip_ws(p + 1, end);
        if (p >= end) return 0;
        int k = key_of(ks, kn);
        if (k >= 0) {
            if (seen & (1u << k)) return 0; /* a field given twice: orjson keeps the last */
            seen |= 1u << k;
        }
        if (*p == '"') {
            if ((p = scan_str(p, end, &vs, &vn)) == NULL) return 0;
            if (k >= 0 && k <= R_TS) {
                e->s[k] = vs;
                e->n[k] = vn;
            } else if (k == O_FP || k == O_ORG) {
                if (vn > MAX_ID) return 0;
                if (k == O_FP) {
                    e->fp = vs;
                    e->fpn = vn;
                }
            } else if (k >= 0) {
                return 0; /* a number field given a string */
            }
        } else if (*p == 'n') {
            if (end - p < 4 || memcmp(p, "null", 4) != 0) return 0;
            p += 4;
            if (k >= 0 && k < NREQ) return 0; /* null for a required field */
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            int isint;
            long long iv = 0;
            double dv = 0;
            if ((p = scan_num(p, end, &isint, &iv, &dv)) == NULL) return 0;
            switch (k) {
            case -1:
                break;
            case R_PT:
            case R_CT:
                if (!isint || iv < 0 || iv > MAX_TOKENS) return 0;
                *(k == R_PT ? &e->pt : &e->ct) = iv;
                break;
            case R_STATUS:
                if (!isint || iv < STATUS_MIN || iv > STATUS_MAX) return 0;
                e->status = iv;
                break;
            case R_LAT:
                if (isint ? iv < 0 || iv > MAX_LATENCY_MS : !(0 <= dv && dv <= (double)MAX_LATENCY_MS))
                    return 0;
                break;
            case O_RQ:
            case O_RS:
                if (!isint || iv < 0 || iv > MAX_BYTES) return 0;
                break;
            default:
                return 0; /* a string field given a number */
            }
        } else {
            return 0; /* true, false, an object, an array, or not JSON */
        }
        p = skip_ws(p, end);
        if (p >= end) return 0;
        if (*p == '}') break;
        if (*p != ',') return 0;
        p = skip_ws(p + 1, end);
    }
    if (skip_ws(p + 1, end) != end) return 0;
    if ((seen & ((1u << NREQ) - 1)) != (1u << NREQ) - 1) return 0;
    if (!lengths_ok(e->n)) return 0; /* ASCII: bytes are characters */
    return fast_ts(e->s[R_TS], e->n[R_TS], &e->ts);
}

/* A str of ASCII bytes (the scanner's spans are). */
static PyObject *ascii_str(const char *s, Py_ssize_t n) {
    PyObject *u = PyUnicode_New(n, 127);
    if (u != NULL) memcpy(PyUnicode_DATA(u), s, (size_t)n);
    return u;
}

/* decode + the checks of codec._fast_request; 1 = ordinary valid event, 0 = not (the
 * Python path names the reason), -1 = error. The common spelling is scanned (scan());
 * anything else is decoded by orjson into ``*doc``, which then owns the spans and which
 * the caller releases. On 1, e's objects are new references (e->ip possibly NULL). */
static int decode(PyObject *raw, PyObject **doc, Fields *e) {
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    if (n == 0 || n > max_event_bytes) return 0;
    if (scan(PyBytes_AS_STRING(raw), n, e)) {
        e->account = ascii_str(e->s[R_ACCOUNT_ID], e->n[R_ACCOUNT_ID]);
        e->model = ascii_str(e->s[R_MODEL], e->n[R_MODEL]);
        if (e->account == NULL || e->model == NULL) return -1;
        return 1;
    }
    PyObject *d = PyObject_CallOneArg(orjson_loads, raw);
    if (d == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *f[NREQ];
    if (!PyDict_CheckExact(d)) goto no;
    for (int i = 0; i < NREQ; i++) {
        f[i] = PyDict_GetItemWithError(d, json_keys[i]);
        if (f[i] == NULL) {
            PyErr_Clear();
            goto no;
        }
    }
    for (int i = 0; i <= R_TS; i++)
        if (!PyUnicode_CheckExact(f[i])) goto no;
    for (int i = R_PT; i <= R_STATUS; i++)
        if (!PyLong_CheckExact(f[i])) goto no;
    PyObject *lat = f[R_LAT];
    Py_ssize_t len[R_TS + 1];
    for (int i = 0; i <= R_TS; i++) len[i] = PyUnicode_GET_LENGTH(f[i]);
    if (!lengths_ok(len)) goto no;
    if (!get_ll(f[R_PT], 0, MAX_TOKENS, &e->pt) || !get_ll(f[R_CT], 0, MAX_TOKENS, &e->ct) ||
        !get_ll(f[R_STATUS], STATUS_MIN, STATUS_MAX, &e->status))
        goto no;
    if (PyLong_CheckExact(lat)) {
        long long l;
        if (!get_ll(lat, 0, MAX_LATENCY_MS, &l)) goto no;
    } else if (PyFloat_CheckExact(lat)) {
        double l = PyFloat_AS_DOUBLE(lat);
        if (!(0 <= l && l <= (double)MAX_LATENCY_MS)) goto no;
    } else {
        goto no;
    }
    PyObject *fp = NULL;
    if (PyDict_GET_SIZE(d) != 12) {
        PyObject *org = PyDict_GetItemWithError(d, json_keys[O_ORG]);
        fp = PyDict_GetItemWithError(d, json_keys[O_FP]);
        PyObject *rq = PyDict_GetItemWithError(d, json_keys[O_RQ]);
        PyObject *rs = PyDict_GetItemWithError(d, json_keys[O_RS]);
        if (PyErr_Occurred()) {
            PyErr_Clear();
            goto no;
        }
        long long tmp;
        if (org == Py_None) org = NULL;
        if (fp == Py_None) fp = NULL;
        if (rq == Py_None) rq = NULL;
        if (rs == Py_None) rs = NULL;
        if (org && !(PyUnicode_CheckExact(org) && PyUnicode_GET_LENGTH(org) <= MAX_ID)) goto no;
        if (fp && !(PyUnicode_CheckExact(fp) && PyUnicode_GET_LENGTH(fp) <= MAX_ID)) goto no;
        if (rq && !(PyLong_CheckExact(rq) && get_ll(rq, 0, MAX_BYTES, &tmp))) goto no;
        if (rs && !(PyLong_CheckExact(rs) && get_ll(rs, 0, MAX_BYTES, &tmp))) goto no;
    }
    /* the spans (a string that has no UTF-8 form, a lone surrogate: the Python path) */
    for (int i = 0; i <= R_TS; i++)
        if ((e->s[i] = PyUnicode_AsUTF8AndSize(f[i], &e->n[i])) == NULL) goto clear;
    e->fp = NULL;
    if (fp != NULL && (e->fp = PyUnicode_AsUTF8AndSize(fp, &e->fpn)) == NULL) goto clear;
    if (!PyUnicode_IS_ASCII(f[R_TS]) || !fast_ts(e->s[R_TS], e->n[R_TS], &e->ts)) goto no;
    e->account = Py_NewRef(f[R_ACCOUNT_ID]);
    e->model = Py_NewRef(f[R_MODEL]);
    e->ip = Py_NewRef(f[R_IP]);
    *doc = d;
    return 1;
clear:
    PyErr_Clear();
no:
    Py_DECREF(d);
    return 0;
}

/* scan(raw) -> None, or what event() reads from the message when scanned: the string
 * fields, the timestamp in seconds, the token counts, the status and the fingerprint */
static PyObject *hot_scan(PyObject *self, PyObject *raw) {
    if (!PyBytes_Check(raw)) {
        PyErr_SetString(PyExc_TypeError, "scan(raw: bytes)");
        return NULL;
    }
    if (seconds_cache == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "pipeline._hot is not configured (import pipeline.flow)");
        return NULL;
    }
    Fields e = {{0}};
    if (!scan(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), &e)) Py_RETURN_NONE;
    PyObject *t = PyTuple_New(R_TS + 6);
    if (t == NULL) return NULL;
    for (int i = 0; i <= R_TS; i++) PyTuple_SET_ITEM(t, i, ascii_str(e.s[i], e.n[i]));
    PyTuple_SET_ITEM(t, R_TS + 1, PyFloat_FromDouble(e.ts));
    PyTuple_SET_ITEM(t, R_TS + 2, PyLong_FromLongLong(e.pt));
    PyTuple_SET_ITEM(t, R_TS + 3, PyLong_FromLongLong(e.ct));
    PyTuple_SET_ITEM(t, R_TS + 4, PyLong_FromLongLong(e.status));
    PyTuple_SET_ITEM(t, R_TS + 5, e.fp ? ascii_str(e.fp, e.fpn) : Py_NewRef(Py_None));
    for (int i = 0; i < R_TS + 6; i++)
        if (PyTuple_GET_ITEM(t, i) == NULL) {
            Py_DECREF(t);
            return NULL;
        }
    return t;
}

/* Are intel overrides in force? ``network.overrides.active`` (a plain attribute, read
 * without calling into Python); an object without it is asked with bool(). */
static int overrides_active(PyObject *network) {
    PyObject *overrides = PyObject_GetAttr(network, a_overrides);
    if (overrides == NULL) return -1;
    PyObject *active = PyObject_GetAttr(overrides, a_active_flag);
    int has;
    if (active != NULL) {
        has = PyObject_IsTrue(active);
        Py_DECREF(active);
    } else {
        PyErr_Clear();
        has = PyObject_IsTrue(overrides);
    }
    Py_DECREF(overrides);
    return has;
}

/* The network block of the address ``ips`` at ``ts``: the enricher's cache when there
 * are no overrides (``has``: there are; its key, network.address_key, made here for an IPv4 address), else
 * (and on a miss, and for IPv6) the enricher's own lookup, with the address's str
 * ``*ip`` (made here when NULL: a new reference for the caller). New reference. */
static PyObject *network_info(PyObject *network, int has, const char *ips, Py_ssize_t ipn,
                              PyObject **ip, double ts) {
    uint32_t addr;
    PyObject *key = NULL; /* an IPv4 address's value: the cache's key, and parsed */
    if (!has && canonical_ipv4(ips, ipn, &addr)) {
        PyObject *cache = PyObject_GetAttr(network, a_cache);
        if (cache == NULL) return NULL;
        if ((key = PyLong_FromUnsignedLong(addr)) == NULL) {
            Py_DECREF(cache);
            return NULL;
        }
        PyObject *info = PyDict_GetItemWithError(cache, key); /* address_key -> NetworkInfo */
        Py_DECREF(cache);
        if (info != NULL || PyErr_Occurred()) {
            Py_DECREF(key);
            return Py_XNewRef(info);
        }
    }
    /* NetworkEnricher.lookup_parsed(4, value, ip, ts) on a cache miss of an IPv4 address
     * (parsed already), else NetworkEnricher.lookup(ip, ts) */
    PyObject *info = NULL, *t = NULL;
    if ((*ip != NULL || (*ip = ascii_str(ips, ipn)) != NULL) && /* canonical: ASCII */
        (t = PyFloat_FromDouble(ts)) != NULL) {
        if (key != NULL) {
            PyObject *args[5] = {network, small_four, key, *ip, t};
            info = PyObject_VectorcallMethod(a_lookup_parsed, args, 5, NULL);
        } else {
            PyObject *args[3] = {network, *ip, t};
            info = PyObject_VectorcallMethod(a_lookup, args, 3, NULL);
        }
    }
    Py_XDECREF(t);
    Py_XDECREF(key);
    return info;
}

/* the seen keys of an address's network, and whether it is a risky kind */
typedef struct {
    uint64_t net, asn, country; /* asn, country: 0 when unknown */
    int risky;
} NetKeys;

#define MEMO_SLOTS 65536 /* direct-mapped, 4 words each: 2 MB per enricher */
#define MEMO_VALID (1ULL << 61)
#define MEMO_RISKY (1ULL << 62)

/* NetKeys from a NetworkInfo; 1, or 0 when a field is not what the Python path expects */
static int keys_of_info(PyObject *info, const char *ips, Py_ssize_t ipn, NetKeys *nk) {
    PyObject *kind = NULL, *prefix = NULL, *asn = NULL, *country = NULL;
    int rc = -1;
    const char *u;
    Py_ssize_t un;
    if ((kind = PyObject_GetAttr(info, a_kind)) == NULL ||
        (prefix = PyObject_GetAttr(info, a_prefix)) == NULL ||
        (asn = PyObject_GetAttr(info, a_asn)) == NULL ||
        (country = PyObject_GetAttr(info, a_country)) == NULL)
        goto done;
    int risky = PySet_Contains(risky_kinds, kind);
    if (risky < 0) goto done;
    nk->risky = risky;
    rc = 0;
    if (prefix != Py_None && !PyUnicode_CheckExact(prefix)) goto done;
    if (prefix == Py_None || PyUnicode_GET_LENGTH(prefix) == 0) { /* windows: ip + "/" */
        uint8_t buf[64];
        if (ipn > 60) goto clear;
        memcpy(buf, ips, (size_t)ipn);
        buf[ipn] = '/';
        nk->net = ((uint64_t)(D_NET + 1) << 61) | value_hash(buf, (size_t)ipn + 1);
    } else {
        if ((u = PyUnicode_AsUTF8AndSize(prefix, &un)) == NULL) goto clear;
        nk->net = ((uint64_t)(D_NET + 1) << 61) | value_hash((const uint8_t *)u, (size_t)un);
    }
    nk->asn = 0;
    if (asn != Py_None) {
        int overflow;
        if (!PyLong_CheckExact(asn)) goto done;
        long long a = PyLong_AsLongLongAndOverflow(asn, &overflow);
        if (overflow || (a == -1 && PyErr_Occurred())) goto clear;
        long long m = a % (long long)M61;
        if (m < 0) m += (long long)M61;
        nk->asn = ((uint64_t)(D_ASN + 1) << 61) | (uint64_t)m;
    }
    nk->country = 0;
    if (country != Py_None) {
        if (!PyUnicode_CheckExact(country)) goto done;
        if ((u = PyUnicode_AsUTF8AndSize(country, &un)) == NULL) goto clear;
        nk->country = ((uint64_t)(D_COUNTRY + 1) << 61) | value_hash((const uint8_t *)u, (size_t)un);
    }
    rc = 1;
    goto done;
clear:
    PyErr_Clear();
    rc = 0;
done:
    Py_XDECREF(kind);
    Py_XDECREF(prefix);
    Py_XDECREF(asn);
    Py_XDECREF(country);
    return rc;
}

/* The enricher as event() reads it, once per call of event() or feed() (overrides are
 * put and deleted only by Python, which a run of events never returns to): whether it has
 * overrides and, when it has none, its ``hot_memo`` (created here on first use) and the
 * memo's buffer. ``network`` is borrowed from the caller. */
typedef struct {
    PyObject *network;
    int overrides;
    PyObject *memo; /* new reference, or NULL with overrides or a memo not of our size */
    Py_buffer mv;
} Net;

/* 0, or -1 with an error */
static int net_open(Net *n, PyObject *network) {
    memset(n, 0, sizeof *n);
    n->network = network;
    if ((n->overrides = overrides_active(network)) < 0) return -1;
    if (n->overrides) return 0;
    PyObject *memo = PyObject_GetAttr(network, a_hot_memo);
    if (memo == NULL) return -1;
    if (memo == Py_None) {
        Py_DECREF(memo);
        memo = zero_array(4 * MEMO_SLOTS);
        if (memo == NULL || PyObject_SetAttr(network, a_hot_memo, memo) < 0) {
            Py_XDECREF(memo);
            return -1;
        }
    }
    if (PyObject_GetBuffer(memo, &n->mv, PyBUF_WRITABLE) < 0) {
        Py_DECREF(memo);
        return -1;
    }
    if (n->mv.len != MEMO_SLOTS * 32) { /* not ours: every lookup asks the enricher */
        PyBuffer_Release(&n->mv);
        Py_DECREF(memo);
        return 0;
    }
    n->memo = memo;
    return 0;
}

static void net_close(Net *n) {
    if (n->memo != NULL) {
        PyBuffer_Release(&n->mv);
        Py_CLEAR(n->memo);
    }
    n->network = NULL;
}

/* The network keys of the address ``ips`` at ``ts``: 1, 0 to take the Python path, -1 on
 * error. ``*ip`` is its str, made here (a new reference for the caller) when NULL and a
 * lookup needs it.
 *
 * Without intel overrides, the network of an address is a function of the address alone
 * (the enricher's static data), so its keys are memoised in the enricher's ``hot_memo``
 * (direct-mapped by the address's key; an event then reads one entry instead of the
 * cache dict, the NetworkInfo and four of its fields). With overrides, every event asks
 * NetworkEnricher.lookup, as the Python path does, and nothing is memoised. */
static int net_keys(Net *n, const char *ips, Py_ssize_t ipn, PyObject **ip, double ts,
                    uint64_t k_ip, NetKeys *nk) {
    uint64_t *entry = NULL, tag = (k_ip & M61) | MEMO_VALID;
    if (n->memo == NULL && !n->overrides) return 0; /* a memo not of our size */
    if (n->memo != NULL) {
        entry = (uint64_t *)n->mv.buf + 4 * slot_of(k_ip, MEMO_SLOTS);
        if ((entry[0] & ~MEMO_RISKY) == tag) {
            nk->net = entry[1];
            nk->asn = entry[2];
            nk->country = entry[3];
            nk->risky = (entry[0] & MEMO_RISKY) != 0;
            return 1;
        }
    }
    int rc = -1;
    PyObject *info = network_info(n->network, n->overrides, ips, ipn, ip, ts);
    if (info != NULL) {
        rc = keys_of_info(info, ips, ipn, nk);
        Py_DECREF(info);
    }
    if (entry != NULL && rc == 1) {
        entry[0] = tag | (nk->risky ? MEMO_RISKY : 0);
        entry[1] = nk->net;
        entry[2] = nk->asn;
        entry[3] = nk->country;
    }
    return rc;
}

/* flow.is_packed: a newline inside the message once ASCII whitespace is stripped from
 * both ends (bytes.strip()) */
static inline int is_ws(uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

static int is_packed(PyObject *raw) {
    const uint8_t *p = (const uint8_t *)PyBytes_AS_STRING(raw);
    Py_ssize_t n = PyBytes_GET_SIZE(raw);
    if (n == 0 || memchr(p, '\n', (size_t)n) == NULL) return 0;
    Py_ssize_t i = 0, j = n;
    while (i < j && is_ws(p[i])) i++;
    while (j > i && is_ws(p[j - 1])) j--;
    return j > i && memchr(p + i, '\n', (size_t)(j - i)) != NULL;
}

/* A WindowStore's attributes that event() reads, read once per call of event() or feed()
 * (a run of events of one partition never comes back to Python, which alone changes the
 * others) instead of once per event; ``max_ts``, which events move, is written back by
 * store_flush. ``ws`` is borrowed from, and kept alive by, the caller. */
typedef struct {
    PyObject *ws;
    PyObject *accounts, *model_first; /* new references */
    int started;                      /* max_ts is not None: the partition's clock is set */
    int dirty;                        /* max_ts moved: write it back */
    long long bs, closed, view_buckets;
    double max_ts, grace, first_ts;
} Store;

static void store_release(Store *s) {
    Py_CLEAR(s->accounts);
    Py_CLEAR(s->model_first);
    s->ws = NULL;
}

/* 0, or -1 with an error */
static int store_open(Store *s, PyObject *ws) {
    memset(s, 0, sizeof *s);
    s->ws = ws;
    PyObject *mx = PyObject_GetAttr(ws, a_max_ts);
    if (mx == NULL) return -1;
    if (mx == Py_None) { /* the first event of a partition sets its clock: Python path */
        Py_DECREF(mx);
        return 0;
    }
    s->max_ts = PyFloat_AsDouble(mx);
    Py_DECREF(mx);
    if (s->max_ts == -1.0 && PyErr_Occurred()) return -1;
    s->started = 1;
    if (get_ll_attr(ws, a_bucket_seconds, &s->bs) < 0 || get_ll_attr(ws, a_closed, &s->closed) < 0 ||
        get_ll_attr(ws, a_view_buckets, &s->view_buckets) < 0 ||
        get_double_attr(ws, a_grace, &s->grace) < 0 ||
        get_double_attr(ws, a_first_ts, &s->first_ts) < 0)
        goto error;
    if ((s->accounts = PyObject_GetAttr(ws, a_accounts)) == NULL ||
        (s->model_first = PyObject_GetAttr(ws, a_model_first)) == NULL)
        goto error;
    if (!PyDict_CheckExact(s->accounts) || !PyDict_CheckExact(s->model_first)) {
        PyErr_SetString(PyExc_TypeError, "event: the store's accounts and model_first are dicts");
        goto error;
    }
    return 0;
error:
    store_release(s);
    return -1;
}

/* writes max_ts back if it moved and releases the store: 0, or -1 with an error (the
 * store is released either way) */
static int store_flush(Store *s) {
    int rc = 0;
    if (s->ws != NULL && s->dirty) { /* after a failed event too: its counts were applied */
        PyObject *et, *ev, *tb;
        PyErr_Fetch(&et, &ev, &tb); /* that event's error stays the one raised */
        rc = set_double_attr(s->ws, a_max_ts, s->max_ts);
        if (et != NULL) {
            PyErr_Clear();
            PyErr_Restore(et, ev, tb);
        }
    }
    s->dirty = 0;
    store_release(s);
    return rc;
}

/* event(): one message's value into the windows of ``s``; see the method table */
static PyObject *event_one(Store *s, Net *net, PyObject *raw, double max_skew) {
    if (!PyBytes_CheckExact(raw)) return PyLong_FromLong(FALLBACK);
    if (is_packed(raw)) return PyLong_FromLong(PACKED);

    PyObject *doc = NULL, *ip = NULL, *st = NULL, *result = NULL;
    PyObject *o = NULL, *ws = s->ws;
    Table seen = {NULL}, fps = {NULL};
    Py_buffer bv;
    int have_bv = 0;
    Fields e = {{0}};
    const long long bs = s->bs, closed = s->closed, view_buckets = s->view_buckets;
    const double grace = s->grace;
    double max_ts = s->max_ts;

    int ok = decode(raw, &doc, &e);
    if (ok <= 0) return ok < 0 ? NULL : PyLong_FromLong(FALLBACK);

    if (!s->started) goto fallback; /* the first event of a partition sets its clock */
    if (e.ts - max_ts > max_skew) goto fallback;

    const char *ips = e.s[R_IP];
    Py_ssize_t ipn = e.n[R_IP];
    if (canonical_ipv4(ips, ipn, NULL)) {
        ip = Py_XNewRef(e.ip); /* NULL when scanned: made only if a lookup needs it */
    } else {
        if (e.ip == NULL && (e.ip = ascii_str(ips, ipn)) == NULL) goto error;
        if ((ip = PyObject_CallOneArg(normalize_ip, e.ip)) == NULL) goto error;
        if (ip == Py_None) goto fallback;
        if ((ips = PyUnicode_AsUTF8AndSize(ip, &ipn)) == NULL) {
            PyErr_Clear();
            goto fallback;
        }
    }

    double findex = py_floordiv(e.ts, (double)bs);
    if (!(findex >= 0 && findex < (double)MAX_INDEX)) goto fallback;
    int64_t index = (int64_t)findex;

    /* the account; a new one is created as WindowStore.add does */
    st = PyDict_GetItemWithError(s->accounts, e.account);
    if (st != NULL) {
        Py_INCREF(st);
    } else if (!PyErr_Occurred()) {
        st = PyObject_CallOneArg(account_state_type, e.account);
        if (st != NULL && PyDict_SetItem(s->accounts, e.account, st) < 0) Py_CLEAR(st);
    }
    if (st == NULL) goto error;

    /* duplicates (one of the account's last event ids, in its seen table's header:
     * windows.HEAD): Python path */
    uint64_t h = (uint64_t)blake2b_64((const uint8_t *)e.s[R_EVENT_ID], (size_t)e.n[R_EVENT_ID]);
    PyObject *seen_obj = PyObject_GetAttr(st, a_seen);
    if (seen_obj == NULL || table_open(&seen, seen_obj) < 0) goto error;
    if (!is_pair_table(seen.t, seen.n) || seen.t[1] < HEAD) goto fallback; /* not ours */
    uint64_t at = seen.t[H_IDS_AT];
    if (at >= RECENT_IDS) goto fallback; /* never so; the write below relies on it */
    for (int i = 0; i < RECENT_IDS; i++)
        if (seen.t[H_IDS + i] == h) goto fallback;


    /* the seen keys (windows.seen_key) and the fingerprint key (windows.fp_key) */
    uint64_t k_key, k_ip, k_agent, k_model, k_fp = 0;
    NetKeys nk = {0};
#define SKEY(dim, u, un) (((uint64_t)((dim) + 1) << 61) | value_hash((const uint8_t *)(u), (size_t)(un)))
    k_key = SKEY(D_KEY, e.s[R_KEY], e.n[R_KEY]);
    k_ip = SKEY(D_IP, ips, ipn);
    k_agent = SKEY(D_AGENT, e.s[R_UA], e.n[R_UA]);
    k_model = SKEY(D_MODEL, e.s[R_MODEL], e.n[R_MODEL]);
#undef SKEY
    if (e.fp != NULL) k_fp = value_hash((const uint8_t *)e.fp, (size_t)e.fpn) % PACK_KEY_MAX + 1;
    int nrc = net_keys(net, ips, ipn, &ip, e.ts, k_ip, &nk);
    if (nrc < 0) goto error;
    if (nrc == 0) goto fallback;
    int risky = nk.risky;

    /* ---- from here on, the event is counted (no more fallbacks) ---- */
    seen.t[H_IDS + at] = h;
    seen.t[H_IDS_AT] = (at + 1) % RECENT_IDS;
    double ts = e.ts;
    if (ts > max_ts) {
        s->max_ts = max_ts = ts;
        s->dirty = 1;
    }
    int late = 0;
    if (index <= closed) {
        index = closed + 1;
        late = 1;
        long long n;
        if (get_ll_attr(ws, a_late, &n) < 0) goto error;
        PyObject *ln = PyLong_FromLongLong(n + 1);
        if (ln == NULL || PyObject_SetAttr(ws, a_late, ln) < 0) {
            Py_XDECREF(ln);
            goto error;
        }
        Py_DECREF(ln);
    }

    /* the open bucket of ``index``: open buckets come last, in index order, and every
     * closed one is below ``index`` (WindowStore.add) */
    if ((o = PyObject_GetAttr(st, a_buckets)) == NULL) goto error;
    Bucket *all;
    Py_ssize_t nd, bat;
    if (buckets_open(o, &bv, &all, &nd) < 0) goto error;
    have_bv = 1;
    if (!open_bucket(all, nd, index, &bat)) {
        PyBuffer_Release(&bv);
        have_bv = 0;
        double empty[K] = {0}; /* windows._EMPTY (configure checks) */
        empty[FIRST] = INFINITY;
        empty[IDX] = (double)index;
        PyObject *grown = splice_buckets(st, o, bat, 0, empty);
        if (grown == NULL) goto error;
        Py_SETREF(o, grown);
        PyObject *active = PyObject_GetAttr(ws, a_active);
        PyObject *key = PyLong_FromLongLong(index);
        int rc = -1;
        if (active != NULL && key != NULL) {
            PyObject *lst = PyDict_GetItemWithError(active, key);
            if (lst != NULL) {
                rc = PyList_Append(lst, st);
            } else if (!PyErr_Occurred()) {
                PyObject *nl = PyList_New(1);
                if (nl != NULL) {
                    Py_INCREF(st);
                    PyList_SET_ITEM(nl, 0, st);
                    rc = PyDict_SetItem(active, key, nl);
                    Py_DECREF(nl);
                }
            }
        }
        Py_XDECREF(active);
        Py_XDECREF(key);
        if (rc < 0) goto error;
        if (buckets_open(o, &bv, &all, &nd) < 0) goto error;
        have_bv = 1;
    }
    Bucket *b = all + bat; /* counted in place (a count saturates: sat_add) */
    b->req = sat_add(b->req, 1);
    b->pt = sat_add(b->pt, e.pt);
    b->ct = sat_add(b->ct, e.ct);
    if (e.status >= 400) {
        if (e.status == 429)
            b->thr = sat_add(b->thr, 1);
        else
            b->err = sat_add(b->err, 1);
    }
    if (risky) b->risky = sat_add(b->risky, 1);
    if (ts < b->first) b->first = ts;
    if (ts > b->last) b->last = ts;
    double last; /* the seen table is the one opened above: no see() has grown it yet */
    memcpy(&last, &seen.t[H_LAST_TS], 8);
    if (ts > last) {
        double gap = ts - last;
        if (gap < GAP_MAX) {
            b->gaps = sat_add(b->gaps, 1);
            b->gsum += gap;
            b->gsq += gap * gap;
        }
        memcpy(&seen.t[H_LAST_TS], &ts, 8);
    }

    /* distinct values */
    uint64_t v, ui = (uint64_t)index;
    if (see(&seen, st, k_key, ui, D_KEY, &v) < 0) goto error;
    if (see(&seen, st, k_ip, ui, D_IP, &v) < 0) goto error;
    if (see(&seen, st, nk.net, ui, D_NET, &v) < 0) goto error;
    if (!(v & KNOWN)) b->nnet = sat_add(b->nnet, 1);
    if (nk.asn && see(&seen, st, nk.asn, ui, D_ASN, &v) < 0) goto error;
    if (nk.country && see(&seen, st, nk.country, ui, D_COUNTRY, &v) < 0) goto error;
    if (see(&seen, st, k_agent, ui, D_AGENT, &v) < 0) goto error;
    if (!(v & KNOWN)) b->nagent = sat_add(b->nagent, 1);
    if (see(&seen, st, k_model, ui, D_MODEL, &v) < 0) goto error;
    {
        PyObject *mfs = s->model_first;
        PyObject *fo = PyDict_GetItemWithError(mfs, e.model);
        double first = ts;
        if (fo != NULL) {
            first = PyFloat_AsDouble(fo);
        } else if (!PyErr_Occurred()) {
            first = ts;
            PyObject *tf = PyFloat_FromDouble(ts);
            if (tf == NULL || PyDict_SetItem(mfs, e.model, tf) < 0) {
                Py_XDECREF(tf);
                goto error;
            }
            Py_DECREF(tf);
        }
        if (PyErr_Occurred()) goto error;
        if (ts - first < NEW_MODEL_SECONDS && first - s->first_ts >= 3600.0)
            b->newm = sat_add(b->newm, 1);
    }
    if (e.fp != NULL) {
        b->fpd = sat_add(b->fpd, 1);
        int64_t horizon = index - view_buckets;
        PyObject *fo = PyObject_GetAttr(st, a_fps);
        if (fo == NULL) goto error;
        if (fo == Py_None) {
            Py_DECREF(fo);
            fo = make_table(PACKED_MIN, NULL, 0, 0, NULL, 0);
            if (fo == NULL || PyObject_SetAttr(st, a_fps, fo) < 0) {
                Py_XDECREF(fo);
                goto error;
            }
        }
        if (table_open(&fps, fo) < 0) goto error;
        uint64_t p = packed_find(fps.t, fps.n, k_fp);
        uint64_t w = fps.t[p];
        if (w != 0 && (int64_t)((w & PACK_MASK) >> 1) > horizon) {
            b->rep = sat_add(b->rep, 1);
            fps.t[p] = (k_fp << PACK_BITS) | ((uint64_t)index << 1) | 1;
        } else if (w != 0) {
            fps.t[p] = (k_fp << PACK_BITS) | ((uint64_t)index << 1);
        } else if (fps.t[0] < FP_CAP) {
            if (packed_insert(&fps, st, k_fp, (uint64_t)index << 1) < 0) goto error;
        } else {
            int x = expire_fps(&fps, st, horizon);
            if (x < 0) goto error;
            if (x && packed_insert(&fps, st, k_fp, (uint64_t)index << 1) < 0) goto error;
            /* else: beyond the cap within the view: counted, not remembered */
        }
    }

    /* 1 = a late event (folded forward); 2 = the watermark has passed a bucket still open
     * (WindowStore.due) */
    {
        double wi = py_floordiv(max_ts - grace, (double)bs) - 1;
        int advance = wi > (double)closed;
        result = PyLong_FromLong(late | (advance << 1));
    }
    goto done;

fallback:
    result = PyLong_FromLong(FALLBACK);
    goto done;
error:
    result = NULL;
done:
    if (have_bv) PyBuffer_Release(&bv);
    Py_XDECREF(ip);
    Py_XDECREF(e.account);
    Py_XDECREF(e.model);
    Py_XDECREF(e.ip);
    Py_XDECREF(doc); /* after the spans' last use */
    Py_XDECREF(st);
    table_close(&seen);
    table_close(&fps);
    Py_XDECREF(o);
    return result;
}

static PyObject *hot_event(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "event(windows, network, raw, max_skew)");
        return NULL;
    }
    double max_skew = PyFloat_AsDouble(args[3]);
    if (max_skew == -1.0 && PyErr_Occurred()) return NULL;
    Store s;
    Net net;
    if (net_open(&net, args[1]) < 0) return NULL;
    if (store_open(&s, args[0]) < 0) {
        net_close(&net);
        return NULL;
    }
    PyObject *res = event_one(&s, &net, args[2], max_skew);
    if (store_flush(&s) < 0) Py_CLEAR(res);
    net_close(&net);
    return res;
}

/* feed(stores, network, records, start, max_skew, fed) -> (i, r): event() over
 * records[start:] (replay's (partition, offset, key, value, ...) tuples) for as long as it
 * answers 0, without returning to Python. stores[p] is partition p's WindowStore (None: no
 * shard yet). Each record counted so adds 1 to fed[2p] and sets fed[2p + 1] to its
 * offset + 1 (``fed``: a writable array('q') of 2 * len(stores)). Stops at the first record
 * whose answer r is not 0 (already applied, as event()'s), or that it cannot take at all
 * (r = NO_STORE: not a tuple as above, or no store for its partition; nothing applied);
 * i is that record's index, or len(records) with r = 0. */
#define NO_STORE (-3)
static PyObject *hot_feed(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6 || !PyList_Check(args[0]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "feed(stores: list, network, records: list, start, max_skew, fed)");
        return NULL;
    }
    PyObject *stores = args[0], *network = args[1], *records = args[2];
    Py_ssize_t i = PyLong_AsSsize_t(args[3]);
    double max_skew = PyFloat_AsDouble(args[4]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer fv;
    if (PyObject_GetBuffer(args[5], &fv, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) return NULL;
    Py_ssize_t nstores = PyList_GET_SIZE(stores);
    if (fv.itemsize != 8 || fv.format == NULL || strcmp(fv.format, "q") != 0 ||
        fv.len < (Py_ssize_t)(2 * 8 * nstores) || i < 0) {
        PyBuffer_Release(&fv);
        PyErr_SetString(PyExc_ValueError, "feed: fed must be an array('q') of 2 * len(stores)");
        return NULL;
    }
    int64_t *fed = (int64_t *)fv.buf;
    Net net;
    if (net_open(&net, network) < 0) {
        PyBuffer_Release(&fv);
        return NULL;
    }
    Store *open = PyMem_Calloc((size_t)(nstores ? nstores : 1), sizeof(Store));
    if (open == NULL) {
        net_close(&net);
        PyBuffer_Release(&fv);
        return PyErr_NoMemory();
    }
    long r = 0;
    int failed = 0;
    for (; i < PyList_GET_SIZE(records); i++) {
        PyObject *rec = PyList_GET_ITEM(records, i);
        if (!PyTuple_CheckExact(rec) || PyTuple_GET_SIZE(rec) < 4 ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(rec, 0)) ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(rec, 1))) {
            r = NO_STORE;
            break;
        }
        long long p = PyLong_AsLongLong(PyTuple_GET_ITEM(rec, 0));
        long long offset = PyLong_AsLongLong(PyTuple_GET_ITEM(rec, 1));
        if (PyErr_Occurred()) {
            PyErr_Clear(); /* out of range: Python's path says what it is */
            r = NO_STORE;
            break;
        }
        if (p < 0 || p >= nstores || PyList_GET_ITEM(stores, p) == Py_None) {
            r = NO_STORE;
            break;
        }
        Store *s = &open[p];
        if (s->ws == NULL && store_open(s, PyList_GET_ITEM(stores, p)) < 0) {
            failed = 1;
            break;
        }
        PyObject *res = event_one(s, &net, PyTuple_GET_ITEM(rec, 3), max_skew);
        if (res == NULL) {
            failed = 1;
            break;
        }
        r = PyLong_AsLong(res);
        Py_DECREF(res);
        if (r != 0) break;
        fed[2 * p] += 1;
        fed[2 * p + 1] = offset + 1;
    }
    for (Py_ssize_t k = 0; k < nstores; k++) /* before any return to Python */
        if (store_flush(&open[k]) < 0) failed = 1;
    PyMem_Free(open);
    net_close(&net);
    PyBuffer_Release(&fv);
    if (failed) return NULL;
    return Py_BuildValue("(nl)", i, r);
}

/* ---- population baselines and an account's own history (detect/population.py,
 * detect/account.py): the arithmetic of every scored view, in the same operations and
 * order as the Python it stands for, so that both give the same doubles (the build
 * turns off floating-point contraction: no fused multiply-add). ---- */

/* the doubles of list ``o`` (exactly ``n`` floats), into ``out``; 0, or -1 with an error */
static int float_list(PyObject *o, Py_ssize_t n, double *out, const char *fn, const char *what) {
    if (!PyList_Check(o) || PyList_GET_SIZE(o) != n) {
        PyErr_Format(PyExc_ValueError, "%s %s: a list of %zd floats expected", fn, what, n);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyFloat_AsDouble(PyList_GET_ITEM(o, i));
        if (out[i] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *list_of(const double *v, Py_ssize_t n) {
    PyObject *out = PyList_New(n);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *f = PyFloat_FromDouble(v[i]);
        if (f == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, f);
    }
    return out;
}

/* ---- range tables (enrich.ipdata.range_find_py is the reference) ---- */

/* One unsigned integer column of a range table: an array.array of typecode I, L or Q
 * (4 or 8 bytes a value), as a read-only buffer. 0, or -1 with an error. */
static int uint_column(PyObject *obj, Py_buffer *view, const char *what) {
    if (PyObject_CheckBuffer(obj) && PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_ND) == 0) {
        const char *f = view->format;
        if (view->ndim == 1 && f != NULL && (f[0] == 'I' || f[0] == 'L' || f[0] == 'Q') &&
            f[1] == 0 && (view->itemsize == 4 || view->itemsize == 8))
            return 0;
        PyBuffer_Release(view);
    }
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "range_find: %s must be an array of typecode I, L or Q", what);
    return -1;
}

static inline uint64_t column_at(const Py_buffer *v, Py_ssize_t i) {
    return v->itemsize == 4 ? ((const uint32_t *)v->buf)[i] : ((const uint64_t *)v->buf)[i];
}

/* range_find(starts, ends, value) -> i with starts[i] <= value <= ends[i], or -1: a binary
 * search of sorted, non-overlapping ranges held in arrays, without the Python int per
 * probe that bisect makes of an array's items. */
static PyObject *hot_range_find(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "range_find(starts, ends, value)");
        return NULL;
    }
    if (!PyLong_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "range_find: value must be an int");
        return NULL;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(args[2]);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return NULL;
        PyErr_Clear(); /* below 0 or above 2**64 - 1: outside every range of the columns */
        return PyLong_FromLong(-1);
    }
    Py_buffer s, e;
    if (uint_column(args[0], &s, "starts") < 0) return NULL;
    if (uint_column(args[1], &e, "ends") < 0) {
        PyBuffer_Release(&s);
        return NULL;
    }
    Py_ssize_t n = s.len / s.itemsize, found = -1;
    if (e.len / e.itemsize != n) {
        PyBuffer_Release(&s);
        PyBuffer_Release(&e);
        PyErr_SetString(PyExc_ValueError, "range_find: starts and ends differ in length");
        return NULL;
    }
    uint64_t value = (uint64_t)v;
    Py_ssize_t lo = 0, hi = n; /* bisect_right: the first start above value */
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (value < column_at(&s, mid))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo > 0 && value <= column_at(&e, lo - 1)) found = lo - 1;
    PyBuffer_Release(&s);
    PyBuffer_Release(&e);
    return PyLong_FromSsize_t(found);
}

#define MAX_SCORED 32

/* The arguments (mean, sq, logs, scalar) of ew_learn and zs (``fn``; ``usage`` is its
 * signature): the three lists' doubles into m, q, x and the scalar into *k. The number
 * of values, or -1 with an error. */
static Py_ssize_t moments_args(PyObject *const *args, Py_ssize_t nargs, const char *fn,
                               const char *usage, double *m, double *q, double *x, double *k) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, usage);
        return -1;
    }
    Py_ssize_t n = PyList_Check(args[2]) ? PyList_GET_SIZE(args[2]) : -1;
    if (n < 0 || n > MAX_SCORED) {
        PyErr_Format(PyExc_ValueError, "%s: logs must be a list of at most 32 floats", fn);
        return -1;
    }
    *k = PyFloat_AsDouble(args[3]);
    if ((*k == -1.0 && PyErr_Occurred()) || float_list(args[0], n, m, fn, "mean") < 0 ||
        float_list(args[1], n, q, fn, "sq") < 0 || float_list(args[2], n, x, fn, "logs") < 0)
        return -1;
    return n;
}

/* ew_learn(mean, sq, logs, alpha) -> (mean', sq'): _Baseline.learn after its first value */
static PyObject *hot_ew_learn(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    double m[MAX_SCORED], q[MAX_SCORED], x[MAX_SCORED], a;
    Py_ssize_t n = moments_args(args, nargs, "ew_learn", "ew_learn(mean, sq, logs, alpha)", m,
                                q, x, &a);
    if (n < 0) return NULL;
    double b = 1 - a;
    for (Py_ssize_t i = 0; i < n; i++) {
        m[i] = a * x[i] + b * m[i];
        q[i] = a * (x[i] * x[i]) + b * q[i];
    }
    PyObject *mean = list_of(m, n), *sq = mean == NULL ? NULL : list_of(q, n);
    if (sq == NULL) {
        Py_XDECREF(mean);
        return NULL;
    }
    return Py_BuildValue("(NN)", mean, sq);
}

/* zs(mean, sq, logs, min_std) -> [z, ...]: _Baseline.z */
static PyObject *hot_zs(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    double m[MAX_SCORED], q[MAX_SCORED], x[MAX_SCORED], z[MAX_SCORED], min_std;
    Py_ssize_t n = moments_args(args, nargs, "zs", "zs(mean, sq, logs, min_std)", m, q, x,
                                &min_std);
    if (n < 0) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        double var = q[i] - m[i] * m[i];
        double std = sqrt(var < 0.0 ? 0.0 : var);
        if (std < min_std) std = min_std;
        z[i] = (x[i] - m[i]) / std;
    }
    return list_of(z, n);
}

/* learn_stats(s, logs, alpha, at, unit): account._learn_stats on an existing ``s``, in
 * place (array('d') [n, last, mean..., var...] of 2 + 2 * len(logs) values) */
static PyObject *hot_learn_stats(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "learn_stats(s, logs: tuple, alpha, at, unit)");
        return NULL;
    }
    Py_ssize_t k = PyTuple_GET_SIZE(args[1]);
    double alpha = PyFloat_AsDouble(args[2]), at = PyFloat_AsDouble(args[3]),
           unit = PyFloat_AsDouble(args[4]);
    if (PyErr_Occurred()) return NULL;
    if (k > MAX_SCORED) {
        PyErr_SetString(PyExc_ValueError, "learn_stats: at most 32 logs");
        return NULL;
    }
    double x[MAX_SCORED];
    for (Py_ssize_t i = 0; i < k; i++) {
        x[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(args[1], i));
        if (x[i] == -1.0 && PyErr_Occurred()) return NULL;
    }
    Py_buffer v;
    if (PyObject_GetBuffer(args[0], &v, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) return NULL;
    double *s = (double *)v.buf;
    if (v.format == NULL || strcmp(v.format, "d") != 0 ||
        v.len != (Py_ssize_t)sizeof(double) * (2 + 2 * k)) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "learn_stats: s does not match logs");
        return NULL;
    }
    if (unit == 0.0) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
        return NULL;
    }
    s[0] += 1;
    double steps = (at - s[1]) / unit;
    if (!(steps > 1.0)) steps = 1.0; /* max(1.0, steps): NaN gives 1.0, as max does */
    s[1] = at;
    double a = 1.0 - pow(1.0 - alpha, steps), floor_ = 1.0 / s[0];
    if (floor_ > a) a = floor_; /* max(a, floor_) */
    for (Py_ssize_t i = 0; i < k; i++) {
        double d = x[i] - s[2 + i];
        s[2 + i] += a * d;
        s[2 + k + i] = (1 - a) * (s[2 + k + i] + a * d * d);
    }
    PyBuffer_Release(&v);
    Py_RETURN_NONE;
}

/* ---- clone(): population._clone, the reference, in C ---- */

/* is the dict key ``key`` the interned name ``name``? (attribute names are interned: the
 * pointers match; anything else is compared) */
static int is_name(PyObject *key, PyObject *name) {
    return key == name || (PyUnicode_Check(key) && PyUnicode_Compare(key, name) == 0);
}

/* a copy of river padded-tree ``node`` and its subtree with zero masses, appended to
 * ``nodes`` in depth-first order, exactly as _clone makes it: a branch's attributes set one
 * by one in its own order (as river's __init__ does, so instances share their keys), a
 * leaf's by one update of its dict with dict(d, l_mass=0, r_mass=0) (as river's
 * Leaf.__init__ does: the same dict sizes too) */
static PyObject *clone_node(PyObject *node, PyObject *nodes, PyObject *zero) {
    if (Py_EnterRecursiveCall(" in _hot.clone")) return NULL;
    PyObject *d = NULL, *copy = NULL, *dd = NULL, *tmp = NULL, *result = NULL;
    if ((d = PyObject_GenericGetDict(node, NULL)) == NULL) goto done;
    if ((copy = PyBaseObject_Type.tp_new(Py_TYPE(node), empty_args, NULL)) == NULL) goto done;
    if (PyList_Append(nodes, copy) < 0) goto done;
    if (PyDict_GetItemWithError(d, a_children) == NULL) { /* a leaf */
        if (PyErr_Occurred()) goto done;
        if ((tmp = PyDict_Copy(d)) == NULL || PyDict_SetItem(tmp, a_l_mass, zero) < 0 ||
            PyDict_SetItem(tmp, a_r_mass, zero) < 0 ||
            (dd = PyObject_GenericGetDict(copy, NULL)) == NULL || PyDict_Update(dd, tmp) < 0)
            goto done;
        result = Py_NewRef(copy);
        goto done;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(d, &pos, &key, &value)) {
        PyObject *v;
        if (is_name(key, a_children) && PyTuple_Check(value)) {
            Py_ssize_t n = PyTuple_GET_SIZE(value);
            if ((v = PyTuple_New(n)) == NULL) goto done;
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *c = clone_node(PyTuple_GET_ITEM(value, i), nodes, zero);
                if (c == NULL) {
                    Py_DECREF(v);
                    goto done;
                }
                PyTuple_SET_ITEM(v, i, c);
            }
        } else if (is_name(key, a_l_mass) || is_name(key, a_r_mass)) {
            v = Py_NewRef(zero);
        } else {
            v = Py_NewRef(value);
        }
        int rc = PyObject_SetAttr(copy, key, v);
        Py_DECREF(v);
        if (rc < 0) goto done;
    }
    result = Py_NewRef(copy);
done:
    Py_XDECREF(d);
    Py_XDECREF(dd);
    Py_XDECREF(tmp);
    Py_XDECREF(copy);
    Py_LeaveRecursiveCall();
    return result;
}

static PyObject *hot_clone(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "clone(node, nodes: list)");
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) return NULL;
    PyObject *out = clone_node(args[0], args[1], zero);
    Py_DECREF(zero);
    return out;
}

/* view_type(View): the class view() makes (windows.View, which registers itself) */
static PyObject *hot_view_type(PyObject *self, PyObject *cls) {
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "view_type(cls: type)");
        return NULL;
    }
    Py_INCREF(cls);
    Py_XSETREF(view_type, cls);
    Py_RETURN_NONE;
}

static PyObject *hot_configure(PyObject *self, PyObject *args, PyObject *kw) {
    static char *names[] = {"loads",         "normalize_ip",  "seconds",
                            "risky_kinds",   "empty_bucket",  "bucket_probe",
                            "account_state", "max_event_bytes", NULL};
    PyObject *loads, *norm, *secs, *risky, *empty, *probe, *acct;
    Py_ssize_t maxb;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO!O!OOOn", names, &loads, &norm, &PyDict_Type,
                                     &secs, &PyFrozenSet_Type, &risky, &empty, &probe, &acct,
                                     &maxb))
        return NULL;
    Py_INCREF(loads);
    Py_XSETREF(orjson_loads, loads);
    Py_INCREF(norm);
    Py_XSETREF(normalize_ip, norm);
    Py_INCREF(secs);
    Py_XSETREF(seconds_cache, secs);
    Py_INCREF(risky);
    Py_XSETREF(risky_kinds, risky);
    { /* event_one writes windows._EMPTY itself: check that they agree */
        Py_buffer v;
        if (PyObject_GetBuffer(empty, &v, PyBUF_FORMAT) < 0) return NULL;
        int same = v.len == (Py_ssize_t)(K * sizeof(double)) && strcmp(v.format, "d") == 0;
        for (int j = 0; same && j < K; j++)
            same = ((double *)v.buf)[j] == (j == FIRST ? INFINITY : 0.0);
        PyBuffer_Release(&v);
        if (!same) {
            PyErr_SetString(PyExc_ValueError, "empty_bucket is not _hot's empty bucket");
            return NULL;
        }
    }
    { /* windows.BUCKET and Bucket agree: a record of field j = j + 1 reads back as such */
        Py_buffer v;
        if (PyObject_GetBuffer(probe, &v, PyBUF_SIMPLE) < 0) return NULL;
        int same = v.len == (Py_ssize_t)sizeof(Bucket);
        if (same) {
            double d[K];
            bucket_load((const Bucket *)v.buf, d);
            for (int j = 0; same && j < K; j++) same = d[j] == (double)(j + 1);
        }
        PyBuffer_Release(&v);
        if (!same) {
            PyErr_SetString(PyExc_ValueError, "bucket_probe is not _hot's Bucket layout");
            return NULL;
        }
    }
    Py_INCREF(acct);
    Py_XSETREF(account_state_type, acct);
    max_event_bytes = maxb;
    have_last = 0;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"event", (PyCFunction)(void (*)(void))hot_event, METH_FASTCALL,
     "event(windows, network, raw, max_skew) -> int\n\n"
     "Count one encoded request event into the windows: -1 = take the Python path "
     "(nothing was changed); else bit 0 = late, bit 1 = a bucket is due to close."},
    {"feed", (PyCFunction)(void (*)(void))hot_feed, METH_FASTCALL,
     "feed(stores, network, records, start, max_skew, fed) -> (i, r): event() over replay "
     "records until an answer is not 0 (see Flow.process_records)."},
    {"view", (PyCFunction)(void (*)(void))hot_view, METH_FASTCALL,
     "view(kind, st, start, end, b, lo, hi, active_minutes) -> View (windows.make_view)."},
    {"clone", (PyCFunction)(void (*)(void))hot_clone, METH_FASTCALL,
     "clone(node, nodes) -> copy: a river padded tree with zero masses (population._clone)."},
    {"view_type", hot_view_type, METH_O, "view_type(View): the class view() makes."},
    {"range_find", (PyCFunction)(void (*)(void))hot_range_find, METH_FASTCALL,
     "range_find(starts, ends, value) -> index of the range holding value, or -1."},
    {"ew_learn", (PyCFunction)(void (*)(void))hot_ew_learn, METH_FASTCALL,
     "ew_learn(mean, sq, logs, alpha) -> (mean, sq): population._Baseline.learn's update."},
    {"zs", (PyCFunction)(void (*)(void))hot_zs, METH_FASTCALL,
     "zs(mean, sq, logs, min_std) -> [z, ...]: population._Baseline.z."},
    {"learn_stats", (PyCFunction)(void (*)(void))hot_learn_stats, METH_FASTCALL,
     "learn_stats(s, logs, alpha, at, unit): account._learn_stats on an existing s, in place."},
    {"records", (PyCFunction)(void (*)(void))hot_records, METH_FASTCALL,
     "records(data, end, partitions, line) -> ([(partition, line, key, raw, 0)], "
     "next line): replay.file_records' records of the lines of data[:end]."},
    {"partition", (PyCFunction)(void (*)(void))hot_partition, METH_FASTCALL,
     "partition(key, partitions) -> int: Kafka's default partitioner (murmur2)."},
    {"scan", hot_scan, METH_O,
     "scan(raw) -> None | (event_id, account_id, api_key_id, user_agent, endpoint, model, "
     "ip, ts_text, ts, prompt_tokens, completion_tokens, status, prompt_fingerprint)\n\n"
     "What event() reads from a message in the common spelling without orjson; None for "
     "any other message (event() then decodes it with orjson)."},
    {"event_id_hash", hot_event_id_hash, METH_O,
     "64-bit BLAKE2b of an event id (windows.event_id_hash)."},
    {"value_hash", hot_value_hash, METH_O, "61-bit value hash (table.value_hash)."},
    {"expire_fps", (PyCFunction)(void (*)(void))hot_expire_fps, METH_FASTCALL,
     "expire_fps(fps, through) -> table | None (windows._Tables.expire_fps)."},
    {"prune_seen", (PyCFunction)(void (*)(void))hot_prune_seen, METH_FASTCALL,
     "prune_seen(seen, through) -> table | None (windows._Tables.prune_seen)."},
    {"scan_seen", (PyCFunction)(void (*)(void))hot_scan_seen, METH_FASTCALL,
     "scan_seen(seen, lo, hi) -> (distinct, nets, agents, ips) (windows._Tables.scan_seen)."},
    {"remember", (PyCFunction)(void (*)(void))hot_remember, METH_FASTCALL,
     "remember(seen, nets, agents) (windows._Tables.remember, in place)."},
    {"repeated_fps", (PyCFunction)(void (*)(void))hot_repeated_fps, METH_FASTCALL,
     "repeated_fps(fps, lo) -> keys (windows._Tables.repeated_fps)."},
    {"close", (PyCFunction)(void (*)(void))hot_close, METH_FASTCALL,
     "close(windows, states, index) -> [(state, roll, ring_len), ...]\n\n"
     "WindowStore._close for each account of ``states`` (in order) whose bucket ``index`` "
     "closes: the accounts that get a short view, with its rolled-up counters."},
    {"configure", (PyCFunction)(void (*)(void))hot_configure, METH_VARARGS | METH_KEYWORDS,
     "Set the objects event() uses (called once by pipeline.features.windows)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "pipeline._hot",
                                    "The per-event hot path in C (see _hot.c).", -1, methods};

#define INTERN(var, text)                                   \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__hot(void) {
    PyObject *array_mod = PyImport_ImportModule("array");
    if (array_mod == NULL) return NULL;
    array_type = PyObject_GetAttrString(array_mod, "array");
    Py_DECREF(array_mod);
    if (array_type == NULL) return NULL;
    if ((zero_word = PyObject_CallFunction(array_type, "s[i]", "Q", 0)) == NULL) return NULL;
    if ((zero_double = PyObject_CallFunction(array_type, "s[d]", "d", 0.0)) == NULL) return NULL;
    if ((zero_byte = PyObject_CallFunction(array_type, "s[i]", "B", 0)) == NULL) return NULL;
    memset(keys_by_len, -1, sizeof keys_by_len);
    for (int i = 0; i < NKEYS; i++) {
        if ((json_keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL) return NULL;
        size_t len = strlen(key_names[i]);
        if (len > KEY_LEN_MAX) {
            PyErr_SetString(PyExc_SystemError, "_hot: a field name above KEY_LEN_MAX");
            return NULL;
        }
        signed char *row = keys_by_len[len];
        while (*row >= 0) row++;
        *row = (signed char)i;
    }
    for (int i = 0; i < NVALUES; i++)
        if ((value_keys[i] = PyUnicode_InternFromString(value_names[i])) == NULL) return NULL;
    for (int i = 0; i < NCOUNTS; i++)
        if ((count_keys[i] = PyUnicode_InternFromString(count_names[i])) == NULL) return NULL;
    for (int i = 0; i < NFIELDS; i++)
        if ((field_keys[i] = PyUnicode_InternFromString(field_names[i])) == NULL) return NULL;
    if ((empty_args = PyTuple_New(0)) == NULL) return NULL;
    INTERN(a_accounts, "accounts");
    INTERN(a_children, "children");
    INTERN(a_l_mass, "l_mass");
    INTERN(a_r_mass, "r_mass");
    INTERN(a_active, "_active");
    INTERN(a_max_ts, "max_ts");
    INTERN(a_first_ts, "first_ts");
    INTERN(a_closed, "closed_through");
    INTERN(a_late, "late_events");
    INTERN(a_model_first, "model_first_seen");
    INTERN(a_bucket_seconds, "bucket_seconds");
    INTERN(a_view_buckets, "view_buckets");
    INTERN(a_grace, "grace");
    INTERN(a_buckets, "buckets");
    INTERN(a_seen, "seen");
    INTERN(a_fps, "fps");
    INTERN(a_cache, "_cache");
    INTERN(a_overrides, "overrides");
    INTERN(a_lookup, "lookup");
    INTERN(a_lookup_parsed, "lookup_parsed");
    if ((small_four = PyLong_FromLong(4)) == NULL) return NULL;
    INTERN(a_kind, "kind");
    INTERN(a_prefix, "prefix");
    INTERN(a_asn, "asn");
    INTERN(a_country, "country");
    INTERN(a_hot_memo, "hot_memo");
    INTERN(a_phase, "phase");
    INTERN(a_young, "young_views");
    INTERN(a_min_short, "min_short");
    INTERN(a_hot_log, "_hot_log");
    INTERN(a_expiry, "_expiry");
    INTERN(a_in_hour, "_in_hour");
    INTERN(a_active_flag, "active");
    return PyModule_Create(&module);
}
