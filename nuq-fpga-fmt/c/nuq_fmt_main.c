/*
 * nuq_fmt_main.c - test driver for the C loader (hosted: uses stdio and malloc; the loader core
 * in nuq_fmt.c uses neither).
 *
 *   nuq_fmt_main FILE          validate FILE and print the canonical report (same text as the
 *                              Rust reader's report::write_report), or one "error ..." line
 *   nuq_fmt_main --mutations FILE
 *                              for every byte: XOR it with 0x01 and 0x80, and set it to each of
 *                              0, 1, 8, 9, 32, 33, 63, 64, 127, 128, 255 (when different);
 *                              recompute the checksums, validate; print one line per case
 *
 *   nuq_fmt_main --crc-check   print CRC-32C("123456789") (must be 0xe3069283)
 *
 * Exit status: 0 valid, 1 invalid, 2 usage or I/O error.
 */
#include "nuq_fmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!fp) return NULL;
    if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void print_error(const nuq_error *e) {
    printf("error ");
    if (e->location == NUQ_AT_HEADER) printf("header");
    else if (e->location == NUQ_AT_TABLE) printf("table");
    else printf("%s", nuq_section_name((uint32_t)e->location));
    if (e->record >= 0) printf(" record %" PRId64, e->record);
    else printf(" record -");
    printf(" field %s offset %" PRIu64 " kind %s\n", e->field, e->offset, nuq_status_name(e->status));
}

static void ref(const char *label, uint32_t v) {
    if (v == NUQ_NONE) printf(" %s -", label);
    else printf(" %s %" PRIu32, label, v);
}

