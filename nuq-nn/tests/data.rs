//! Dataset readers on small files written in the exact formats, augmentation and the loader.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;
use nuq_nn::data::{
    decode_cifar10, decode_cifar100, decode_mnist_like, load_cifar10, load_cifar100,
    load_mnist_like, parse_idx, Augment, BatchLoader, Cifar100Labels, DataError, Dataset, Split,
};
use nuq_nn::Rng;

/// A CIFAR record: label bytes, then planes R, G, B with pixel p of plane k = (k·7 + p) mod 251.
fn cifar_record(labels: &[u8]) -> Vec<u8> {
    let mut r = labels.to_vec();
    for k in 0..3 {
        for p in 0..1024 {
            r.push(((k * 7 + p + labels[labels.len() - 1] as usize) % 251) as u8);
        }
    }
    r
}

#[test]
fn cifar10_reads_all_batches_as_nhwc() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=5 {
        let bytes: Vec<u8> = [cifar_record(&[i]), cifar_record(&[9])].concat();
        std::fs::write(dir.path().join(format!("data_batch_{i}.bin")), bytes).unwrap();
    }
    std::fs::write(dir.path().join("test_batch.bin"), cifar_record(&[3])).unwrap();
    let train = load_cifar10(dir.path(), Split::Train).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(train.labels, [1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
    assert_eq!(
        (train.height, train.width, train.channels, train.classes),
        (32, 32, 3, 10)
    );
    let test = load_cifar10(dir.path(), Split::Test).unwrap();
    // pixel (y=2, x=5): p = 69; channel k value = (7k + 69 + label) mod 251
    let px = &test.image(0)[(2 * 32 + 5) * 3..][..3];
    assert_eq!(px, [72, 79, 86]);
}

#[test]
fn cifar_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    match load_cifar10(dir.path(), Split::Test) {
        Err(DataError::Missing { path, .. }) => assert!(path.ends_with("test_batch.bin")),
        other => panic!("{other:?}"),
    }
    let mut bytes = cifar_record(&[1]);
    bytes.extend_from_slice(&[0; 5]);
    std::fs::write(dir.path().join("test_batch.bin"), &bytes).unwrap();
    let e = load_cifar10(dir.path(), Split::Test).unwrap_err();
    assert!(matches!(e, DataError::Size { found: 3078, .. }), "{e}");
    assert!(e.to_string().contains("test_batch.bin"), "{e}");
    std::fs::write(dir.path().join("test_batch.bin"), cifar_record(&[10])).unwrap();
    assert!(matches!(
        load_cifar10(dir.path(), Split::Test),
        Err(DataError::Invalid { .. })
    ));
}

#[test]
fn cifar100_coarse_and_fine() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = [cifar_record(&[3, 77]), cifar_record(&[19, 99])].concat();
    std::fs::write(dir.path().join("train.bin"), bytes).unwrap();
    let fine = load_cifar100(dir.path(), Split::Train, Cifar100Labels::Fine).unwrap();
    assert_eq!(
        (fine.labels.as_slice(), fine.classes),
        (&[77u16, 99][..], 100)
    );
    let coarse = load_cifar100(dir.path(), Split::Train, Cifar100Labels::Coarse).unwrap();
    assert_eq!(
        (coarse.labels.as_slice(), coarse.classes),
        (&[3u16, 19][..], 20)
    );
    assert!(matches!(
        load_cifar100(dir.path(), Split::Test, Cifar100Labels::Fine),
        Err(DataError::Missing { .. })
    ));
}

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn write_file(path: &Path, bytes: &[u8], gz: bool) {
    if gz {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        std::fs::write(path, e.finish().unwrap()).unwrap();
    } else {
        std::fs::write(path, bytes).unwrap();
    }
}

#[test]
fn idx_gzipped_and_plain() {
    for gz in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let sfx = if gz { ".gz" } else { "" };
        let pixels: Vec<u8> = (0..3 * 4 * 5).map(|v| v as u8).collect();
        write_file(
            &dir.path().join(format!("t10k-images-idx3-ubyte{sfx}")),
            &idx_bytes(0x803, &[3, 4, 5], &pixels),
            gz,
        );
        write_file(
            &dir.path().join(format!("t10k-labels-idx1-ubyte{sfx}")),
            &idx_bytes(0x801, &[3], &[7, 0, 9]),
            gz,
        );
        let ds = load_mnist_like(dir.path(), Split::Test).unwrap();
        assert_eq!((ds.len(), ds.height, ds.width, ds.channels), (3, 4, 5, 1));
        assert_eq!(ds.labels, [7, 0, 9]);
        assert_eq!(ds.image(2)[0], 40);
    }
}

