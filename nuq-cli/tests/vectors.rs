//! `nuq vectors`: golden test vectors that match the model's own inference, in both encodings.

mod common;

use common::{fails, listing, nuq, ok, os, tiny_nuq, usage_error, write_fashion_like};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;
use tempfile::TempDir;

/// A tiny model of `images` Fashion-MNIST-like test images written to a new folder, and
/// `nuq vectors MODEL --out OUT --data DATA --index INDEX --count COUNT` run on them:
/// `(folder, model, out, output)`.
fn vectors_from_data(
    images: usize,
    index: &str,
    count: &str,
) -> (TempDir, PathBuf, PathBuf, Output) {
    let dir = tempfile::tempdir().unwrap();
    write_fashion_like(dir.path(), 512, images);
    let model = tiny_nuq(dir.path());
    let out = dir.path().join("vec");
    let o = nuq(os([
        &"vectors",
        &model,
        &"--out",
        &out,
        &"--data",
        &dir.path(),
        &"--index",
        &index,
        &"--count",
        &count,
    ]));
    (dir, model, out, o)
}

#[test]
fn vectors_hold_every_layer_in_hex_and_binary() {
    let (dir, model, out, o) = vectors_from_data(100, "10", "3");
    let text = ok(&o);
    assert!(text.contains("3 image(s)"), "{text}");
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let tensors = manifest["tensors"].as_array().unwrap();
    assert!(tensors.len() > 5, "{manifest}");
    assert_eq!(tensors[0]["kind"], "input");
    assert_eq!(tensors.last().unwrap()["kind"], "logits");
    // Every file is there, nothing else (no staging leftovers).
    let mut expected: Vec<String> = tensors
        .iter()
        .flat_map(|t| {
            [
                t["hex"].as_str().unwrap().to_string(),
                t["bin"].as_str().unwrap().to_string(),
            ]
        })
        .collect();
    expected.push("manifest.json".into());
    expected.sort();
    assert_eq!(listing(&out), expected);
    for t in tensors {
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape[0], 3);
        let elems: usize = shape.iter().product();
        let width = match t["dtype"].as_str().unwrap() {
            "u8" => 1,
            "i32" => 4,
            "i64" => 8,
            other => panic!("dtype {other}"),
        };
        let bin = std::fs::read(out.join(t["bin"].as_str().unwrap())).unwrap();
        assert_eq!(bin.len(), elems * width, "{t}");
        let hex = std::fs::read_to_string(out.join(t["hex"].as_str().unwrap())).unwrap();
        let lines: Vec<&str> = hex.lines().collect();
        assert_eq!(lines.len(), elems, "{t}");
        // The two encodings hold the same numbers.
        for (i, l) in lines.iter().enumerate().step_by(97) {
            assert_eq!(l.len(), 2 * width, "{t}");
            let v = u64::from_str_radix(l, 16).unwrap();
            let b = match width {
                1 => u64::from(bin[i]),
                4 => u64::from(u32::from_le_bytes(
                    bin[4 * i..4 * i + 4].try_into().unwrap(),
                )),
                _ => u64::from_le_bytes(bin[8 * i..8 * i + 8].try_into().unwrap()),
            };
            assert_eq!(v, b, "{t} element {i}");
        }
    }
    // Every kind is documented in the manifest; a requantized layer has both its codes (the
    // comparator bank's output, small numbers) and its levels (on the 8-bit grid), and the
    // codes index the levels consistently.
    let kinds = manifest["kinds"].as_object().unwrap();
    for t in tensors {
        assert!(kinds.contains_key(t["kind"].as_str().unwrap()), "{t}");
    }
    let mut pairs = 0;
    for t in tensors.iter().filter(|t| t["kind"] == "codes") {
        let lv = tensors
            .iter()
            .find(|u| u["index"] == t["index"] && u["kind"] == "levels")
            .expect("codes come with levels");
        let codes = std::fs::read(out.join(t["bin"].as_str().unwrap())).unwrap();
        let levels = std::fs::read(out.join(lv["bin"].as_str().unwrap())).unwrap();
        assert!(codes.iter().all(|&c| c < 16), "{t}: codes of a 4-bit layer");
        let mut book = [None; 16];
        for (&c, &l) in codes.iter().zip(&levels) {
            let e = book[usize::from(c)].get_or_insert(l);
            assert_eq!(*e, l, "{t}: code {c} maps to two levels");
        }
        pairs += 1;
    }
    assert!(pairs >= 2, "{manifest}");
    assert!(!tensors.iter().any(|t| t["kind"] == "prerequant"));

    // The logits file matches the manifest's logits and predictions, and the predictions the
    // labels (the data is easy).
    let last = tensors.last().unwrap();
    let bin = std::fs::read(out.join(last["bin"].as_str().unwrap())).unwrap();
    let logits: Vec<i32> = bin
        .chunks(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let rows = manifest["logits"].as_array().unwrap();
    let flat: Vec<i32> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as i32)
        })
        .collect();
    assert_eq!(logits, flat);
    assert_eq!(manifest["predictions"], manifest["labels"], "{manifest}");
    // The input file holds test images 10..13: labels alternate 0/1 from image 10.
    assert_eq!(manifest["labels"], serde_json::json!([0, 1, 0]));

    // --accumulators adds what the comparator banks compare: i32 for convolutions.
    let acc = dir.path().join("acc");
    ok(&nuq(os([
        &"vectors",
        &model,
        &"--out",
        &acc,
        &"--random",
        &"--accumulators",
    ])));
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(acc.join("manifest.json")).unwrap()).unwrap();
    let pre: Vec<&Value> = m["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "prerequant")
        .collect();
    assert!(!pre.is_empty() && pre.len() <= pairs, "{m}");
    assert!(pre.iter().all(|t| t["dtype"] == "i32"), "{m}");

    // Random inputs need no dataset; the same seed gives the same vectors.
    let r1 = dir.path().join("r1");
    let r2 = dir.path().join("r2");
    for r in [&r1, &r2] {
        ok(&nuq(os([
            &"vectors",
            &model,
            &"--out",
            r,
            &"--random",
            &"--seed",
            &"5",
        ])));
    }
    for name in listing(&r1) {
        assert_eq!(
            std::fs::read(r1.join(&name)).unwrap(),
            std::fs::read(r2.join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn bad_requests_leave_nothing_behind() {
    let (dir, model, out, o) = vectors_from_data(20, "19", "2");
    let err = fails(&o);
    assert!(err.contains("past the 20 test images"), "{err}");
    assert!(!out.exists());
    let corrupt = dir.path().join("bad.nuq");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&corrupt, bytes).unwrap();
    let err = fails(&nuq(os([
        &"vectors",
        &corrupt,
        &"--out",
        &out,
        &"--random",
    ])));
    assert!(err.contains("bad.nuq") && err.contains("corrupt"), "{err}");
    assert!(!out.exists());
    usage_error(&nuq(os([
        &"vectors", &model, &"--out", &out, &"--count", &"0",
    ])));
    usage_error(&nuq(os([
        &"vectors", &model, &"--out", &out, &"--seed", &"3",
    ])));
}
