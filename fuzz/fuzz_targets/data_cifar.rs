//! Fuzzes the CIFAR-10 and CIFAR-100 binary readers (`nuq_nn::data::decode_cifar10`,
//! `decode_cifar100`). Oracles: no panic, and an accepted file gives one label below the class
//! count and one 32×32×3 NHWC image per record, whose pixels are the record's planes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_nn::data::{decode_cifar10, decode_cifar100, Cifar100Labels, Dataset};
use std::path::Path;

fn check(ds: &Dataset, data: &[u8], label_bytes: usize) {
    let rec = label_bytes + 3072;
    assert_eq!(ds.len() * rec, data.len());
    assert_eq!(ds.images.len(), ds.len() * 3072);
    assert!(ds.labels.iter().all(|&l| usize::from(l) < ds.classes));
    for (i, r) in data.chunks_exact(rec).enumerate() {
        let img = ds.image(i);
        // Pixel 0 of every plane, and the last pixel of the blue plane.
        assert_eq!(&img[..3], &[r[label_bytes], r[label_bytes + 1024], r[label_bytes + 2048]]);
        assert_eq!(img[3071], r[rec - 1]);
    }
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.bin");
    if let Ok(ds) = decode_cifar10(path, data) {
        assert_eq!(ds.classes, 10);
        check(&ds, data, 1);
    }
    for labels in [Cifar100Labels::Coarse, Cifar100Labels::Fine] {
        if let Ok(ds) = decode_cifar100(path, data, labels) {
            check(&ds, data, 2);
        }
    }
});