#[test]
fn idx_errors_are_specific() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("train-images-idx3-ubyte");
    let lab = dir.path().join("train-labels-idx1-ubyte");
    assert!(matches!(
        load_mnist_like(dir.path(), Split::Train),
        Err(DataError::Missing { .. })
    ));
    write_file(&img, &idx_bytes(0x801, &[1, 2, 2], &[0; 4]), false);
    write_file(&lab, &idx_bytes(0x801, &[1], &[1]), false);
    let e = load_mnist_like(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Magic {
                expected: 0x803,
                found: 0x801,
                ..
            }
        ),
        "{e}"
    );
    write_file(&img, &idx_bytes(0x803, &[2, 2, 2], &[0; 7]), false);
    let e = load_mnist_like(dir.path(), Split::Train).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Size {
                expected: 8,
                found: 7,
                ..
            }
        ),
        "{e}"
    );
    write_file(&img, &idx_bytes(0x803, &[2, 2, 2], &[0; 8]), false);
    let e = load_mnist_like(dir.path(), Split::Train).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e}");
    write_file(&lab, &idx_bytes(0x801, &[2], &[1, 12]), false);
    assert!(matches!(
        load_mnist_like(dir.path(), Split::Train),
        Err(DataError::Invalid { .. })
    ));
    write_file(&lab, &[0, 0], false);
    assert!(matches!(
        load_mnist_like(dir.path(), Split::Train),
        Err(DataError::Size { .. })
    ));
}

fn toy_dataset(n: usize) -> Dataset {
    Dataset {
        images: (0..n * 2 * 3).map(|v| (v % 256) as u8).collect(),
        labels: (0..n).map(|i| i as u16).collect(),
        height: 2,
        width: 3,
        channels: 1,
        classes: n,
    }
}

#[test]
fn augmentation_normalises_crops_and_flips() {
    let src: Vec<u8> = vec![0, 51, 102, 153, 204, 255];
    let mut out = vec![0.0; 6];
    let plain = Augment::normalize_only(vec![0.5], vec![0.25]);
    plain.apply(&src, 2, 3, 1, &mut Rng::new(0), &mut out);
    let want: Vec<f32> = src
        .iter()
        .map(|&v| (v as f32 / 255.0 - 0.5) / 0.25)
        .collect();
    for (a, b) in out.iter().zip(&want) {
        assert!((a - b).abs() < 1e-5);
    }
    let near = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    let flipped = [want[2], want[1], want[0], want[5], want[4], want[3]];
    let flip = Augment {
        hflip: true,
        ..plain.clone()
    };
    let mut seen_flip = false;
    let mut seen_plain = false;
    let mut rng = Rng::new(1);
    for _ in 0..20 {
        flip.apply(&src, 2, 3, 1, &mut rng, &mut out);
        if near(&out, &flipped) {
            seen_flip = true;
        } else {
            assert!(near(&out, &want), "{out:?}");
            seen_plain = true;
        }
    }
    assert!(seen_flip && seen_plain);
    let crop = Augment {
        crop_padding: 1,
        ..plain
    };
    let pad = (0.0 - 0.5) / 0.25;
    let mut rng = Rng::new(2);
    for _ in 0..20 {
        crop.apply(&src, 2, 3, 1, &mut rng, &mut out);
        // Every output is either padding or a source pixel, and the source order is kept.
        let vals: Vec<f32> = out
            .iter()
            .copied()
            .filter(|&v| (v - pad).abs() > 1e-5)
            .collect();
        assert!(vals
            .iter()
            .all(|v| want.iter().any(|w| (v - w).abs() < 1e-5)));
        assert!(!vals.is_empty());
    }
}