static void report(const nuq_file *f) {
    uint32_t i, k;
    printf("nuq %u.%u alignment %" PRIu32 " flags 0x%08" PRIx32 " sections %" PRIu32 " length %" PRIu64 " crc 0x%08" PRIx32 "\n",
           f->version_major, f->version_minor, f->alignment, f->flags, f->section_count, f->length, f->file_crc);
    for (i = 0; i < f->section_count; i++) {
        nuq_section s;
        nuq_get_section(f, i, &s);
        printf("section %" PRIu32 " kind %" PRIu32 " %s offset %" PRIu64 " length %" PRIu64 " crc 0x%08" PRIx32 "\n", i, s.kind,
               nuq_section_known(f, s.kind) ? nuq_section_name(s.kind) : "unknown", s.offset, s.length, s.crc);
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_GRAPH); i++) {
        nuq_layer l;
        nuq_get_layer(f, i, &l);
        printf("layer %" PRIu32 " %s name \"%.*s\" inputs", i, nuq_op_name(l.op), (int)l.name_len, (const char *)l.name);
        for (k = 0; k < l.input_count; k++) printf("%s%" PRIu32, k ? "," : " ", l.inputs[k]);
        if (l.input_count == 0) printf(" -");
        printf(" out %" PRIu32 "x%" PRIu32 "x%" PRIu32 " kernel %" PRIu32 "x%" PRIu32 " stride %" PRIu32 "x%" PRIu32
               " pad %" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%" PRIu32 " dilation %" PRIu32 "x%" PRIu32 " groups %" PRIu32
               " wbits %u abits %u",
               l.out_shape[0], l.out_shape[1], l.out_shape[2], l.kernel[0], l.kernel[1], l.stride[0], l.stride[1],
               l.padding[0], l.padding[1], l.padding[2], l.padding[3], l.dilation[0], l.dilation[1], l.groups,
               l.weight_bits, l.act_bits);
        ref("weights", l.weights);
        ref("wcb", l.weight_codebook);
        ref("wscale", l.weight_scale);
        ref("bias", l.bias);
        ref("thr", l.thresholds);
        ref("acb", l.act_codebook);
        ref("ascale", l.act_scale);
        if (f->rules_minor >= 1) {
            ref("align", l.align);
            ref("zp", l.zero_point);
        }
        printf("\n");
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_CODEBOOKS); i++) {
        nuq_codebook c;
        nuq_get_codebook(f, i, &c);
        printf("codebook %" PRIu32 " kind %u bits %u grid %u signed %u elem %s levels", i, c.kind, c.bits, c.grid_bits,
               c.is_signed, c.elem_type == NUQ_ELEM_I16 ? "i16" : "i32");
        for (k = 0; k < c.level_count; k++) printf("%s%" PRId32, k ? "," : " ", nuq_codebook_level(&c, k));
        printf("\n");
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_WEIGHTS); i++) {
        nuq_weights w;
        uint64_t e, sum = 0;
        nuq_get_weights(f, i, &w);
        printf("weights %" PRIu32 " bits %u order %s word %u dims", i, w.bits, w.order ? "row_per_output" : "flat", w.word_bits);
        for (k = 0; k < w.rank; k++) printf("%s%" PRIu32, k ? "x" : " ", w.dims[k]);
        for (e = 0; e < w.element_count; e++) sum += nuq_weight_index(&w, e);
        printf(" elements %" PRIu64 " words %" PRIu64 " index_sum %" PRIu64 " crc 0x%08" PRIx32 "\n", w.element_count,
               w.word_count, sum, nuq_crc32c(0, w.data, (size_t)(w.word_count * (w.word_bits / 8u))));
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_BIASES); i++) {
        nuq_bias b;
        int64_t sum = 0;
        nuq_get_bias(f, i, &b);
        for (k = 0; k < b.count; k++) sum += nuq_bias_value(&b, k);
        printf("bias %" PRIu32 " count %" PRIu32 " sum %" PRId64 " crc 0x%08" PRIx32 "\n", i, b.count, sum,
               nuq_crc32c(0, b.values, 4u * (size_t)b.count));
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_THRESHOLDS); i++) {
        nuq_thresholds t;
        int64_t sum = 0;
        uint32_t c, falling = 0, per;
        nuq_get_thresholds(f, i, &t);
        per = (1u << t.bits) - 1u;
        for (c = 0; c < t.channels; c++) {
            for (k = 0; k < per; k++) sum += nuq_threshold(&t, c, k);
            falling += t.directions[c] == NUQ_DIR_FALLING;
        }
        printf("thresholds %" PRIu32 " channels %" PRIu32 " bits %u sum %" PRId64 " falling %" PRIu32 " crc 0x%08" PRIx32 "\n",
               i, t.channels, t.bits, sum, falling, nuq_crc32c(0, t.values, 4u * (size_t)t.channels * per));
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_SCALES); i++) {
        nuq_scale s;
        nuq_get_scale(f, i, &s);
        printf("scale %" PRIu32 " value 0x%08" PRIx32 " exponent ", i, s.value_bits);
        if (s.forms & 1u) printf("%" PRId32, s.exponent);
        else printf("-");
        if (s.forms & 2u) printf(" multiplier %" PRId32 " shift %u\n", s.multiplier, s.shift);
        else printf(" multiplier - shift -\n");
    }
    {
        nuq_meta_entry m;
        nuq_get_producer(f, &m);
        printf("producer \"%.*s\" version \"%.*s\" entries %" PRIu32 "\n", (int)m.key_len, (const char *)m.key,
               (int)m.value_len, (const char *)m.value, nuq_count(f, NUQ_SECTION_METADATA));
        for (i = 0; i < nuq_count(f, NUQ_SECTION_METADATA); i++) {
            nuq_get_meta(f, i, &m);
            printf("meta \"%.*s\" \"%.*s\"\n", (int)m.key_len, (const char *)m.key, (int)m.value_len, (const char *)m.value);
        }
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_ALIGNS); i++) {
        nuq_align a;
        int64_t msum = 0;
        uint64_t ssum = 0;
        nuq_get_align(f, i, &a);
        for (k = 0; k < a.channels; k++) {
            msum += nuq_align_multiplier(&a, k);
            ssum += nuq_align_shift(&a, k);
        }
        printf("align %" PRIu32 " channels %" PRIu32 " main_shift %u multiplier_sum %" PRId64 " shift_sum %" PRIu64
               " crc 0x%08" PRIx32 "\n",
               i, a.channels, a.main_shift, msum, ssum, nuq_crc32c(0, a.multipliers, 4u * (size_t)a.channels));
    }
    for (i = 0; i < nuq_count(f, NUQ_SECTION_ZERO_POINTS); i++) {
        nuq_zero_points z;
        nuq_get_zero_points(f, i, &z);
        printf("zero_point %" PRIu32 " channels %" PRIu32 " bits %u values", i, z.channels, z.bits);
        for (k = 0; k < z.channels; k++) printf("%s%u", k ? "," : " ", z.values[k]);
        printf("\n");
    }
}

