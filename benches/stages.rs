//! Stage benchmarks: each step of the backup pipeline alone, then the whole in-memory
//! pipeline on one and on all cores, and index lookups among 10 million blobs.
//!
//!     cargo bench --bench stages
//!
//! Throughputs are reported in bytes/s over the input. benches/RESULTS.md compares them
//! with what the machine does for the same primitive and with the rate the stages
//! predict for the pipeline (1 / sum of 1/rate).

use cairn::chunker::{Chunker, ChunkerParams};
use cairn::crypto::aead::{counter_nonce, Cipher};
use cairn::crypto::keys::{MasterKey, RepoKeys};
use cairn::format::pack::Entry;
use cairn::id::{BlobId, ChunkId, PackId};
use cairn::index::IndexBuilder;
use cairn::pack::frames::Framer;
use cairn::pack::reader::{blob_of_frame, open_frame, PackKey};
use cairn::pack::PackBuilder;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rayon::prelude::*;
use std::hint::black_box;

const MB: usize = 1 << 20;

fn keys() -> RepoKeys {
    let m = MasterKey::generate().unwrap();
    m.derive(m.public_key(), [0; 32]).unwrap()
}

/// A corpus like a gateway host's: half SQL dump text, a quarter XML, a quarter random.
fn corpus(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    while out.len() < len / 2 {
        let r = next();
        out.extend_from_slice(
            format!(
                "INSERT INTO audit VALUES ({},'user-{}','event {}',{});\n",
                r % 1_000_000,
                r % 5000,
                r % 7,
                r >> 20
            )
            .as_bytes(),
        );
    }
    while out.len() < len * 3 / 4 {
        let r = next();
        out.extend_from_slice(
            format!("  <policy name=\"p{}\" enabled=\"{}\"/>\n", r % 400, r % 2 == 0).as_bytes(),
        );
    }
    while out.len() < len {
        out.extend_from_slice(&next().to_le_bytes());
    }
    out.truncate(len);
    out
}

