//! Bitfield scans over a 100k-piece torrent: `cargo bench -p lt-core --bench bitfield`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lt_core::Bitfield;

const BITS: usize = 100_000;

fn half_full() -> Bitfield {
    (0..BITS).map(|i| i % 3 != 0).collect()
}

fn bitfield(c: &mut Criterion) {
    let bf = half_full();
    let sparse: Bitfield = (0..BITS).map(|i| i % 1000 == 0).collect();
    let ours = Bitfield::new(BITS);
    let mut group = c.benchmark_group("bitfield/100k");
    group.bench_function("count_ones", |b| b.iter(|| black_box(&bf).count_ones()));
    group.bench_function("iter_ones-sparse", |b| {
        b.iter(|| black_box(&sparse).iter_ones().count());
    });
    group.bench_function("and_not_count", |b| {
        b.iter(|| black_box(&bf).and_not_count(black_box(&ours)));
    });
    group.bench_function("from_bytes", |b| {
        b.iter(|| Bitfield::from_bytes(black_box(bf.as_bytes()), BITS));
    });
    group.finish();
}

criterion_group!(benches, bitfield);
criterion_main!(benches);