/* Same as the Rust crate's seal::reseal. */
static uint64_t rd(const uint8_t *b, size_t len, uint64_t at, unsigned n, int *ok) {
    uint64_t v = 0;
    unsigned k;
    if (at > len || len - at < n) { *ok = 0; return 0; }
    for (k = 0; k < n; k++) v |= (uint64_t)b[at + k] << (8 * k);
    return v;
}

static void put(uint8_t *b, uint64_t at, uint64_t v, unsigned n) {
    unsigned k;
    for (k = 0; k < n; k++) b[at + k] = (uint8_t)(v >> (8 * k));
}

static void reseal(uint8_t *b, size_t len) {
    int ok = 1;
    uint64_t count, table, esz, i;
    if (len < 64) return;
    put(b, 32, len, 8);
    count = rd(b, len, 28, 4, &ok);
    if (count > 64) count = 64;
    table = rd(b, len, 44, 4, &ok);
    esz = rd(b, len, 48, 4, &ok);
    if (esz >= 32) {
        for (i = 0; i < count; i++) {
            uint64_t e = table + i * esz, off, n;
            int ok2 = 1;
            off = rd(b, len, e + 8, 8, &ok2);
            n = rd(b, len, e + 16, 8, &ok2);
            if (!ok2) break;
            if (off <= len && n <= len - off && e + 28 <= len) put(b, e + 24, nuq_crc32c(0, b + off, (size_t)n), 4);
        }
    }
    put(b, 40, nuq_file_crc(b, len), 4);
}

int main(int argc, char **argv) {
    size_t len;
    uint8_t *data;
    nuq_file f;
    nuq_error e;
    if (argc == 2 && strcmp(argv[1], "--crc-check") == 0) {
        printf("0x%08" PRIx32 "\n", nuq_crc32c(0, (const uint8_t *)"123456789", 9));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--mutations") == 0) {
        /* Same list as tests/c_loader.rs: two XOR masks, then boundary values. */
        static const uint8_t xors[2] = {0x01, 0x80};
        static const uint8_t sets[11] = {0, 1, 8, 9, 32, 33, 63, 64, 127, 128, 255};
        uint8_t *work;
        size_t i;
        unsigned m;
        data = read_file(argv[2], &len);
        if (!data) { fprintf(stderr, "cannot read %s\n", argv[2]); return 2; }
        work = malloc(len + 1);
        if (!work) return 2;
        for (i = 0; i < len; i++) {
            for (m = 0; m < 13; m++) {
                memcpy(work, data, len);
                if (m < 2) work[i] ^= xors[m];
                else if (work[i] == sets[m - 2]) continue;
                else work[i] = sets[m - 2];
                reseal(work, len);
                printf("%s %zu 0x%02x: ", m < 2 ? "xor" : "set", i, m < 2 ? xors[m] : sets[m - 2]);
                if (nuq_open(&f, work, len, &e) == NUQ_OK) printf("ok crc 0x%08" PRIx32 "\n", f.file_crc);
                else print_error(&e);
            }
        }
        free(work);
        free(data);
        return 0;
    }
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE | --mutations FILE | --crc-check\n", argv[0]);
        return 2;
    }
    data = read_file(argv[1], &len);
    if (!data) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
    if (nuq_open(&f, data, len, &e) != NUQ_OK) {
        print_error(&e);
        free(data);
        return 1;
    }
    report(&f);
    free(data);
    return 0;
}
