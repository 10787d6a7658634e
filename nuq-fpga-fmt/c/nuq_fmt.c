/*
 * nuq_fmt.c - freestanding C99 loader for the nuq FPGA model format 1.x (see nuq_fmt.h).
 *
 * Mirrors the Rust reader check for check and in the same order, so both report the same first
 * error for any input. No allocation, no C library, no recursion; all size arithmetic is done in
 * 64 bits on values that are capped first.
 */
#include "nuq_fmt.h"

#define CAP_SECTIONS 64u
#define CAP_RECORDS 65536u
#define CAP_DIM 16777216u
#define CAP_ELEMENTS ((uint64_t)1 << 40)
#define CAP_STRING 65536u
#define CAP_CHANNELS 16777216u
#define CAP_HEAD 4096u

/* ---- little-endian loads ------------------------------------------------------------------ */

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t ld32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | ((uint64_t)ld32(p + 4) << 32); }

/* ---- CRC-32C -------------------------------------------------------------------------------- */

/* CRC-32C table for the reflected polynomial 0x82F63B78: entry i is the CRC register after
 * shifting the byte i through eight rounds. Const, so it can live in flash. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0xF26B8303u, 0xE13B70F7u, 0x1350F3F4u, 0xC79A971Fu, 0x35F1141Cu,
    0x26A1E7E8u, 0xD4CA64EBu, 0x8AD958CFu, 0x78B2DBCCu, 0x6BE22838u, 0x9989AB3Bu,
    0x4D43CFD0u, 0xBF284CD3u, 0xAC78BF27u, 0x5E133C24u, 0x105EC76Fu, 0xE235446Cu,
    0xF165B798u, 0x030E349Bu, 0xD7C45070u, 0x25AFD373u, 0x36FF2087u, 0xC494A384u,
    0x9A879FA0u, 0x68EC1CA3u, 0x7BBCEF57u, 0x89D76C54u, 0x5D1D08BFu, 0xAF768BBCu,
    0xBC267848u, 0x4E4DFB4Bu, 0x20BD8EDEu, 0xD2D60DDDu, 0xC186FE29u, 0x33ED7D2Au,
    0xE72719C1u, 0x154C9AC2u, 0x061C6936u, 0xF477EA35u, 0xAA64D611u, 0x580F5512u,
    0x4B5FA6E6u, 0xB93425E5u, 0x6DFE410Eu, 0x9F95C20Du, 0x8CC531F9u, 0x7EAEB2FAu,
    0x30E349B1u, 0xC288CAB2u, 0xD1D83946u, 0x23B3BA45u, 0xF779DEAEu, 0x05125DADu,
    0x1642AE59u, 0xE4292D5Au, 0xBA3A117Eu, 0x4851927Du, 0x5B016189u, 0xA96AE28Au,
    0x7DA08661u, 0x8FCB0562u, 0x9C9BF696u, 0x6EF07595u, 0x417B1DBCu, 0xB3109EBFu,
    0xA0406D4Bu, 0x522BEE48u, 0x86E18AA3u, 0x748A09A0u, 0x67DAFA54u, 0x95B17957u,
    0xCBA24573u, 0x39C9C670u, 0x2A993584u, 0xD8F2B687u, 0x0C38D26Cu, 0xFE53516Fu,
    0xED03A29Bu, 0x1F682198u, 0x5125DAD3u, 0xA34E59D0u, 0xB01EAA24u, 0x42752927u,
    0x96BF4DCCu, 0x64D4CECFu, 0x77843D3Bu, 0x85EFBE38u, 0xDBFC821Cu, 0x2997011Fu,
    0x3AC7F2EBu, 0xC8AC71E8u, 0x1C661503u, 0xEE0D9600u, 0xFD5D65F4u, 0x0F36E6F7u,
    0x61C69362u, 0x93AD1061u, 0x80FDE395u, 0x72966096u, 0xA65C047Du, 0x5437877Eu,
    0x4767748Au, 0xB50CF789u, 0xEB1FCBADu, 0x197448AEu, 0x0A24BB5Au, 0xF84F3859u,
    0x2C855CB2u, 0xDEEEDFB1u, 0xCDBE2C45u, 0x3FD5AF46u, 0x7198540Du, 0x83F3D70Eu,
    0x90A324FAu, 0x62C8A7F9u, 0xB602C312u, 0x44694011u, 0x5739B3E5u, 0xA55230E6u,
    0xFB410CC2u, 0x092A8FC1u, 0x1A7A7C35u, 0xE811FF36u, 0x3CDB9BDDu, 0xCEB018DEu,
    0xDDE0EB2Au, 0x2F8B6829u, 0x82F63B78u, 0x709DB87Bu, 0x63CD4B8Fu, 0x91A6C88Cu,
    0x456CAC67u, 0xB7072F64u, 0xA457DC90u, 0x563C5F93u, 0x082F63B7u, 0xFA44E0B4u,
    0xE9141340u, 0x1B7F9043u, 0xCFB5F4A8u, 0x3DDE77ABu, 0x2E8E845Fu, 0xDCE5075Cu,
    0x92A8FC17u, 0x60C37F14u, 0x73938CE0u, 0x81F80FE3u, 0x55326B08u, 0xA759E80Bu,
    0xB4091BFFu, 0x466298FCu, 0x1871A4D8u, 0xEA1A27DBu, 0xF94AD42Fu, 0x0B21572Cu,
    0xDFEB33C7u, 0x2D80B0C4u, 0x3ED04330u, 0xCCBBC033u, 0xA24BB5A6u, 0x502036A5u,
    0x4370C551u, 0xB11B4652u, 0x65D122B9u, 0x97BAA1BAu, 0x84EA524Eu, 0x7681D14Du,
    0x2892ED69u, 0xDAF96E6Au, 0xC9A99D9Eu, 0x3BC21E9Du, 0xEF087A76u, 0x1D63F975u,
    0x0E330A81u, 0xFC588982u, 0xB21572C9u, 0x407EF1CAu, 0x532E023Eu, 0xA145813Du,
    0x758FE5D6u, 0x87E466D5u, 0x94B49521u, 0x66DF1622u, 0x38CC2A06u, 0xCAA7A905u,
    0xD9F75AF1u, 0x2B9CD9F2u, 0xFF56BD19u, 0x0D3D3E1Au, 0x1E6DCDEEu, 0xEC064EEDu,
    0xC38D26C4u, 0x31E6A5C7u, 0x22B65633u, 0xD0DDD530u, 0x0417B1DBu, 0xF67C32D8u,
    0xE52CC12Cu, 0x1747422Fu, 0x49547E0Bu, 0xBB3FFD08u, 0xA86F0EFCu, 0x5A048DFFu,
    0x8ECEE914u, 0x7CA56A17u, 0x6FF599E3u, 0x9D9E1AE0u, 0xD3D3E1ABu, 0x21B862A8u,
    0x32E8915Cu, 0xC083125Fu, 0x144976B4u, 0xE622F5B7u, 0xF5720643u, 0x07198540u,
    0x590AB964u, 0xAB613A67u, 0xB831C993u, 0x4A5A4A90u, 0x9E902E7Bu, 0x6CFBAD78u,
    0x7FAB5E8Cu, 0x8DC0DD8Fu, 0xE330A81Au, 0x115B2B19u, 0x020BD8EDu, 0xF0605BEEu,
    0x24AA3F05u, 0xD6C1BC06u, 0xC5914FF2u, 0x37FACCF1u, 0x69E9F0D5u, 0x9B8273D6u,
    0x88D28022u, 0x7AB90321u, 0xAE7367CAu, 0x5C18E4C9u, 0x4F48173Du, 0xBD23943Eu,
    0xF36E6F75u, 0x0105EC76u, 0x12551F82u, 0xE03E9C81u, 0x34F4F86Au, 0xC69F7B69u,
    0xD5CF889Du, 0x27A40B9Eu, 0x79B737BAu, 0x8BDCB4B9u, 0x988C474Du, 0x6AE7C44Eu,
    0xBE2DA0A5u, 0x4C4623A6u, 0x5F16D052u, 0xAD7D5351u,
};

static uint32_t crc_raw(uint32_t state, const uint8_t *p, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) state = crc_table[(state ^ p[i]) & 0xFFu] ^ (state >> 8);
    return state;
}

uint32_t nuq_crc32c(uint32_t crc, const uint8_t *data, size_t length) {
    return crc_raw(crc ^ 0xFFFFFFFFu, data, length) ^ 0xFFFFFFFFu;
}

uint32_t nuq_file_crc(const uint8_t *data, size_t length) {
    static const uint8_t zeros[4] = {0, 0, 0, 0};
    uint32_t s = 0xFFFFFFFFu;
    size_t head = length < 40 ? length : 40;
    size_t z = length > 40 ? (length - 40 < 4 ? length - 40 : 4) : 0;
    s = crc_raw(s, data, head);
    s = crc_raw(s, zeros, z);
    if (length > 44) s = crc_raw(s, data + 44, length - 44);
    return s ^ 0xFFFFFFFFu;
}

/* ---- names ---------------------------------------------------------------------------------- */

