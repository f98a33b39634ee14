//! Fixed key material shared by the fuzz targets and the seed generator, so that seeds
//! sealed by `examples/gen_seeds.rs` open in the `envelope` and `pack` targets.
//! Nothing here is secret: these keys exist only for fuzzing.

use cairn::crypto::aead::{Cipher, TAG_LEN};
use cairn::crypto::keys::{Binding, MasterKey, RepoKeys, PACK_KIND};
use cairn::format::{envelope, pack};
use std::sync::OnceLock;

/// Master key material in version 1's layout (read as content root and epoch 0): kind
/// byte 1 (full), then 32 bytes of write root and 32 of read secret.
pub fn master_bytes() -> [u8; 65] {
    let mut b = [0u8; 65];
    b[0] = 1;
    for (i, x) in b[1..].iter_mut().enumerate() {
        *x = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    b
}

/// The fixed full master key.
pub fn master() -> &'static MasterKey {
    static M: OnceLock<MasterKey> = OnceLock::new();
    M.get_or_init(|| MasterKey::from_bytes_v1(&master_bytes()).expect("fixed master key"))
}

/// The repository keys derived from the fixed master key and its own public key.
pub fn keys() -> &'static RepoKeys {
    static K: OnceLock<RepoKeys> = OnceLock::new();
    K.get_or_init(|| {
        let m = master();
        m.derive(m.public_key(), [0x42; 32]).expect("derive fixed keys")
    })
}

/// A fixed "ephemeral" public key for packs and sealed objects the targets build
/// themselves (a real writer draws a fresh one each time; the format does not care).
pub fn fixed_eph() -> [u8; 32] {
    let mut b = [0u8; 65];
    b[0] = 1;
    b[1..].fill(0x77);
    MasterKey::from_bytes_v1(&b).expect("fixed ephemeral key").public_key()
}

struct PackKey {
    eph: [u8; 32],
    cipher: Cipher,
}

fn pack_key() -> &'static PackKey {
    static P: OnceLock<PackKey> = OnceLock::new();
    P.get_or_init(|| {
        let eph = fixed_eph();
        let key = keys()
            .open_sealed_object_key(0, &eph, Binding::Kind(PACK_KIND))
            .expect("full key opens sealed keys");
        PackKey { eph, cipher: Cipher::new(&key) }
    })
}

/// A pack whose header is valid for `keys()`, whose blob area is `blob_area` zero bytes
/// and whose table of contents is `toc_plain` sealed correctly: `read_toc` authenticates
/// it and reaches `decode_toc` with whatever bytes the fuzzer chose.
pub fn pack_with_toc(blob_area: usize, toc_plain: &[u8]) -> Vec<u8> {
    let pk = pack_key();
    let header = pack::header(&pk.eph, 0, None);
    let mut toc = toc_plain.to_vec();
    pk.cipher.seal_in_place(&pack::TOC_NONCE, &header, &mut toc);
    let mut out = Vec::with_capacity(pack::HEADER_LEN + blob_area + toc.len() + pack::TRAILER_LEN);
    out.extend_from_slice(&header);
    out.resize(pack::HEADER_LEN + blob_area, 0);
    out.extend_from_slice(&toc);
    out.extend_from_slice(&(toc.len() as u32).to_le_bytes());
    out.extend_from_slice(pack::TRAILER_MAGIC);
    out
}

/// The seal mode byte (envelope header byte 6) cairn writes for `ty`: 1 shared key,
/// 2 sealed to the repository public key. Learned from a real seal, so object types
/// added later need no change here.
fn envelope_mode(ty: envelope::ObjectType) -> u8 {
    static MODES: [OnceLock<u8>; 256] = [const { OnceLock::new() }; 256];
    *MODES[ty as usize & 0xff]
        .get_or_init(|| envelope::seal(keys(), ty, b"").expect("seal an empty payload")[6])
}

/// An envelope of type `ty` whose body is `encoded` (a compress-encoded payload, or any
/// bytes) sealed correctly with `keys()`, built by hand from format-spec's layout so
/// `envelope::open` gets past authentication with a body the fuzzer chose: version 2
/// from a backup-only writer (no attestation to forge), version 1 for the config.
pub fn envelope_with_body(ty: envelope::ObjectType, encoded: &[u8]) -> Vec<u8> {
    let mode = envelope_mode(ty);
    let v1 = ty == envelope::ObjectType::Config;
    let binding = if v1 { Binding::Legacy } else { Binding::Kind(ty as u8) };
    let (material, key) = if mode == 2 {
        // Sealed to the repository public key: material is the ephemeral public key.
        let eph = pack_key().eph;
        let key = keys().open_sealed_object_key(0, &eph, binding).expect("full key opens sealed keys");
        (eph, key)
    } else {
        // Shared key: material is a salt.
        let salt = [0x5a; 32];
        (salt, keys().shared_object_key(0, &salt, binding).expect("epoch 0 is held"))
    };
    let len = if v1 { envelope::HEADER_LEN_V1 } else { envelope::HEADER_LEN };
    let mut h = vec![0u8; len];
    h[..4].copy_from_slice(envelope::MAGIC);
    h[4] = if v1 { envelope::VERSION_1 } else { envelope::VERSION };
    h[5] = ty as u8;
    h[6] = mode;
    h[7] = if v1 { 0 } else { 2 };
    h[8..40].copy_from_slice(&material);
    let mut body = encoded.to_vec();
    Cipher::new(&key).seal_in_place(&[0u8; 12], &h, &mut body);
    let mut out = Vec::with_capacity(h.len() + body.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(&body);
    debug_assert!(out.len() >= len + TAG_LEN);
    out
}
