//! SHA-1 throughput of the candidate backends over a piece-sized buffer and one
//! block: `cargo bench -p lt-core --bench sha1`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha1::Digest as _;

fn buffer(len: usize) -> Vec<u8> {
    // Deterministic, not all zero.
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13).to_le_bytes()[0])
        .collect()
}

fn sha1_backends(c: &mut Criterion) {
    for (label, len) in [("4MiB", 4 << 20), ("16KiB", 16 << 10)] {
        let data = buffer(len);
        let mut group = c.benchmark_group(format!("sha1/{label}"));
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function("rustcrypto-sha1", |b| {
            b.iter(|| sha1::Sha1::digest(black_box(&data)));
        });
        group.bench_function("ring", |b| {
            b.iter(|| {
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, black_box(&data))
            });
        });
        group.bench_function("aws-lc-rs", |b| {
            b.iter(|| {
                aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                    black_box(&data),
                )
            });
        });
        group.bench_function("lt_core::Sha1Hash::digest", |b| {
            b.iter(|| lt_core::Sha1Hash::digest(black_box(&data)));
        });
        group.bench_function("lt_core::Sha1Hasher-16KiB-updates", |b| {
            b.iter(|| {
                let mut h = lt_core::Sha1Hasher::new();
                for block in black_box(&data).chunks(16 << 10) {
                    h.update(block);
                }
                h.finalize()
            });
        });
        group.finish();
    }
}

fn sha256(c: &mut Criterion) {
    let data = buffer(16 << 10);
    let mut group = c.benchmark_group("sha256/16KiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("lt_core::Sha256Hash::digest", |b| {
        b.iter(|| lt_core::Sha256Hash::digest(black_box(&data)));
    });
    group.bench_function("ring", |b| {
        b.iter(|| ring::digest::digest(&ring::digest::SHA256, black_box(&data)));
    });
    group.bench_function("aws-lc-rs", |b| {
        b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(&data)));
    });
    group.finish();
}

criterion_group!(benches, sha1_backends, sha256);
criterion_main!(benches);