const char *nuq_status_name(nuq_status s) {
    static const char *const names[] = {"ok", "truncated", "bad_magic", "byte_order", "newer_major",
                                        "older_major", "crc", "invalid", "mismatch", "out_of_range",
                                        "out_of_bounds", "layout", "count_cap", "nonzero_padding",
                                        "duplicate_section", "missing_section", "bad_reference",
                                        "not_utf8", "not_sorted", "overflow"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

const char *nuq_section_name(uint32_t kind) {
    static const char *const names[] = {"unknown", "GRAPH", "CODEBOOKS", "WEIGHTS", "BIASES",
                                        "THRESHOLDS", "SCALES", "METADATA", "ALIGNS", "ZERO_POINTS"};
    return kind < 10 ? names[kind] : "unknown";
}

/* The last section kind a file declaring rules minor `minor` defines. */
static uint32_t last_kind(uint16_t minor) { return minor >= 1 ? NUQ_SECTION_ZERO_POINTS : NUQ_SECTION_METADATA; }

int nuq_section_known(const nuq_file *f, uint32_t kind) { return kind >= 1 && kind <= last_kind(f->rules_minor); }

const char *nuq_op_name(uint16_t op) {
    static const char *const names[] = {"unknown", "input", "conv2d", "linear", "maxpool2d",
                                        "avgpool2d", "global_avgpool", "add", "flatten", "relu",
                                        "aligned_add", "input_zp"};
    return op < 12 ? names[op] : "unknown";
}

/* ---- error plumbing ------------------------------------------------------------------------- */

static nuq_status fail(nuq_error *e, nuq_status s, int32_t loc, int64_t rec, const char *field, uint64_t off) {
    if (e) {
        e->status = s;
        e->location = loc;
        e->record = rec;
        e->field = field;
        e->offset = off;
    }
    return s;
}

/* A section payload under validation. */
typedef struct {
    const uint8_t *p;
    uint64_t len, base;
    int32_t loc;
    uint16_t minor; /* the minor version whose rules apply */
    nuq_error *err;
} sect;

static nuq_status sfail(const sect *s, nuq_status st, int64_t rec, const char *field, uint64_t rel) {
    return fail(s->err, st, s->loc, rec, field, s->base + rel);
}

/* bytes [rel, rel+len) in bounds? */
static nuq_status sslice(const sect *s, int64_t rec, const char *field, uint64_t rel, uint64_t len) {
    uint64_t end = rel + len;
    if (end < rel) return sfail(s, NUQ_E_OVERFLOW, rec, field, rel);
    if (end > s->len) return sfail(s, NUQ_E_OUT_OF_BOUNDS, rec, field, rel);
    return NUQ_OK;
}

static nuq_status szeros(const sect *s, int64_t rec, const char *field, uint64_t from, uint64_t to) {
    uint64_t i, n = to > from ? to - from : 0;
    nuq_status st = sslice(s, rec, field, from, n);
    if (st) return st;
    for (i = from; i < from + n; i++)
        if (s->p[i]) return sfail(s, NUQ_E_NONZERO_PADDING, rec, field, i);
    return NUQ_OK;
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

/* ---- UTF-8 (the same acceptance as Rust's core::str::from_utf8) ------------------------------- */

static int utf8_ok(const uint8_t *p, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        uint64_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) { need = 2; lo = 0xA0; }
        else if (c >= 0xE1 && c <= 0xEC) need = 2;
        else if (c == 0xED) { need = 2; hi = 0x9F; }
        else if (c >= 0xEE && c <= 0xEF) need = 2;
        else if (c == 0xF0) { need = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) { need = 3; hi = 0x8F; }
        else return 0;
        if (n - i - 1 < need) return 0;
        if (p[i + 1] < lo || p[i + 1] > hi) return 0;
        {
            uint64_t k;
            for (k = 2; k <= need; k++)
                if (p[i + k] < 0x80 || p[i + k] > 0xBF) return 0;
        }
        i += need + 1;
    }
    return 1;
}

/* ---- table sections ------------------------------------------------------------------------- */

typedef struct {
    sect s;
    uint64_t head_size, record_size;
    uint32_t count;
    uint64_t cursor; /* blob cursor */
    int extended;    /* head or records larger than in the declared version: later-minor blobs may follow ours */
} table;

static nuq_status table_parse(table *t, const sect *s, uint32_t min_head, uint32_t min_rec) {
    uint32_t hs, rs, n, r;
    uint64_t end;
    nuq_status st;
    t->s = *s;
    st = sslice(s, -1, "head", 0, 16);
    if (st) return st;
    hs = ld32(s->p);
    rs = ld32(s->p + 4);
    n = ld32(s->p + 8);
    r = ld32(s->p + 12);
    if (hs < min_head || hs > CAP_HEAD || hs % 8) return sfail(s, NUQ_E_INVALID, -1, "head_size", 0);
    if (rs < min_rec || rs > CAP_HEAD || rs % 8) return sfail(s, NUQ_E_INVALID, -1, "record_size", 4);
    if (n > CAP_RECORDS) return sfail(s, NUQ_E_COUNT_CAP, -1, "count", 8);
    if (r) return sfail(s, NUQ_E_INVALID, -1, "reserved", 12);
    t->head_size = hs;
    t->record_size = rs;
    t->count = n;
    t->extended = hs > min_head || rs > min_rec;
    end = (uint64_t)hs + (uint64_t)rs * n;
    st = sslice(s, -1, "records", hs, end - hs);
    if (st) return st;
    t->cursor = end;
    return NUQ_OK;
}

static uint64_t rec_off(const table *t, uint32_t i) { return t->head_size + t->record_size * i; }

/* Takes the blob whose 16-byte reference sits at section offset ref_rel. expected_len < 0: any. */
static nuq_status take(table *t, int64_t rec, const char *field, uint64_t ref_rel, uint64_t align,
                       int has_len, uint64_t want_len, uint64_t *out_off, uint64_t *out_len) {
    const sect *s = &t->s;
    uint64_t off = ld64(s->p + ref_rel), len = ld64(s->p + ref_rel + 8);
    uint64_t expected = align_up(t->cursor, align);
    nuq_status st;
    if (off != expected) return sfail(s, NUQ_E_LAYOUT, rec, field, ref_rel);
    if (has_len && len != want_len) return sfail(s, NUQ_E_MISMATCH, rec, field, ref_rel + 8);
    st = szeros(s, rec, "padding", t->cursor, off);
    if (st) return st;
    if (off + len < off) return sfail(s, NUQ_E_OVERFLOW, rec, field, ref_rel);
    if (off + len > s->len) return sfail(s, NUQ_E_OUT_OF_BOUNDS, rec, field, ref_rel);
    t->cursor = off + len;
    *out_off = off;
    *out_len = len;
    return NUQ_OK;
}

static nuq_status table_finish(const table *t) {
    if (t->cursor != t->s.len && !(t->extended && t->cursor < t->s.len))
        return sfail(&t->s, NUQ_E_MISMATCH, -1, "length", t->cursor);
    return NUQ_OK;
}

static nuq_status check_string(const table *t, int64_t rec, const char *field, uint64_t ref_rel, uint64_t off, uint64_t len) {
    if (len > CAP_STRING) return sfail(&t->s, NUQ_E_COUNT_CAP, rec, field, ref_rel);
    if (!utf8_ok(t->s.p + off, len)) return sfail(&t->s, NUQ_E_NOT_UTF8, rec, field, ref_rel);
    return NUQ_OK;
}

static nuq_status reserved_zero(const sect *s, int64_t rec, const char *field, uint64_t rel, uint64_t n) {
    uint64_t k;
    for (k = 0; k < n; k++)
        if (s->p[rel + k]) return sfail(s, NUQ_E_NONZERO_PADDING, rec, field, rel + k);
    return NUQ_OK;
}

/* ---- CODEBOOKS ------------------------------------------------------------------------------ */

static int32_t level_at(const uint8_t *levels, uint8_t elem, uint32_t k) {
    if (elem == NUQ_ELEM_I16) return (int32_t)(int16_t)ld16(levels + 2u * k);
    return (int32_t)ld32(levels + 4u * k);
}

static nuq_status parse_codebooks(const sect *s) {
    table t;
    uint32_t i, k;
    nuq_status st = table_parse(&t, s, 16, 32);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i), off, len, size;
        const uint8_t *r = s->p + ro;
        uint8_t bits = r[1], grid = r[2], sg = r[3], elem = r[4];
        uint32_t n;
        int64_t min, max, prev;
        if (bits < 1 || bits > 8) return sfail(s, NUQ_E_INVALID, i, "bits", ro + 1);
        if (sg > 1) return sfail(s, NUQ_E_INVALID, i, "signed", ro + 3);
        if (sg ? (grid < 2 || grid > 32) : (grid < 1 || grid > 31)) return sfail(s, NUQ_E_INVALID, i, "grid_bits", ro + 2);
        if (elem != NUQ_ELEM_I16 && elem != NUQ_ELEM_I32) return sfail(s, NUQ_E_INVALID, i, "elem_type", ro + 4);
        if (elem == NUQ_ELEM_I16 && grid > (sg ? 16 : 15)) return sfail(s, NUQ_E_INVALID, i, "elem_type", ro + 4);
        st = reserved_zero(s, i, "reserved0", ro + 5, 3);
        if (st) return st;
        if (ld32(r + 12)) return sfail(s, NUQ_E_INVALID, i, "reserved1", ro + 12);
        n = 1u << bits;
        if (ld32(r + 8) != n) return sfail(s, NUQ_E_MISMATCH, i, "level_count", ro + 8);
        size = elem == NUQ_ELEM_I16 ? 2 : 4;
        st = take(&t, i, "levels", ro + 16, 8, 1, (uint64_t)n * size, &off, &len);
        if (st) return st;
        if (sg) { min = -((int64_t)1 << (grid - 1)); max = ((int64_t)1 << (grid - 1)) - 1; }
        else { min = 0; max = ((int64_t)1 << grid) - 1; }
        prev = INT64_MIN;
        for (k = 0; k < n; k++) {
            int64_t v = level_at(s->p + off, elem, k);
            if (v < min || v > max) return sfail(s, NUQ_E_OUT_OF_RANGE, i, "levels", off + k * size);
            if (v < prev) return sfail(s, NUQ_E_NOT_SORTED, i, "levels", off + k * size);
            prev = v;
        }
    }
    return table_finish(&t);
}

