/* Differential-fuzzing shim: validates with the C loader and, for an accepted file, walks every
 * accessor into a digest the Rust side recomputes with the Rust reader. */
#include "nuq_fmt.h"

typedef struct {
    int32_t status;
    int32_t location;
    int64_t record;
    const char *field;
    uint64_t offset;
    uint64_t digest;
} nuq_fuzz_result;

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001B3ull; }

void nuq_fuzz_open(const uint8_t *data, size_t len, nuq_fuzz_result *out) {
    nuq_file f;
    nuq_error e;
    uint64_t h = 0xCBF29CE484222325ull;
    uint32_t i, k;
    out->status = (int32_t)nuq_open(&f, data, len, &e);
    if (out->status != NUQ_OK) {
        out->location = e.location;
        out->record = e.record;
        out->field = e.field;
        out->offset = e.offset;
        out->digest = 0;
        return;
    }
    out->location = 0;
    out->record = -1;
    out->field = "";
    out->offset = 0;
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_GRAPH); i++) {
        nuq_layer l;
        nuq_get_layer(&f, i, &l);
        h = mix(h, l.op);
        for (k = 0; k < l.input_count; k++) h = mix(h, l.inputs[k]);
        for (k = 0; k < 3; k++) h = mix(h, l.out_shape[k]);
        h = mix(h, l.name_len);
        h = mix(h, l.align);
        h = mix(h, l.zero_point);
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_CODEBOOKS); i++) {
        nuq_codebook c;
        nuq_get_codebook(&f, i, &c);
        for (k = 0; k < c.level_count; k++) h = mix(h, (uint64_t)(int64_t)nuq_codebook_level(&c, k));
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_WEIGHTS); i++) {
        nuq_weights w;
        uint64_t el;
        nuq_get_weights(&f, i, &w);
        for (el = 0; el < w.element_count; el++) h = mix(h, nuq_weight_index(&w, el));
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_BIASES); i++) {
        nuq_bias b;
        nuq_get_bias(&f, i, &b);
        for (k = 0; k < b.count; k++) h = mix(h, (uint64_t)(int64_t)nuq_bias_value(&b, k));
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_THRESHOLDS); i++) {
        nuq_thresholds t;
        uint32_t c;
        nuq_get_thresholds(&f, i, &t);
        for (c = 0; c < t.channels; c++) {
            for (k = 0; k + 1 < (1u << t.bits); k++) h = mix(h, (uint64_t)(int64_t)nuq_threshold(&t, c, k));
            h = mix(h, nuq_threshold_code(&t, c, 0));
            h = mix(h, nuq_threshold_code64(&t, c, (int64_t)1 << 40));
            h = mix(h, nuq_threshold_code64(&t, c, -((int64_t)1 << 40)));
        }
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_SCALES); i++) {
        nuq_scale s;
        nuq_get_scale(&f, i, &s);
        h = mix(h, s.value_bits);
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_METADATA); i++) {
        nuq_meta_entry m;
        nuq_get_meta(&f, i, &m);
        h = mix(h, m.key_len);
        h = mix(h, m.value_len);
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_ALIGNS); i++) {
        static const int32_t xs[3] = {12345, INT32_MAX, INT32_MIN}, ys[3] = {-6789, INT32_MIN, INT32_MAX};
        nuq_align a;
        uint32_t c, j;
        nuq_get_align(&f, i, &a);
        h = mix(h, a.main_shift);
        for (c = 0; c < a.channels; c++) {
            h = mix(h, (uint64_t)(int64_t)nuq_align_multiplier(&a, c));
            h = mix(h, nuq_align_shift(&a, c));
            for (j = 0; j < 3; j++) h = mix(h, (uint64_t)nuq_align_sum(&a, c, xs[j], ys[j]));
        }
    }
    for (i = 0; i < nuq_count(&f, NUQ_SECTION_ZERO_POINTS); i++) {
        nuq_zero_points z;
        nuq_get_zero_points(&f, i, &z);
        h = mix(h, z.bits);
        for (k = 0; k < z.channels; k++) h = mix(h, z.values[k]);
    }
    out->digest = h;
}
