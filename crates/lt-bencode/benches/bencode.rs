//! Decode and encode throughput of lt-bencode beside serde_bencode and bendy, in one run.
//!
//! `cargo bench -p lt-bencode --bench bencode` prints MB/s for each; the crate README
//! quotes the figures.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lt_bencode::Value;
use serde::Deserialize;

/// A torrent-like document of about 1 MiB: 8,000 files and a 20-byte hash per piece.
fn large_document() -> Vec<u8> {
    let files = (0..8_000)
        .map(|i| {
            Value::dict([
                ("length", Value::Int(1_000_000 + i)),
                (
                    "path",
                    Value::List(vec![
                        Value::from(format!("directory-{}", i % 50)),
                        Value::from(format!("file number {i} with a longish name.bin")),
                    ]),
                ),
            ])
        })
        .collect();
    let pieces: Vec<u8> = (0..20 * 20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let info = Value::dict([
        ("files", Value::List(files)),
        ("name", Value::from("a large torrent")),
        ("piece length", Value::Int(262_144)),
        ("pieces", Value::Bytes(pieces)),
    ]);
    Value::dict([
        ("announce", Value::from("http://tracker.example/announce")),
        ("comment", Value::from("benchmark document")),
        ("creation date", Value::Int(1_700_000_000)),
        ("info", info),
    ])
    .to_bytes()
}

const DHT_QUERY: &[u8] =
    b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe";

#[derive(Deserialize)]
#[allow(dead_code)]
struct TFile {
    length: i64,
    path: Vec<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct TInfo {
    files: Vec<TFile>,
    name: String,
    #[serde(rename = "piece length")]
    piece_length: i64,
    #[serde(with = "serde_bytes")]
    pieces: Vec<u8>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Torrent {
    announce: String,
    info: TInfo,
}

fn bendy_walk(obj: bendy::decoding::Object<'_, '_>) -> usize {
    use bendy::decoding::Object;
    match obj {
        Object::Integer(_) => 1,
        Object::Bytes(b) => b.len(),
        Object::List(mut l) => {
            let mut n = 0;
            while let Ok(Some(item)) = l.next_object() {
                n += bendy_walk(item);
            }
            n
        }
        Object::Dict(mut d) => {
            let mut n = 0;
            while let Ok(Some((k, v))) = d.next_pair() {
                n += k.len() + bendy_walk(v);
            }
            n
        }
    }
}

fn bendy_decode(buf: &[u8]) -> usize {
    let mut decoder = bendy::decoding::Decoder::new(buf).with_max_depth(100);
    match decoder.next_object() {
        Ok(Some(obj)) => bendy_walk(obj),
        _ => 0,
    }
}

fn decode_large(c: &mut Criterion) {
    let doc = large_document();
    let mut g = c.benchmark_group("decode_1MiB");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("lt_bencode_zero_copy", |b| {
        b.iter(|| lt_bencode::decode(black_box(&doc)).unwrap().item_count())
    });
    g.bench_function("lt_bencode_to_value", |b| {
        b.iter(|| {
            lt_bencode::decode(black_box(&doc))
                .unwrap()
                .root()
                .to_value()
        })
    });
    g.bench_function("lt_bencode_serde_typed", |b| {
        b.iter(|| lt_bencode::from_bytes::<Torrent>(black_box(&doc)).unwrap())
    });
    g.bench_function("serde_bencode_value", |b| {
        b.iter(|| {
            serde_bencode::from_bytes::<serde_bencode::value::Value>(black_box(&doc)).unwrap()
        })
    });
    g.bench_function("serde_bencode_typed", |b| {
        b.iter(|| serde_bencode::from_bytes::<Torrent>(black_box(&doc)).unwrap())
    });
    g.bench_function("bendy_walk", |b| b.iter(|| bendy_decode(black_box(&doc))));
    g.finish();
}

fn encode_large(c: &mut Criterion) {
    let doc = large_document();
    let ours = lt_bencode::decode(&doc).unwrap().root().to_value();
    let theirs: serde_bencode::value::Value = serde_bencode::from_bytes(&doc).unwrap();
    let mut g = c.benchmark_group("encode_1MiB");
    g.throughput(Throughput::Bytes(doc.len() as u64));
    g.bench_function("lt_bencode_value", |b| {
        b.iter(|| black_box(&ours).to_bytes())
    });
    g.bench_function("lt_bencode_serde", |b| {
        b.iter(|| lt_bencode::to_bytes(black_box(&ours)).unwrap())
    });
    g.bench_function("serde_bencode_value", |b| {
        b.iter(|| serde_bencode::to_bytes(black_box(&theirs)).unwrap())
    });
    g.finish();
}

fn dht_message(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_dht_query");
    g.throughput(Throughput::Bytes(DHT_QUERY.len() as u64));
    g.bench_function("lt_bencode_zero_copy", |b| {
        b.iter(|| {
            lt_bencode::decode(black_box(DHT_QUERY))
                .unwrap()
                .item_count()
        })
    });
    g.bench_function("lt_bencode_value", |b| {
        b.iter(|| lt_bencode::from_bytes::<Value>(black_box(DHT_QUERY)).unwrap())
    });
    g.bench_function("serde_bencode_value", |b| {
        b.iter(|| {
            serde_bencode::from_bytes::<serde_bencode::value::Value>(black_box(DHT_QUERY)).unwrap()
        })
    });
    g.bench_function("bendy_walk", |b| {
        b.iter(|| bendy_decode(black_box(DHT_QUERY)))
    });
    g.finish();
    let value: BTreeMap<String, Value> = lt_bencode::from_bytes(DHT_QUERY).unwrap();
    let mut g = c.benchmark_group("encode_dht_query");
    g.throughput(Throughput::Bytes(DHT_QUERY.len() as u64));
    g.bench_function("lt_bencode_serde", |b| {
        b.iter(|| lt_bencode::to_bytes(black_box(&value)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, decode_large, encode_large, dht_message);
criterion_main!(benches);