/* ---- WEIGHTS -------------------------------------------------------------------------------- */

typedef struct {
    uint64_t bits, word_bits, elements, row_len;
} packing;

static uint64_t lanes_of(const packing *p) { return p->word_bits / p->bits; }
static uint64_t wpr_of(const packing *p) { return (p->row_len + lanes_of(p) - 1) / lanes_of(p); }
static uint64_t words_of(const packing *p) { return p->row_len ? (p->elements / p->row_len) * wpr_of(p) : 0; }

static nuq_status parse_weights(const sect *s) {
    table t;
    uint32_t i, k;
    nuq_status st = table_parse(&t, s, 16, 64);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i), off, len, w, wb, elements = 1, words;
        const uint8_t *r = s->p + ro;
        uint8_t bits = r[0], order = r[1], rank = r[4];
        uint16_t word_bits = ld16(r + 2);
        packing p;
        int overflow = 0;
        if (bits < 1 || bits > 8) return sfail(s, NUQ_E_INVALID, i, "bits", ro);
        if (order > 1) return sfail(s, NUQ_E_INVALID, i, "order", ro + 1);
        if (word_bits != 32 && word_bits != 64 && word_bits != 128 && word_bits != 256 && word_bits != 512)
            return sfail(s, NUQ_E_INVALID, i, "word_bits", ro + 2);
        if (rank < 1 || rank > 4) return sfail(s, NUQ_E_INVALID, i, "rank", ro + 4);
        st = reserved_zero(s, i, "reserved0", ro + 5, 3);
        if (st) return st;
        for (k = 0; k < 4; k++) {
            uint32_t d = ld32(r + 8 + 4 * k);
            int ok = k < rank ? (d >= 1 && d <= CAP_DIM) : d == 0;
            if (!ok) return sfail(s, NUQ_E_INVALID, i, "dims", ro + 8 + 4 * k);
        }
        for (k = 0; k < rank; k++) {
            uint64_t d = ld32(r + 8 + 4 * k);
            if (elements > UINT64_MAX / d) { overflow = 1; break; }
            elements *= d;
        }
        if (overflow) return sfail(s, NUQ_E_OVERFLOW, i, "dims", ro + 8);
        p.bits = bits;
        p.word_bits = word_bits;
        p.elements = elements;
        p.row_len = order == NUQ_ORDER_FLAT ? elements : elements / ld32(r + 8);
        if (elements > CAP_ELEMENTS) return sfail(s, NUQ_E_COUNT_CAP, i, "dims", ro + 8);
        if (ld64(r + 24) != elements) return sfail(s, NUQ_E_MISMATCH, i, "element_count", ro + 24);
        words = words_of(&p);
        if (ld64(r + 32) != words) return sfail(s, NUQ_E_MISMATCH, i, "word_count", ro + 32);
        if (ld64(r + 40)) return sfail(s, NUQ_E_INVALID, i, "reserved1", ro + 40);
        wb = word_bits / 8u;
        st = take(&t, i, "data", ro + 48, 64, 1, words * wb, &off, &len);
        if (st) return st;
        for (w = 0; w < words; w++) {
            uint64_t wpr = wpr_of(&p), lanes = lanes_of(&p);
            uint64_t start = (w % wpr) * lanes;
            uint64_t used = p.row_len > start ? p.row_len - start : 0;
            uint64_t used_bits, b;
            if (used > lanes) used = lanes;
            used_bits = used * p.bits;
            for (b = 0; b < wb; b++) {
                uint64_t lo = 8 * b;
                uint8_t mask = used_bits <= lo ? 0xFFu : used_bits >= lo + 8 ? 0u : (uint8_t)(0xFFu << (used_bits - lo));
                if (s->p[off + w * wb + b] & mask) return sfail(s, NUQ_E_NONZERO_PADDING, i, "data", off + w * wb + b);
            }
        }
    }
    return table_finish(&t);
}

/* ---- BIASES, THRESHOLDS, SCALES ------------------------------------------------------------- */

