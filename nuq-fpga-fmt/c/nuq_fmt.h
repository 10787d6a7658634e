/*
 * nuq_fmt.h - freestanding C99 loader for the nuq FPGA model format, version 1.x.
 *
 * The loader validates a whole file held in memory (header, whole-file CRC-32C, section table,
 * per-section CRC-32C, every record and blob, every graph reference and shape) exactly as the
 * Rust reader does, then lets the caller walk its sections in place. It needs no allocator and
 * no C library: only <stddef.h> and <stdint.h>. The specification is FORMAT.md next to this
 * directory.
 *
 * Usage:
 *     nuq_file f; nuq_error e;
 *     if (nuq_open(&f, bytes, length, &e) != NUQ_OK) { ... e.status, e.field, e.offset ... }
 *     for (uint32_t i = 0; i < nuq_count(&f, NUQ_SECTION_GRAPH); i++) { nuq_layer l; nuq_get_layer(&f, i, &l); ... }
 *
 * Accessors must only be called on a file nuq_open accepted; they return NUQ_OK, or
 * NUQ_E_REFERENCE for an out-of-range index.
 */
#ifndef NUQ_FMT_H
#define NUQ_FMT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NUQ_VERSION_MAJOR 1u
#define NUQ_VERSION_MINOR 1u /* the newest minor version whose rules this loader applies */
#define NUQ_NONE 0xFFFFFFFFu

/* Section kinds (append-only). */
enum {
    NUQ_SECTION_GRAPH = 1,
    NUQ_SECTION_CODEBOOKS = 2,
    NUQ_SECTION_WEIGHTS = 3,
    NUQ_SECTION_BIASES = 4,
    NUQ_SECTION_THRESHOLDS = 5,
    NUQ_SECTION_SCALES = 6,
    NUQ_SECTION_METADATA = 7,
    NUQ_SECTION_ALIGNS = 8,     /* format 1.1 */
    NUQ_SECTION_ZERO_POINTS = 9 /* format 1.1 */
};

/* Layer ops (append-only). */
enum {
    NUQ_OP_INPUT = 1,
    NUQ_OP_CONV2D = 2,
    NUQ_OP_LINEAR = 3,
    NUQ_OP_MAXPOOL2D = 4,
    NUQ_OP_AVGPOOL2D = 5,
    NUQ_OP_GLOBAL_AVGPOOL = 6,
    NUQ_OP_ADD = 7,
    NUQ_OP_FLATTEN = 8,
    NUQ_OP_RELU = 9,
    NUQ_OP_ALIGNED_ADD = 10, /* format 1.1 */
    NUQ_OP_INPUT_ZP = 11     /* format 1.1 */
};

/* Weight tile orders and threshold directions. */
enum { NUQ_ORDER_FLAT = 0, NUQ_ORDER_ROW_PER_OUTPUT = 1 };
enum { NUQ_DIR_RISING = 0, NUQ_DIR_FALLING = 1 };
enum { NUQ_ELEM_I16 = 1, NUQ_ELEM_I32 = 2 };

/* Error kinds; nuq_status_name gives the same names the Rust reader's ErrorKind::name gives. */
typedef enum {
    NUQ_OK = 0,
    NUQ_E_TRUNCATED,
    NUQ_E_BAD_MAGIC,
    NUQ_E_BYTE_ORDER,
    NUQ_E_NEWER_MAJOR,
    NUQ_E_OLDER_MAJOR,
    NUQ_E_CRC,
    NUQ_E_INVALID,
    NUQ_E_MISMATCH,
    NUQ_E_OUT_OF_RANGE,
    NUQ_E_OUT_OF_BOUNDS,
    NUQ_E_LAYOUT,
    NUQ_E_COUNT_CAP,
    NUQ_E_NONZERO_PADDING,
    NUQ_E_DUPLICATE_SECTION,
    NUQ_E_MISSING_SECTION,
    NUQ_E_BAD_REFERENCE,
    NUQ_E_NOT_UTF8,
    NUQ_E_NOT_SORTED,
    NUQ_E_OVERFLOW
} nuq_status;

/* Where an error is: NUQ_AT_HEADER, NUQ_AT_TABLE, or a section kind (> 0). */
#define NUQ_AT_HEADER (-1)
#define NUQ_AT_TABLE (-2)

typedef struct {
    nuq_status status;
    int32_t location;  /* NUQ_AT_HEADER, NUQ_AT_TABLE or the section kind */
    int64_t record;    /* record index inside a table section or table entry, -1 when none */
    const char *field; /* field name as in FORMAT.md */
    uint64_t offset;   /* absolute byte offset in the file */
} nuq_error;

typedef struct {
    uint64_t offset, length;
    uint32_t head_size, record_size, count;
    int present;
} nuq_section_body;

typedef struct {
    const uint8_t *data;
    uint64_t length;
    uint16_t version_major, version_minor;
    uint16_t rules_minor; /* the minor version whose rules apply: version_minor, at most 1 */
    uint32_t flags, alignment, section_count, header_size, entry_size, file_crc;
    nuq_section_body body[10]; /* indexed by section kind 1..9 */
} nuq_file;

typedef struct {
    uint32_t kind;
    uint64_t offset, length;
    uint32_t crc;
} nuq_section;

