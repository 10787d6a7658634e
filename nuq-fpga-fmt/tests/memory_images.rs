//! Memory-image export: exact text of `$readmemh`, `.coe` and `.mif` for tiny cases, and weight
//! memories that reproduce the file's own packed words when exported at the file's word width.

mod common;

use common::*;
use nuq_fpga_fmt::memory::{memories, MemoryError, MemoryImage};
use nuq_fpga_fmt::{samples, NuqFile};

fn tiny_image() -> MemoryImage {
    // 2-bit lanes 1, 2, 3, 0 | 3 in 8-bit words: 0b00_11_10_01 = 0x39, then 0x03.
    MemoryImage::pack("m", 2, 8, [[1u64, 2, 3, 0, 3]]).unwrap()
}

#[test]
fn readmemh_text() {
    assert_eq!(
        tiny_image().to_readmemh(),
        "// m: 2 words of 8 bits, 4 lanes of 2 bits per word, lane 0 in the low bits\n39\n03\n"
    );
    // 12-bit words hold 6 lanes: one word 0x339.
    let wide = MemoryImage::pack("m", 2, 12, [[1u64, 2, 3, 0, 3]]).unwrap();
    assert_eq!(
        wide.to_readmemh(),
        "// m: 1 words of 12 bits, 6 lanes of 2 bits per word, lane 0 in the low bits\n339\n"
    );
}

#[test]
fn coe_text() {
    assert_eq!(
        tiny_image().to_coe(),
        "; m: 2 words of 8 bits, 4 lanes of 2 bits per word, lane 0 in the low bits\n\
         memory_initialization_radix=16;\n\
         memory_initialization_vector=\n\
         39,\n\
         03;\n"
    );
}

#[test]
fn mif_text() {
    assert_eq!(
        tiny_image().to_mif(),
        "-- m: 2 words of 8 bits, 4 lanes of 2 bits per word, lane 0 in the low bits\n\
         WIDTH=8;\n\
         DEPTH=2;\n\
         \n\
         ADDRESS_RADIX=UNS;\n\
         DATA_RADIX=HEX;\n\
         \n\
         CONTENT BEGIN\n\
         \t0 : 39;\n\
         \t1 : 03;\n\
         END;\n"
    );
}

#[test]
fn rows_start_new_words_and_bad_widths_are_refused() {
    let img = MemoryImage::pack("r", 4, 16, [vec![1u64, 2, 3], vec![4, 5]]).unwrap();
    assert_eq!(
        (img.depth(), img.hex(0, false), img.hex(1, false)),
        (2, Some("0321".to_string()), Some("0054".to_string()))
    );
    assert_eq!(img.hex(2, false), None);
    assert_eq!(
        MemoryImage::pack("x", 8, 0, [[1u64]]).unwrap_err(),
        MemoryError::WordWidth(0)
    );
    assert!(matches!(
        MemoryImage::pack("x", 9, 8, [[1u64]]),
        Err(MemoryError::LaneTooWide { .. })
    ));
}

#[test]
fn tiny_model_memories() {
    let bytes = sample_bytes(&samples::tiny());
    let file = NuqFile::parse(&bytes).unwrap();
    let mems = memories(&file, 64).unwrap();
    let names: Vec<&str> = mems.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "weights0",
            "weights1",
            "codebook0",
            "codebook1",
            "thresholds0",
            "thresholds0_dir",
            "bias0"
        ]
    );
    let text = |name: &str| mems.iter().find(|m| m.name == name).unwrap().to_readmemh();
    let body = |name: &str| {
        text(name)
            .lines()
            .skip(1)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // Codebook 0: [-3, -1, 1, 3] on a signed 4-bit grid: nibbles d, f, 1, 3 (lane 0 low).
    assert_eq!(body("codebook0"), ["00000000000031fd"]);
    // Thresholds: one row per channel; channel 0 [-4, 3, 11], channel 1 [-2, 6, 9].
    assert_eq!(
        body("thresholds0"),
        [
            "00000003fffffffc",
            "000000000000000b",
            "00000006fffffffe",
            "0000000000000009"
        ]
    );
    assert_eq!(body("thresholds0_dir"), ["0000000000000002"]);
    assert_eq!(body("bias0"), ["fffffff900000005"]);
}

#[test]
fn weight_memories_at_the_file_word_width_equal_the_stored_words() {
    for (name, golden, _) in goldens() {
        let file = NuqFile::parse(&golden).unwrap();
        for (i, w) in file.weights().iter().enumerate() {
            let mems = memories(&file, w.word_bits().into()).unwrap();
            let img = &mems[i];
            assert_eq!(img.name, format!("weights{i}"));
            let flat: Vec<u8> = img.words.concat();
            assert_eq!(flat, w.data(), "{name}: weights{i}");
        }
    }
}

#[test]
fn alignment_and_zero_point_memories() {
    let bytes = sample_bytes(&samples::int_resnet());
    let file = NuqFile::parse(&bytes).unwrap();
    let mems = memories(&file, 32).unwrap();
    let body = |name: &str| {
        mems.iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no memory {name}"))
            .to_readmemh()
            .lines()
            .skip(1)
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // Table 1: multipliers 3, -5, 7, 1, 0, -2^31 (one per 32-bit word); shifts 1, 2, 0, 62,
    // 9, 40 in 6-bit lanes, five per word, lane 0 in the low bits.
    assert_eq!(
        body("align1_mul"),
        ["00000003", "fffffffb", "00000007", "00000001", "00000000", "80000000"]
    );
    let w0 = 1 | 2 << 6 | 62 << 18 | 9 << 24;
    assert_eq!(
        body("align1_shift"),
        [format!("{w0:08x}"), format!("{:08x}", 40)]
    );
    // Zero points 7 and 9 as 4-bit codes.
    assert_eq!(body("zero_point0"), ["00000097"]);
}