static nuq_status parse_biases(const sect *s) {
    table t;
    uint32_t i;
    nuq_status st = table_parse(&t, s, 16, 24);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i), off, len;
        uint32_t n = ld32(s->p + ro);
        if (n > CAP_CHANNELS) return sfail(s, NUQ_E_COUNT_CAP, i, "count", ro);
        if (ld32(s->p + ro + 4)) return sfail(s, NUQ_E_INVALID, i, "reserved", ro + 4);
        st = take(&t, i, "values", ro + 8, 8, 1, 4ull * n, &off, &len);
        if (st) return st;
    }
    return table_finish(&t);
}

static nuq_status parse_thresholds(const sect *s) {
    table t;
    uint32_t i;
    nuq_status st = table_parse(&t, s, 16, 40);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i), off, len, doff, dlen, per, c, k;
        uint32_t ch = ld32(s->p + ro);
        uint8_t bits = s->p[ro + 4];
        if (ch == 0 || ch > CAP_CHANNELS) return sfail(s, NUQ_E_INVALID, i, "channels", ro);
        if (bits < 1 || bits > 8) return sfail(s, NUQ_E_INVALID, i, "bits", ro + 4);
        st = reserved_zero(s, i, "reserved", ro + 5, 3);
        if (st) return st;
        per = ((uint64_t)1 << bits) - 1;
        st = take(&t, i, "values", ro + 8, 8, 1, 4 * per * ch, &off, &len);
        if (st) return st;
        for (c = 0; c < ch; c++)
            for (k = 0; k + 1 < per; k++) {
                int32_t a = (int32_t)ld32(s->p + off + 4 * (c * per + k));
                int32_t b = (int32_t)ld32(s->p + off + 4 * (c * per + k + 1));
                if (b < a) return sfail(s, NUQ_E_NOT_SORTED, i, "values", off + 4 * (c * per + k + 1));
            }
        st = take(&t, i, "directions", ro + 24, 1, 1, ch, &doff, &dlen);
        if (st) return st;
        for (c = 0; c < ch; c++)
            if (s->p[doff + c] > 1) return sfail(s, NUQ_E_INVALID, i, "directions", doff + c);
    }
    return table_finish(&t);
}

static int pow2_bits(int32_t e, uint32_t *bits) {
    if (e < -126 || e > 127) return 0;
    *bits = (uint32_t)(e + 127) << 23;
    return 1;
}

static nuq_status parse_scales(const sect *s) {
    table t;
    uint32_t i;
    nuq_status st = table_parse(&t, s, 16, 24);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i);
        const uint8_t *r = s->p + ro;
        uint32_t v = ld32(r), pb;
        uint8_t forms = r[4], shift = r[5];
        int32_t e = (int32_t)ld32(r + 8), m = (int32_t)ld32(r + 12);
        int finite_pos = (v >> 31) == 0 && ((v >> 23) & 0xFFu) != 0xFFu && v != 0;
        if (!finite_pos) return sfail(s, NUQ_E_INVALID, i, "value", ro);
        if (forms & ~3u) return sfail(s, NUQ_E_INVALID, i, "forms", ro + 4);
        if (forms & 1u) {
            if (!pow2_bits(e, &pb) || pb != v) return sfail(s, NUQ_E_INVALID, i, "exponent", ro + 8);
        } else if (e != 0) {
            return sfail(s, NUQ_E_INVALID, i, "exponent", ro + 8);
        }
        if (forms & 2u) {
            if (m <= 0) return sfail(s, NUQ_E_INVALID, i, "multiplier", ro + 12);
            if (shift > 63) return sfail(s, NUQ_E_INVALID, i, "shift", ro + 5);
        } else if (m != 0 || shift != 0) {
            return sfail(s, NUQ_E_INVALID, i, "multiplier", ro + 12);
        }
        st = reserved_zero(s, i, "reserved0", ro + 6, 2);
        if (st) return st;
        st = reserved_zero(s, i, "reserved1", ro + 16, 8);
        if (st) return st;
    }
    return table_finish(&t);
}

/* ---- ALIGNS, ZERO_POINTS (format 1.1) ------------------------------------------------------ */

static nuq_status parse_aligns(const sect *s) {
    table t;
    uint32_t i;
    nuq_status st = table_parse(&t, s, 16, 40);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i), off, len, soff, slen, c;
        uint32_t ch = ld32(s->p + ro);
        if (ch == 0 || ch > CAP_CHANNELS) return sfail(s, NUQ_E_INVALID, i, "channels", ro);
        if (s->p[ro + 4] > 30) return sfail(s, NUQ_E_INVALID, i, "main_shift", ro + 4);
        st = reserved_zero(s, i, "reserved", ro + 5, 3);
        if (st) return st;
        st = take(&t, i, "multipliers", ro + 8, 8, 1, 4ull * ch, &off, &len);
        if (st) return st;
        st = take(&t, i, "shifts", ro + 24, 1, 1, ch, &soff, &slen);
        if (st) return st;
        for (c = 0; c < ch; c++)
            if (s->p[soff + c] > 62) return sfail(s, NUQ_E_INVALID, i, "shifts", soff + c);
    }
    return table_finish(&t);
}

static nuq_status parse_zero_points(const sect *s) {
    table t;
    uint32_t i;
    nuq_status st = table_parse(&t, s, 16, 24);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i), off, len, c;
        uint32_t ch = ld32(s->p + ro);
        uint8_t bits = s->p[ro + 4];
        if (ch == 0 || ch > CAP_CHANNELS) return sfail(s, NUQ_E_INVALID, i, "channels", ro);
        if (bits < 1 || bits > 8) return sfail(s, NUQ_E_INVALID, i, "bits", ro + 4);
        st = reserved_zero(s, i, "reserved", ro + 5, 3);
        if (st) return st;
        st = take(&t, i, "values", ro + 8, 1, 1, ch, &off, &len);
        if (st) return st;
        for (c = 0; c < ch; c++)
            if ((uint32_t)s->p[off + c] >> bits) return sfail(s, NUQ_E_OUT_OF_RANGE, i, "values", off + c);
    }
    return table_finish(&t);
}

/* ---- METADATA ------------------------------------------------------------------------------- */

static int bytes_cmp(const uint8_t *a, uint64_t an, const uint8_t *b, uint64_t bn) {
    uint64_t i, n = an < bn ? an : bn;
    for (i = 0; i < n; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static nuq_status parse_metadata(const sect *s) {
    table t;
    uint32_t i;
    uint64_t off, len, prev_off = 0, prev_len = 0;
    int have_prev = 0;
    nuq_status st = table_parse(&t, s, 48, 32);
    if (st) return st;
    st = take(&t, -1, "producer", 16, 1, 0, 0, &off, &len);
    if (st) return st;
    st = check_string(&t, -1, "producer", 16, off, len);
    if (st) return st;
    st = take(&t, -1, "producer_version", 32, 1, 0, 0, &off, &len);
    if (st) return st;
    st = check_string(&t, -1, "producer_version", 32, off, len);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i);
        st = take(&t, i, "key", ro, 1, 0, 0, &off, &len);
        if (st) return st;
        st = check_string(&t, i, "key", ro, off, len);
        if (st) return st;
        if (len == 0) return sfail(s, NUQ_E_INVALID, i, "key", ro);
        if (have_prev && bytes_cmp(s->p + prev_off, prev_len, s->p + off, len) >= 0)
            return sfail(s, NUQ_E_NOT_SORTED, i, "key", ro);
        prev_off = off;
        prev_len = len;
        have_prev = 1;
        st = take(&t, i, "value", ro + 16, 1, 0, 0, &off, &len);
        if (st) return st;
        st = check_string(&t, i, "value", ro + 16, off, len);
        if (st) return st;
    }
    return table_finish(&t);
}

/* ---- GRAPH ---------------------------------------------------------------------------------- */