typedef struct {
    uint16_t op;
    uint8_t weight_bits, act_bits, input_count;
    uint32_t inputs[4];
    uint32_t out_shape[3], kernel[2], stride[2], padding[4], dilation[2], groups;
    uint32_t weights, weight_codebook, weight_scale, bias, thresholds, act_codebook, act_scale;
    uint32_t align, zero_point; /* format 1.1 (NUQ_NONE in a file declaring 1.0) */
    const uint8_t *name;        /* UTF-8, not NUL-terminated */
    uint32_t name_len;
} nuq_layer;

typedef struct {
    uint8_t kind, bits, grid_bits, is_signed, elem_type;
    uint32_t level_count;
    const uint8_t *levels;
} nuq_codebook;

typedef struct {
    uint8_t bits, order, rank;
    uint16_t word_bits;
    uint32_t dims[4];
    uint64_t element_count, word_count, row_len;
    const uint8_t *data; /* word_count * word_bits / 8 bytes, words little-endian */
} nuq_weights;

typedef struct {
    uint32_t count;
    const uint8_t *values;
} nuq_bias;

typedef struct {
    uint32_t channels;
    uint8_t bits;
    const uint8_t *values;     /* channels * (2^bits - 1) little-endian i32 */
    const uint8_t *directions; /* channels bytes */
} nuq_thresholds;

typedef struct {
    uint32_t value_bits; /* IEEE-754 binary32 bits */
    uint8_t forms;       /* bit 0: exponent valid, bit 1: multiplier/shift valid */
    uint8_t shift;
    int32_t exponent, multiplier;
} nuq_scale;

typedef struct {
    uint32_t channels;
    uint8_t main_shift;         /* left shift of the main accumulator, 0..30 */
    const uint8_t *multipliers; /* channels little-endian i32 */
    const uint8_t *shifts;      /* channels bytes, 0..62 */
} nuq_align;

typedef struct {
    uint32_t channels;
    uint8_t bits;          /* code bits */
    const uint8_t *values; /* channels codes, each < 2^bits */
} nuq_zero_points;

typedef struct {
    const uint8_t *key, *value;
    uint32_t key_len, value_len;
} nuq_meta_entry;

/* CRC-32C (Castagnoli, reflected 0x82F63B78). Start with crc = 0; chain calls. */
uint32_t nuq_crc32c(uint32_t crc, const uint8_t *data, size_t length);

/* The whole-file CRC as the header defines it (the four CRC bytes taken as zero). */
uint32_t nuq_file_crc(const uint8_t *data, size_t length);

/* Validates data[0..length) completely. On failure fills *err (if not NULL). */
nuq_status nuq_open(nuq_file *f, const uint8_t *data, size_t length, nuq_error *err);

const char *nuq_status_name(nuq_status s);
const char *nuq_section_name(uint32_t kind); /* "GRAPH", ... or "unknown" */
/* Whether the file's declared version defines section kind `kind` (else it was skipped). */
int nuq_section_known(const nuq_file *f, uint32_t kind);
const char *nuq_op_name(uint16_t op);

nuq_status nuq_get_section(const nuq_file *f, uint32_t i, nuq_section *out);
uint32_t nuq_count(const nuq_file *f, uint32_t kind); /* records in a table section */

nuq_status nuq_get_layer(const nuq_file *f, uint32_t i, nuq_layer *out);
nuq_status nuq_get_codebook(const nuq_file *f, uint32_t i, nuq_codebook *out);
int32_t nuq_codebook_level(const nuq_codebook *c, uint32_t k);
nuq_status nuq_get_weights(const nuq_file *f, uint32_t i, nuq_weights *out);
uint8_t nuq_weight_index(const nuq_weights *w, uint64_t i); /* row-major element i */
nuq_status nuq_get_bias(const nuq_file *f, uint32_t i, nuq_bias *out);
int32_t nuq_bias_value(const nuq_bias *b, uint32_t k);
nuq_status nuq_get_thresholds(const nuq_file *f, uint32_t i, nuq_thresholds *out);
int32_t nuq_threshold(const nuq_thresholds *t, uint32_t channel, uint32_t k);
uint32_t nuq_threshold_code(const nuq_thresholds *t, uint32_t channel, int32_t acc);
/* The code of a 64-bit sum (an aligned_add), compared with the sign-extended thresholds. */
uint32_t nuq_threshold_code64(const nuq_thresholds *t, uint32_t channel, int64_t acc);
nuq_status nuq_get_scale(const nuq_file *f, uint32_t i, nuq_scale *out);
nuq_status nuq_get_producer(const nuq_file *f, nuq_meta_entry *out); /* key = producer, value = producer version */
nuq_status nuq_get_align(const nuq_file *f, uint32_t i, nuq_align *out);
int32_t nuq_align_multiplier(const nuq_align *a, uint32_t channel);
uint8_t nuq_align_shift(const nuq_align *a, uint32_t channel);
/* (main << main_shift) + round_half_up(shortcut * multiplier / 2^shift), exact in 64 bits. */
int64_t nuq_align_sum(const nuq_align *a, uint32_t channel, int32_t main, int32_t shortcut);
nuq_status nuq_get_zero_points(const nuq_file *f, uint32_t i, nuq_zero_points *out);
nuq_status nuq_get_meta(const nuq_file *f, uint32_t i, nuq_meta_entry *out);

#ifdef __cplusplus
}
#endif
#endif
