//! Fuzzes the MNIST / Fashion-MNIST IDX reader (`nuq_nn::data::parse_idx` and
//! `decode_mnist_like`), plain and gzipped. Input: a 2-byte big-endian length `L`, then `L`
//! bytes of the images file and the rest as the labels file. Oracles: no panic, no
//! allocation past the 16 MiB payload limit given to the reader (a gzip bomb is refused), and
//! an accepted dataset is consistent (one label below 10 per image, every image `h·w` bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nuq_nn::data::{decode_mnist_like, parse_idx};
use std::path::Path;

const LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_be_bytes([data[0], data[1]]));
    let rest = &data[2..];
    let (images, labels) = rest.split_at(split.min(rest.len()));
    for ndims in 1..=4 {
        if let Ok(a) = parse_idx(Path::new("fuzz"), rest, ndims, LIMIT) {
            assert_eq!(a.dims.len(), usize::from(ndims));
            let count: u128 = a.dims.iter().map(|&d| d as u128).product();
            assert_eq!(count, a.data.len() as u128);
        }
    }
    if let Ok(ds) = decode_mnist_like(images, labels, LIMIT) {
        assert_eq!(ds.images.len(), ds.len() * ds.image_len());
        assert!(ds.image_len() > 0);
        assert!(ds.labels.iter().all(|&l| l < 10));
        for i in 0..ds.len() {
            assert_eq!(ds.image(i).len(), ds.image_len());
        }
    }
});