static int is_input(uint16_t op) { return op == NUQ_OP_INPUT || op == NUQ_OP_INPUT_ZP; }
static uint8_t arity(uint16_t op) { return is_input(op) ? 0 : op == NUQ_OP_ADD || op == NUQ_OP_ALIGNED_ADD ? 2 : 1; }
static int spatial(uint16_t op) { return op == NUQ_OP_CONV2D || op == NUQ_OP_MAXPOOL2D || op == NUQ_OP_AVGPOOL2D; }
static int weighted(uint16_t op) { return op == NUQ_OP_CONV2D || op == NUQ_OP_LINEAR; }

static nuq_status parse_graph(const sect *s) {
    static const char *const sp_name[5] = {"kernel", "stride", "dilation", "groups", "padding"};
    static const uint32_t sp_off[5] = {36, 44, 68, 76, 52};
    static const uint32_t sp_len[5] = {2, 2, 2, 1, 4};
    table t;
    uint32_t i, k, f;
    nuq_status st = table_parse(&t, s, 16, s->minor >= 1 ? 136 : 128);
    if (st) return st;
    for (i = 0; i < t.count; i++) {
        uint64_t ro = rec_off(&t, i), off, len;
        const uint8_t *r = s->p + ro;
        uint16_t op = ld16(r);
        uint8_t n;
        if (op < 1 || op > (s->minor >= 1 ? 11 : 9)) return sfail(s, NUQ_E_INVALID, i, "op", ro);
        if (r[2] > 8) return sfail(s, NUQ_E_INVALID, i, "weight_bits", ro + 2);
        if (r[3] > 8) return sfail(s, NUQ_E_INVALID, i, "act_bits", ro + 3);
        n = arity(op);
        if (r[4] != n) return sfail(s, NUQ_E_MISMATCH, i, "input_count", ro + 4);
        for (k = 0; k < 4; k++) {
            uint32_t v = ld32(r + 8 + 4 * k);
            if (k < n) {
                if (v >= i) return sfail(s, NUQ_E_BAD_REFERENCE, i, "inputs", ro + 8 + 4 * k);
            } else if (v != NUQ_NONE) {
                return sfail(s, NUQ_E_INVALID, i, "inputs", ro + 8 + 4 * k);
            }
        }
        st = reserved_zero(s, i, "reserved0", ro + 5, 3);
        if (st) return st;
        if (ld32(r + 108)) return sfail(s, NUQ_E_INVALID, i, "reserved1", ro + 108);
        for (k = 0; k < 3; k++) {
            uint32_t d = ld32(r + 24 + 4 * k);
            if (d < 1 || d > CAP_DIM) return sfail(s, NUQ_E_INVALID, i, "out_shape", ro + 24 + 4 * k);
        }
        for (f = 0; f < 5; f++)
            for (k = 0; k < sp_len[f]; k++) {
                uint32_t v = ld32(r + sp_off[f] + 4 * k);
                int ok;
                if (!spatial(op)) ok = v == 0;
                else if (f == 4) ok = v <= CAP_DIM;
                else if (op != NUQ_OP_CONV2D && (f == 2 || f == 3)) ok = v == 1;
                else ok = v >= 1 && v <= CAP_DIM;
                if (!ok) return sfail(s, NUQ_E_INVALID, i, sp_name[f], ro + sp_off[f] + 4 * k);
            }
        st = take(&t, i, "name", ro + 112, 1, 0, 0, &off, &len);
        if (st) return st;
        st = check_string(&t, i, "name", ro + 112, off, len);
        if (st) return st;
    }
    return table_finish(&t);
}

/* Output size of a window along one axis; 0 when it does not fit. */
static uint64_t window_out(uint64_t in, uint64_t pa, uint64_t pb, uint64_t k, uint64_t st, uint64_t d) {
    uint64_t padded = in + pa + pb, span = d * (k - 1) + 1;
    if (padded < span || st == 0) return 0;
    return (padded - span) / st + 1;
}