#[test]
fn loader_is_seeded_complete_and_prefetching() {
    let data = Arc::new(toy_dataset(10));
    let aug = Augment::normalize_only(vec![0.0], vec![1.0]);
    let epoch = |seed, e| -> Vec<Vec<u32>> {
        BatchLoader::new(data.clone(), 4, aug.clone(), true, false, seed, e)
            .map(|b| b.labels)
            .collect()
    };
    let a = epoch(7, 0);
    assert_eq!(a, epoch(7, 0));
    assert_ne!(a, epoch(7, 1));
    assert_ne!(a, epoch(8, 0));
    assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
    let mut all: Vec<u32> = a.concat();
    all.sort_unstable();
    assert_eq!(all, (0..10).collect::<Vec<u32>>());
    let dropped = BatchLoader::new(data.clone(), 4, aug.clone(), false, true, 0, 0);
    assert_eq!(dropped.batches(), 2);
    let batches: Vec<_> = dropped.collect();
    assert_eq!(batches[1].labels, [4, 5, 6, 7]);
    assert_eq!(batches[1].images.shape(), [4, 2, 3, 1]);
    assert!((batches[1].images.data()[0] - data.image(4)[0] as f32 / 255.0).abs() < 1e-6);
    // Dropping a loader mid-epoch stops its worker.
    let mut early = BatchLoader::new(data, 1, aug, true, false, 0, 0);
    assert!(early.next().is_some());
    drop(early);
}

#[test]
fn idx_dimensions_whose_product_overflows_are_refused() {
    // 2^32−1 cubed overflows 64 bits (it used to wrap); the payload is 3 bytes.
    let bytes = idx_bytes(0x803, &[u32::MAX; 3], &[1, 2, 3]);
    let e = parse_idx(Path::new("x"), &bytes, 3, 1 << 20).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Size {
                expected: u64::MAX,
                found: 3,
                ..
            }
        ),
        "{e}"
    );
    // 2^16 · 2^16 · 2^16 = 2^48 exactly is not 3 bytes either.
    let bytes = idx_bytes(0x803, &[1 << 16; 3], &[1, 2, 3]);
    let e = parse_idx(Path::new("x"), &bytes, 3, 1 << 20).unwrap_err();
    assert!(
        matches!(e, DataError::Size { expected, .. } if expected == 1 << 48),
        "{e}"
    );
}

#[test]
fn idx_gzip_bombs_stop_at_the_limit() {
    // 1 MiB of zeros compresses to about 1 KiB; with a 64 KiB limit it is refused without
    // decompressing it all.
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(&idx_bytes(0x803, &[1, 1024, 1024], &vec![0; 1 << 20]))
        .unwrap();
    let gz = e.finish().unwrap();
    assert!(gz.len() < 4096);
    let err = parse_idx(Path::new("bomb.gz"), &gz, 3, 64 << 10).unwrap_err();
    assert!(
        matches!(err, DataError::Size { expected, found, .. } if expected == 64 << 10 && found == (64 << 10) + 1),
        "{err}"
    );
    // The same stream under a large enough limit is read.
    let a = parse_idx(Path::new("ok.gz"), &gz, 3, 2 << 20).unwrap();
    assert_eq!(a.dims, [1, 1024, 1024]);
}

#[test]
fn idx_images_of_zero_pixels_are_refused() {
    let images = idx_bytes(0x803, &[2, 0, 5], &[]);
    let labels = idx_bytes(0x801, &[2], &[1, 2]);
    let e = decode_mnist_like(&images, &labels, 1 << 20).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains("0×5"), "{e}");
}

#[test]
fn cifar_bytes_decode_like_files() {
    let mut bytes = cifar_record(&[3]);
    bytes.extend(cifar_record(&[9]));
    let ds = decode_cifar10(Path::new("b"), &bytes).unwrap();
    assert_eq!((ds.len(), ds.classes), (2, 10));
    assert_eq!(ds.labels, [3, 9]);
    let e = decode_cifar10(Path::new("b"), &bytes[..3000]).unwrap_err();
    assert!(matches!(e, DataError::Size { .. }), "{e}");
    let e = decode_cifar10(Path::new("b"), &[]).unwrap_err();
    assert!(matches!(e, DataError::Size { .. }), "{e}");
    let rec = cifar_record(&[19, 99]);
    let coarse = decode_cifar100(Path::new("c"), &rec, Cifar100Labels::Coarse).unwrap();
    let fine = decode_cifar100(Path::new("c"), &rec, Cifar100Labels::Fine).unwrap();
    assert_eq!((coarse.labels[0], fine.labels[0]), (19, 99));
    let bad = cifar_record(&[20, 99]);
    assert!(matches!(
        decode_cifar100(Path::new("c"), &bad, Cifar100Labels::Coarse),
        Err(DataError::Invalid { .. })
    ));
}