fn stages(c: &mut Criterion) {
    let keys = keys();
    let chunker = Chunker::new(ChunkerParams::DEFAULT, keys.gear_table()).unwrap();
    let data = corpus(64 * MB);
    let chunks: Vec<&[u8]> = chunker.split(&data).collect();
    let mut g = c.benchmark_group("stage");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("chunk (keyed FastCDC)", |b| b.iter(|| chunker.split(black_box(&data)).count()));
    g.bench_function("hash (keyed BLAKE3)", |b| {
        b.iter(|| chunks.iter().map(|c| keys.chunk_id(c).0[0] as usize).sum::<usize>())
    });
    // As the writer compresses: chunks gathered into frames of up to 1 MiB.
    g.bench_function("compress (zstd 3, in frames)", |b| {
        b.iter(|| {
            let mut framer = Framer::new(3);
            let mut out: usize = chunks
                .iter()
                .filter_map(|c| framer.add(BlobId::Chunk(ChunkId([0; 32])), c))
                .map(|f| f.encoded.encoded_len())
                .sum();
            out += framer.finish().map_or(0, |f| f.encoded.encoded_len());
            out
        })
    });
    let cipher = Cipher::new(&[7; 32]);
    g.bench_function("seal (AES-256-GCM)", |b| {
        b.iter_batched(
            || chunks.iter().map(|c| c.to_vec()).collect::<Vec<_>>(),
            |bufs| {
                for (i, mut buf) in bufs.into_iter().enumerate() {
                    cipher.seal_in_place(&counter_nonce(i as u64), b"aad", &mut buf);
                    black_box(&buf);
                }
            },
            BatchSize::LargeInput,
        )
    });
    // What check --read-data does per frame: open (decrypt), decompress, re-hash each blob.
    let pack = {
        let mut pack = PackBuilder::new(80 * MB, None);
        let mut framer = Framer::new(3);
        for chunk in &chunks {
            if let Some(f) = framer.add(BlobId::Chunk(keys.chunk_id(chunk)), chunk) {
                pack.add_frame(&keys, &f.blobs, &f.encoded).unwrap();
            }
        }
        if let Some(f) = framer.finish() {
            pack.add_frame(&keys, &f.blobs, &f.encoded).unwrap();
        }
        pack.finish()
    };
    let pack_key = PackKey::of_header(&keys, pack.bytes()).unwrap();
    g.bench_function("open (decrypt + decompress + re-hash)", |b| {
        b.iter(|| {
            for frame in pack.entries.chunk_by(|a, b| a.same_frame(b)) {
                let e = &frame[0];
                let mut sealed = pack.bytes()[e.offset as usize..(e.offset + e.length) as usize].to_vec();
                let plain = open_frame(&pack_key, frame.last().unwrap(), &mut sealed).unwrap();
                for e in frame {
                    black_box(blob_of_frame(&keys, e, &plain).unwrap());
                }
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));
    // One writer's work: hash a chunk, gather it into the open frame, seal full frames.
    let one = |(mut pack, mut framer): (PackBuilder, Framer), chunk: &[u8]| {
        if let Some(f) = framer.add(BlobId::Chunk(keys.chunk_id(chunk)), chunk) {
            pack.add_frame(&keys, &f.blobs, &f.encoded).unwrap();
        }
        (pack, framer)
    };
    let finish = |(mut pack, mut framer): (PackBuilder, Framer)| {
        if let Some(f) = framer.finish() {
            pack.add_frame(&keys, &f.blobs, &f.encoded).unwrap();
        }
        pack.finish().bytes().len()
    };
    let fresh = || (PackBuilder::new(64 * MB, None), Framer::new(3));
    g.bench_function("in memory, 1 thread", |b| b.iter(|| finish(chunker.split(&data).fold(fresh(), one))));
    // As the backup writer does: each worker fills its own frame and pack, so compressing
    // and sealing run in parallel too.
    g.bench_function("in memory, all threads", |b| {
        b.iter(|| chunks.par_iter().fold(fresh, |w, c| one(w, c)).map(finish).sum::<usize>())
    });
    g.finish();
}

fn index_lookups(c: &mut Criterion) {
    const N: u32 = 10_000_000;
    let id_of = |i: u32| {
        let mut id = [0u8; 32];
        id.copy_from_slice(blake3::hash(&i.to_le_bytes()).as_bytes());
        BlobId::Chunk(ChunkId(id))
    };
    let mut builder = IndexBuilder::default();
    let per_pack = 1000;
    for p in 0..N / per_pack {
        let entries: Vec<Entry> = (0..per_pack)
            .map(|i| Entry {
                id: id_of(p * per_pack + i),
                offset: 40 + i / 16 * 1000,
                length: 1000,
                raw_length: 80,
                start: i % 16 * 80,
            })
            .collect();
        let mut pack = [0u8; 32];
        pack[..4].copy_from_slice(&p.to_le_bytes());
        builder.add_pack(PackId(pack), &entries).unwrap();
    }
    let index = builder.build();
    let per_entry = index.memory_bytes() as f64 / index.len() as f64;
    eprintln!(
        "index: {} blobs, {} bytes in memory, {per_entry:.1} bytes per blob",
        index.len(),
        index.memory_bytes()
    );
    assert!(per_entry <= 32.0, "index memory target is 32 bytes per blob, measured {per_entry:.1}");
    let probes: Vec<BlobId> = (0..100_000).map(|i| id_of(i * 97 % N)).collect();
    let misses: Vec<BlobId> = (0..100_000).map(|i| id_of(N + i)).collect();
    let mut g = c.benchmark_group("index (10M blobs)");
    g.throughput(Throughput::Elements(probes.len() as u64));
    g.bench_function("lookup hit", |b| b.iter(|| probes.iter().filter(|id| index.contains(id)).count()));
    g.bench_function("lookup miss", |b| b.iter(|| misses.iter().filter(|id| index.contains(id)).count()));
    g.finish();
}

criterion_group!(benches, stages, index_lookups);
criterion_main!(benches);