static nuq_status validate_references(const nuq_file *f, nuq_error *e) {
    const nuq_section_body *g = &f->body[NUQ_SECTION_GRAPH];
    uint32_t i, k;
    for (i = 0; i < g->count; i++) {
        uint64_t ro = g->head_size + g->record_size * i;
        uint64_t base = g->offset + ro;
        const uint8_t *r = f->data + base;
        uint16_t op = ld16(r);
        uint32_t out[3], in[3] = {0, 0, 0}, ex[3];
        uint8_t wbits = r[2], abits = r[3];
        uint32_t w = ld32(r + 80), wcb = ld32(r + 84), wsc = ld32(r + 88), bias = ld32(r + 92);
        uint32_t thr = ld32(r + 96), acb = ld32(r + 100), asc = ld32(r + 104);
        uint32_t al = f->rules_minor >= 1 ? ld32(r + 128) : NUQ_NONE;
        uint32_t zp = f->rules_minor >= 1 ? ld32(r + 132) : NUQ_NONE;
#define RFAIL(st, field, off) return fail(e, st, NUQ_SECTION_GRAPH, i, field, base + (off))
#define REF(v, field, off, kind, required)                                                       \
    do {                                                                                          \
        if ((v) == NUQ_NONE) {                                                                    \
            if (required) RFAIL(NUQ_E_INVALID, field, off);                                        \
        } else if ((v) >= nuq_count(f, kind)) {                                                   \
            RFAIL(NUQ_E_BAD_REFERENCE, field, off);                                                \
        }                                                                                         \
    } while (0)
#define FORBID(v, field, off) \
    do { if ((v) != NUQ_NONE) RFAIL(NUQ_E_INVALID, field, off); } while (0)
        for (k = 0; k < 3; k++) out[k] = ld32(r + 24 + 4 * k);
        if (weighted(op)) {
            nuq_weights wt;
            nuq_codebook cb;
            REF(w, "weights", 80, NUQ_SECTION_WEIGHTS, 1);
            REF(wcb, "weight_codebook", 84, NUQ_SECTION_CODEBOOKS, 1);
            REF(wsc, "weight_scale", 88, NUQ_SECTION_SCALES, 1);
            nuq_get_weights(f, w, &wt);
            nuq_get_codebook(f, wcb, &cb);
            if (wbits != wt.bits) RFAIL(NUQ_E_MISMATCH, "weight_bits", 2);
            if (cb.bits != wt.bits) RFAIL(NUQ_E_MISMATCH, "weight_codebook", 84);
            REF(bias, "bias", 92, NUQ_SECTION_BIASES, 0);
            if (bias != NUQ_NONE) {
                nuq_bias b;
                nuq_get_bias(f, bias, &b);
                if (b.count != out[0]) RFAIL(NUQ_E_MISMATCH, "bias", 92);
            }
        } else {
            if (wbits != 0) RFAIL(NUQ_E_INVALID, "weight_bits", 2);
            FORBID(w, "weights", 80);
            FORBID(wcb, "weight_codebook", 84);
            FORBID(wsc, "weight_scale", 88);
            FORBID(bias, "bias", 92);
        }
        if (abits == 0) {
            FORBID(thr, "thresholds", 96);
            FORBID(acb, "act_codebook", 100);
        } else {
            if (is_input(op)) FORBID(thr, "thresholds", 96);
            REF(thr, "thresholds", 96, NUQ_SECTION_THRESHOLDS, 0);
            if (thr != NUQ_NONE) {
                nuq_thresholds th;
                nuq_get_thresholds(f, thr, &th);
                if (th.bits != abits) RFAIL(NUQ_E_MISMATCH, "thresholds", 96);
                if (th.channels != out[0]) RFAIL(NUQ_E_MISMATCH, "thresholds", 96);
            }
            REF(acb, "act_codebook", 100, NUQ_SECTION_CODEBOOKS, 0);
            if (acb != NUQ_NONE) {
                nuq_codebook cb;
                nuq_get_codebook(f, acb, &cb);
                if (cb.bits != abits) RFAIL(NUQ_E_MISMATCH, "act_codebook", 100);
            }
        }
        REF(asc, "act_scale", 104, NUQ_SECTION_SCALES, 0);
        /* Format 1.1 fields: the alignment of a residual join, the input zero points. */
        if (op == NUQ_OP_ALIGNED_ADD) {
            nuq_align a;
            REF(thr, "thresholds", 96, NUQ_SECTION_THRESHOLDS, 1);
            REF(al, "align", 128, NUQ_SECTION_ALIGNS, 1);
            nuq_get_align(f, al, &a);
            if (a.channels != out[0]) RFAIL(NUQ_E_MISMATCH, "align", 128);
        } else {
            FORBID(al, "align", 128);
        }
        if (op == NUQ_OP_INPUT_ZP) {
            nuq_zero_points z;
            REF(zp, "zero_point", 132, NUQ_SECTION_ZERO_POINTS, 1);
            nuq_get_zero_points(f, zp, &z);
            if (z.channels != out[0]) RFAIL(NUQ_E_MISMATCH, "zero_point", 132);
            if (z.bits != abits) RFAIL(NUQ_E_MISMATCH, "zero_point", 132);
        } else {
            FORBID(zp, "zero_point", 132);
        }
        if (is_input(op)) continue;
        {
            nuq_layer src;
            nuq_get_layer(f, ld32(r + 8), &src);
            for (k = 0; k < 3; k++) in[k] = src.out_shape[k];
        }
        switch (op) {
        case NUQ_OP_CONV2D:
        case NUQ_OP_MAXPOOL2D:
        case NUQ_OP_AVGPOOL2D: {
            uint32_t kh = ld32(r + 36), kw = ld32(r + 40), sh = ld32(r + 44), sw = ld32(r + 48);
            uint32_t dh = ld32(r + 68), dw = ld32(r + 72);
            uint64_t h = window_out(in[1], ld32(r + 52), ld32(r + 60), kh, sh, dh);
            uint64_t wd = window_out(in[2], ld32(r + 56), ld32(r + 64), kw, sw, dw);
            if (h == 0 || wd == 0 || h > 0xFFFFFFFFu || wd > 0xFFFFFFFFu) RFAIL(NUQ_E_INVALID, "kernel", 36);
            ex[0] = op == NUQ_OP_CONV2D ? out[0] : in[0];
            ex[1] = (uint32_t)h;
            ex[2] = (uint32_t)wd;
            if (op == NUQ_OP_CONV2D) {
                uint32_t gr = ld32(r + 76);
                uint32_t want[4];
                nuq_weights wt;
                if (in[0] % gr || out[0] % gr) RFAIL(NUQ_E_INVALID, "groups", 76);
                want[0] = out[0]; want[1] = in[0] / gr; want[2] = kh; want[3] = kw;
                nuq_get_weights(f, w, &wt);
                if (wt.rank != 4) RFAIL(NUQ_E_MISMATCH, "weights", 80);
                for (k = 0; k < 4; k++)
                    if (wt.dims[k] != want[k]) RFAIL(NUQ_E_MISMATCH, "weights", 80);
            }
            break;
        }
        case NUQ_OP_LINEAR: {
            nuq_weights wt;
            if (in[1] != 1 || in[2] != 1) RFAIL(NUQ_E_INVALID, "inputs", 8);
            nuq_get_weights(f, w, &wt);
            if (wt.rank != 2) RFAIL(NUQ_E_MISMATCH, "weights", 80);
            if (wt.dims[0] != out[0] || wt.dims[1] != in[0]) RFAIL(NUQ_E_MISMATCH, "weights", 80);
            ex[0] = out[0]; ex[1] = 1; ex[2] = 1;
            break;
        }
        case NUQ_OP_GLOBAL_AVGPOOL:
            ex[0] = in[0]; ex[1] = 1; ex[2] = 1;
            break;
        case NUQ_OP_ADD:
        case NUQ_OP_ALIGNED_ADD: {
            nuq_layer other;
            if (op == NUQ_OP_ALIGNED_ADD) {
                nuq_layer mainl;
                nuq_get_layer(f, ld32(r + 8), &mainl);
                if (!((mainl.op == NUQ_OP_CONV2D || mainl.op == NUQ_OP_LINEAR) && mainl.act_bits == 0))
                    RFAIL(NUQ_E_INVALID, "inputs", 8);
            }
            nuq_get_layer(f, ld32(r + 12), &other);
            for (k = 0; k < 3; k++)
                if (other.out_shape[k] != in[k]) RFAIL(NUQ_E_MISMATCH, "inputs", 12);
            ex[0] = in[0]; ex[1] = in[1]; ex[2] = in[2];
            break;
        }
        case NUQ_OP_FLATTEN: {
            /* Each dimension is at most 2^24: c*h fits 64 bits, and once it is within the cap
             * so does c*h*w (a 64-bit product of all three could wrap to a small count). */
            uint64_t n = (uint64_t)in[0] * in[1];
            if (n > CAP_DIM) RFAIL(NUQ_E_COUNT_CAP, "out_shape", 24);
            n *= in[2];
            if (n > CAP_DIM) RFAIL(NUQ_E_COUNT_CAP, "out_shape", 24);
            ex[0] = (uint32_t)n; ex[1] = 1; ex[2] = 1;
            break;
        }
        default: /* relu */
            ex[0] = in[0]; ex[1] = in[1]; ex[2] = in[2];
            break;
        }
        for (k = 0; k < 3; k++)
            if (out[k] != ex[k]) RFAIL(NUQ_E_MISMATCH, "out_shape", 24 + 4 * k);
#undef RFAIL
#undef REF
#undef FORBID
    }
    return NUQ_OK;
}

/* ---- nuq_open ------------------------------------------------------------------------------- */

static const uint8_t MAGIC[8] = {0x89, 'N', 'U', 'Q', 0x0D, 0x0A, 0x1A, 0x0A};

nuq_status nuq_open(nuq_file *f, const uint8_t *d, size_t length, nuq_error *e) {
    uint64_t len = length, table_end, cursor, tstart;
    uint32_t i, k, hs, align, count, esz;
    uint16_t major;
    nuq_status st;
    for (k = 0; k < 10; k++) f->body[k].present = 0;
    f->data = d;
    f->length = len;
    if (len < 16) return fail(e, NUQ_E_TRUNCATED, NUQ_AT_HEADER, -1, "magic", 0);
    for (k = 0; k < 8; k++)
        if (d[k] != MAGIC[k]) return fail(e, NUQ_E_BAD_MAGIC, NUQ_AT_HEADER, -1, "magic", 0);
    if (ld32(d + 12) != 0x0A0B0C0Du) return fail(e, NUQ_E_BYTE_ORDER, NUQ_AT_HEADER, -1, "byte_order", 12);
    major = ld16(d + 8);
    if (major > NUQ_VERSION_MAJOR) return fail(e, NUQ_E_NEWER_MAJOR, NUQ_AT_HEADER, -1, "version_major", 8);
    if (major < NUQ_VERSION_MAJOR) return fail(e, NUQ_E_OLDER_MAJOR, NUQ_AT_HEADER, -1, "version_major", 8);
    if (len < 64) return fail(e, NUQ_E_TRUNCATED, NUQ_AT_HEADER, -1, "header", 0);
    if (ld64(d + 32) != len) return fail(e, NUQ_E_MISMATCH, NUQ_AT_HEADER, -1, "file_length", 32);
    if (ld32(d + 40) != nuq_file_crc(d, length)) return fail(e, NUQ_E_CRC, NUQ_AT_HEADER, -1, "file_crc", 40);
    hs = ld32(d + 16);
    if (hs < 64 || hs > CAP_HEAD || hs % 8 || hs > len) return fail(e, NUQ_E_INVALID, NUQ_AT_HEADER, -1, "header_size", 16);
    for (k = 52; k < 64; k++)
        if (d[k]) return fail(e, NUQ_E_NONZERO_PADDING, NUQ_AT_HEADER, -1, "reserved", k);
    if (ld32(d + 20) & 0xFFFFu) return fail(e, NUQ_E_INVALID, NUQ_AT_HEADER, -1, "flags", 20);
    align = ld32(d + 24);
    if (align < 8 || align > 65536 || (align & (align - 1))) return fail(e, NUQ_E_INVALID, NUQ_AT_HEADER, -1, "alignment", 24);
    count = ld32(d + 28);
    if (count > CAP_SECTIONS) return fail(e, NUQ_E_COUNT_CAP, NUQ_AT_HEADER, -1, "section_count", 28);
    if (ld32(d + 44) != hs) return fail(e, NUQ_E_MISMATCH, NUQ_AT_HEADER, -1, "table_offset", 44);
    esz = ld32(d + 48);
    if (esz < 32 || esz > CAP_HEAD || esz % 8) return fail(e, NUQ_E_INVALID, NUQ_AT_HEADER, -1, "entry_size", 48);
    tstart = hs;
    table_end = tstart + (uint64_t)count * esz;
    if (table_end > len) return fail(e, NUQ_E_OUT_OF_BOUNDS, NUQ_AT_HEADER, -1, "section_count", 28);
    f->version_major = major;
    f->version_minor = ld16(d + 10);
    f->rules_minor = f->version_minor < NUQ_VERSION_MINOR ? f->version_minor : NUQ_VERSION_MINOR;
    f->flags = ld32(d + 20);
    f->alignment = align;
    f->section_count = count;
    f->header_size = hs;
    f->entry_size = esz;
    f->file_crc = ld32(d + 40);
    cursor = table_end;
    for (i = 0; i < count; i++) {
        uint64_t eo = tstart + (uint64_t)i * esz, off, n, end, expected, z;
        uint32_t kind = ld32(d + eo);
        if (ld32(d + eo + 4)) return fail(e, NUQ_E_INVALID, NUQ_AT_TABLE, i, "flags", eo + 4);
        if (ld32(d + eo + 28)) return fail(e, NUQ_E_INVALID, NUQ_AT_TABLE, i, "reserved", eo + 28);
        off = ld64(d + eo + 8);
        n = ld64(d + eo + 16);
        expected = align_up(cursor, align);
        if (off != expected) return fail(e, NUQ_E_LAYOUT, NUQ_AT_TABLE, i, "offset", eo + 8);
        end = off + n;
        if (end < off) return fail(e, NUQ_E_OVERFLOW, NUQ_AT_TABLE, i, "length", eo + 16);
        if (end > len) return fail(e, NUQ_E_OUT_OF_BOUNDS, NUQ_AT_TABLE, i, "length", eo + 16);
        for (z = cursor; z < off; z++)
            if (d[z]) return fail(e, NUQ_E_NONZERO_PADDING, NUQ_AT_TABLE, i, "padding", z);
        if (nuq_crc32c(0, d + off, (size_t)n) != ld32(d + eo + 24)) return fail(e, NUQ_E_CRC, NUQ_AT_TABLE, i, "crc", eo + 24);
        if (nuq_section_known(f, kind)) {
            if (f->body[kind].present) return fail(e, NUQ_E_DUPLICATE_SECTION, NUQ_AT_TABLE, i, "kind", eo);
            f->body[kind].present = 1;
            f->body[kind].offset = off;
            f->body[kind].length = n;
        }
        cursor = end;
    }
    if (cursor != len) return fail(e, NUQ_E_MISMATCH, NUQ_AT_HEADER, -1, "file_length", 32);
    for (k = 1; k <= last_kind(f->rules_minor); k++) {
        static nuq_status (*const parsers[10])(const sect *) = {0, parse_graph, parse_codebooks, parse_weights,
                                                                parse_biases, parse_thresholds, parse_scales,
                                                                parse_metadata, parse_aligns, parse_zero_points};
        sect s;
        nuq_section_body *b = &f->body[k];
        if (!b->present) return fail(e, NUQ_E_MISSING_SECTION, (int32_t)k, -1, "kind", tstart);
        s.p = d + b->offset;
        s.len = b->length;
        s.base = b->offset;
        s.loc = (int32_t)k;
        s.minor = f->rules_minor;
        s.err = e;
        st = parsers[k](&s);
        if (st) return st;
        b->head_size = ld32(s.p);
        b->record_size = ld32(s.p + 4);
        b->count = ld32(s.p + 8);
    }
    return validate_references(f, e);
}

/* ---- accessors ------------------------------------------------------------------------------ */

nuq_status nuq_get_section(const nuq_file *f, uint32_t i, nuq_section *out) {
    const uint8_t *p;
    if (i >= f->section_count) return NUQ_E_BAD_REFERENCE;
    p = f->data + f->header_size + (uint64_t)i * f->entry_size;
    out->kind = ld32(p);
    out->offset = ld64(p + 8);
    out->length = ld64(p + 16);
    out->crc = ld32(p + 24);
    return NUQ_OK;
}

uint32_t nuq_count(const nuq_file *f, uint32_t kind) {
    return nuq_section_known(f, kind) && f->body[kind].present ? f->body[kind].count : 0;
}

/* Pointer to record i of section kind, or 0. */
static const uint8_t *record(const nuq_file *f, uint32_t kind, uint32_t i) {
    const nuq_section_body *b = &f->body[kind];
    if (i >= nuq_count(f, kind)) return 0;
    return f->data + b->offset + b->head_size + (uint64_t)b->record_size * i;
}

static const uint8_t *blob(const nuq_file *f, uint32_t kind, const uint8_t *ref) {
    return f->data + f->body[kind].offset + ld64(ref);
}

nuq_status nuq_get_layer(const nuq_file *f, uint32_t i, nuq_layer *o) {
    const uint8_t *r = record(f, NUQ_SECTION_GRAPH, i);
    uint32_t k;
    if (!r) return NUQ_E_BAD_REFERENCE;
    o->op = ld16(r);
    o->weight_bits = r[2];
    o->act_bits = r[3];
    o->input_count = r[4];
    for (k = 0; k < 4; k++) o->inputs[k] = ld32(r + 8 + 4 * k);
    for (k = 0; k < 3; k++) o->out_shape[k] = ld32(r + 24 + 4 * k);
    for (k = 0; k < 2; k++) {
        o->kernel[k] = ld32(r + 36 + 4 * k);
        o->stride[k] = ld32(r + 44 + 4 * k);
        o->dilation[k] = ld32(r + 68 + 4 * k);
    }
    for (k = 0; k < 4; k++) o->padding[k] = ld32(r + 52 + 4 * k);
    o->groups = ld32(r + 76);
    o->weights = ld32(r + 80);
    o->weight_codebook = ld32(r + 84);
    o->weight_scale = ld32(r + 88);
    o->bias = ld32(r + 92);
    o->thresholds = ld32(r + 96);
    o->act_codebook = ld32(r + 100);
    o->act_scale = ld32(r + 104);
    o->align = f->rules_minor >= 1 ? ld32(r + 128) : NUQ_NONE;
    o->zero_point = f->rules_minor >= 1 ? ld32(r + 132) : NUQ_NONE;
    o->name = blob(f, NUQ_SECTION_GRAPH, r + 112);
    o->name_len = (uint32_t)ld64(r + 120);
    return NUQ_OK;
}

nuq_status nuq_get_codebook(const nuq_file *f, uint32_t i, nuq_codebook *o) {
    const uint8_t *r = record(f, NUQ_SECTION_CODEBOOKS, i);
    if (!r) return NUQ_E_BAD_REFERENCE;
    o->kind = r[0];
    o->bits = r[1];
    o->grid_bits = r[2];
    o->is_signed = r[3];
    o->elem_type = r[4];
    o->level_count = ld32(r + 8);
    o->levels = blob(f, NUQ_SECTION_CODEBOOKS, r + 16);
    return NUQ_OK;
}

int32_t nuq_codebook_level(const nuq_codebook *c, uint32_t k) {
    return k < c->level_count ? level_at(c->levels, c->elem_type, k) : 0;
}

nuq_status nuq_get_weights(const nuq_file *f, uint32_t i, nuq_weights *o) {
    const uint8_t *r = record(f, NUQ_SECTION_WEIGHTS, i);
    uint32_t k;
    if (!r) return NUQ_E_BAD_REFERENCE;
    o->bits = r[0];
    o->order = r[1];
    o->word_bits = ld16(r + 2);
    o->rank = r[4];
    for (k = 0; k < 4; k++) o->dims[k] = ld32(r + 8 + 4 * k);
    o->element_count = ld64(r + 24);
    o->word_count = ld64(r + 32);
    o->row_len = o->order == NUQ_ORDER_FLAT ? o->element_count : o->element_count / o->dims[0];
    o->data = blob(f, NUQ_SECTION_WEIGHTS, r + 48);
    return NUQ_OK;
}

uint8_t nuq_weight_index(const nuq_weights *w, uint64_t i) {
    packing p;
    uint64_t lanes, row, j, word, bit, byte;
    uint32_t v, wb = w->word_bits / 8u;
    if (i >= w->element_count) return 0;
    p.bits = w->bits;
    p.word_bits = w->word_bits;
    p.elements = w->element_count;
    p.row_len = w->row_len;
    lanes = lanes_of(&p);
    row = i / p.row_len;
    j = i % p.row_len;
    word = row * wpr_of(&p) + j / lanes;
    bit = (j % lanes) * p.bits;
    byte = bit / 8;
    v = w->data[word * wb + byte];
    if (byte + 1 < wb) v |= (uint32_t)w->data[word * wb + byte + 1] << 8;
    return (uint8_t)((v >> (bit % 8)) & ((1u << p.bits) - 1u));
}

nuq_status nuq_get_bias(const nuq_file *f, uint32_t i, nuq_bias *o) {
    const uint8_t *r = record(f, NUQ_SECTION_BIASES, i);
    if (!r) return NUQ_E_BAD_REFERENCE;
    o->count = ld32(r);
    o->values = blob(f, NUQ_SECTION_BIASES, r + 8);
    return NUQ_OK;
}

int32_t nuq_bias_value(const nuq_bias *b, uint32_t k) { return k < b->count ? (int32_t)ld32(b->values + 4u * k) : 0; }

nuq_status nuq_get_thresholds(const nuq_file *f, uint32_t i, nuq_thresholds *o) {
    const uint8_t *r = record(f, NUQ_SECTION_THRESHOLDS, i);
    if (!r) return NUQ_E_BAD_REFERENCE;
    o->channels = ld32(r);
    o->bits = r[4];
    o->values = blob(f, NUQ_SECTION_THRESHOLDS, r + 8);
    o->directions = blob(f, NUQ_SECTION_THRESHOLDS, r + 24);
    return NUQ_OK;
}

int32_t nuq_threshold(const nuq_thresholds *t, uint32_t c, uint32_t k) {
    uint32_t per = (1u << t->bits) - 1u;
    if (c >= t->channels || k >= per) return 0;
    return (int32_t)ld32(t->values + 4u * ((uint64_t)c * per + k));
}

uint32_t nuq_threshold_code(const nuq_thresholds *t, uint32_t c, int32_t acc) {
    uint32_t per = (1u << t->bits) - 1u, k, code = 0;
    int falling = c < t->channels && t->directions[c] == NUQ_DIR_FALLING;
    for (k = 0; k < per; k++) {
        int32_t th = nuq_threshold(t, c, k);
        code += falling ? acc <= th : acc >= th;
    }
    return code;
}

uint32_t nuq_threshold_code64(const nuq_thresholds *t, uint32_t c, int64_t acc) {
    uint32_t per = (1u << t->bits) - 1u, k, code = 0;
    int falling = c < t->channels && t->directions[c] == NUQ_DIR_FALLING;
    for (k = 0; k < per; k++) {
        int64_t th = nuq_threshold(t, c, k);
        code += falling ? acc <= th : acc >= th;
    }
    return code;
}

nuq_status nuq_get_scale(const nuq_file *f, uint32_t i, nuq_scale *o) {
    const uint8_t *r = record(f, NUQ_SECTION_SCALES, i);
    if (!r) return NUQ_E_BAD_REFERENCE;
    o->value_bits = ld32(r);
    o->forms = r[4];
    o->shift = r[5];
    o->exponent = (int32_t)ld32(r + 8);
    o->multiplier = (int32_t)ld32(r + 12);
    return NUQ_OK;
}

nuq_status nuq_get_producer(const nuq_file *f, nuq_meta_entry *o) {
    const uint8_t *h = f->data + f->body[NUQ_SECTION_METADATA].offset;
    o->key = blob(f, NUQ_SECTION_METADATA, h + 16);
    o->key_len = (uint32_t)ld64(h + 24);
    o->value = blob(f, NUQ_SECTION_METADATA, h + 32);
    o->value_len = (uint32_t)ld64(h + 40);
    return NUQ_OK;
}

nuq_status nuq_get_meta(const nuq_file *f, uint32_t i, nuq_meta_entry *o) {
    const uint8_t *r = record(f, NUQ_SECTION_METADATA, i);
    if (!r) return NUQ_E_BAD_REFERENCE;
    o->key = blob(f, NUQ_SECTION_METADATA, r);
    o->key_len = (uint32_t)ld64(r + 8);
    o->value = blob(f, NUQ_SECTION_METADATA, r + 16);
    o->value_len = (uint32_t)ld64(r + 24);
    return NUQ_OK;
}

nuq_status nuq_get_align(const nuq_file *f, uint32_t i, nuq_align *o) {
    const uint8_t *r = record(f, NUQ_SECTION_ALIGNS, i);
    if (!r) {
        o->channels = 0;
        return NUQ_E_BAD_REFERENCE;
    }
    o->channels = ld32(r);
    o->main_shift = r[4];
    o->multipliers = blob(f, NUQ_SECTION_ALIGNS, r + 8);
    o->shifts = blob(f, NUQ_SECTION_ALIGNS, r + 24);
    return NUQ_OK;
}

int32_t nuq_align_multiplier(const nuq_align *a, uint32_t c) { return c < a->channels ? (int32_t)ld32(a->multipliers + 4u * c) : 0; }

uint8_t nuq_align_shift(const nuq_align *a, uint32_t c) { return c < a->channels ? a->shifts[c] : 0; }

/* Arithmetic right shift of a two's-complement value without relying on implementation-defined
 * behaviour: floor(v / 2^s). */
static int64_t asr64(int64_t v, unsigned s) {
    return v >= 0 ? (int64_t)((uint64_t)v >> s) : -(int64_t)(((uint64_t)(-(v + 1)) >> s) + 1);
}

int64_t nuq_align_sum(const nuq_align *a, uint32_t c, int32_t main, int32_t shortcut) {
    int64_t p = (int64_t)shortcut * nuq_align_multiplier(a, c);
    uint8_t s = nuq_align_shift(a, c);
    unsigned ms = a->main_shift > 30 ? 30u : a->main_shift;
    int64_t m = (int64_t)main * ((int64_t)1 << ms);
    if (s > 62) s = 62;
    if (s > 0) p = asr64(p + ((int64_t)1 << (s - 1)), s);
    return m + p;
}

nuq_status nuq_get_zero_points(const nuq_file *f, uint32_t i, nuq_zero_points *o) {
    const uint8_t *r = record(f, NUQ_SECTION_ZERO_POINTS, i);
    if (!r) {
        o->channels = 0;
        o->bits = 0;
        return NUQ_E_BAD_REFERENCE;
    }
    o->channels = ld32(r);
    o->bits = r[4];
    o->values = blob(f, NUQ_SECTION_ZERO_POINTS, r + 8);
    return NUQ_OK;
}
