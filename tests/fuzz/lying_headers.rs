//! Headers that lie, through the file readers: IDX dims (gzipped, one or more members),
//! safetensors shapes and offsets, configs with repeated keys, PNG headers claiming huge
//! pictures. None may panic or allocate what the header claims.

use crate::common;

use std::io::Write;

use proptest::prelude::*;
use rprop_lab::checkpoint;
use rprop_lab::config::{Config, KEYS};
use rprop_lab::data;

fn dim() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..30, Just(u32::MAX), Just(1 << 20), any::<u32>()]
}

/// A PNG whose header claims `w` x `h` (any bit depth / colour type) over a short body.
fn png(w: u32, h: u32, depth: u8, color: u8, body: &[u8]) -> Vec<u8> {
    let chunk = |t: &[u8], d: &[u8]| {
        let mut c = (d.len() as u32).to_be_bytes().to_vec();
        c.extend(t);
        c.extend(d);
        let mut crc = flate2::Crc::new();
        crc.update(t);
        crc.update(d);
        c.extend(crc.sum().to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([depth, color, 0, 0, 0]);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(body).unwrap();
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(chunk(b"IHDR", &ihdr));
    v.extend(chunk(b"IDAT", &z.finish().unwrap()));
    v.extend(chunk(b"IEND", &[]));
    v
}

/// Safetensors bytes with a header of tensors fc1/fc2 of arbitrary (lying) shapes and
/// offsets, and a payload of arbitrary length.
fn safetensors_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(
            (
                0usize..5,
                prop::collection::vec(prop_oneof![0usize..40, Just(usize::MAX / 2)], 0..3),
                0usize..2000,
                0usize..2000,
            ),
            0..5,
        ),
        prop::collection::vec(any::<u8>(), 0..1200),
    )
        .prop_map(|(tensors, payload)| {
            let names = [
                "fc1.weight",
                "fc1.bias",
                "fc2.weight",
                "fc2.bias",
                "__metadata__",
            ];
            let entries: Vec<String> = tensors
                .iter()
                .map(|(n, shape, a, b)| {
                    format!(
                        "\"{}\":{{\"dtype\":\"F32\",\"shape\":{shape:?},\"data_offsets\":[{a},{b}]}}",
                        names[*n]
                    )
                })
                .collect();
            let header = format!("{{{}}}", entries.join(","));
            let mut v = (header.len() as u64).to_le_bytes().to_vec();
            v.extend(header.as_bytes());
            v.extend(payload);
            v
        })
}

proptest! {
    #![proptest_config(crate::capped(200))]

    #[test]
    fn lying_idx_files_never_panic_or_overallocate(
        dims in prop::collection::vec(dim(), 0..4),
        payload in prop::collection::vec(any::<u8>(), 0..400),
        members in 1usize..3,
    ) {
        let d = tempfile::tempdir().unwrap();
        let mut raw = 0x803u32.to_be_bytes().to_vec();
        for x in &dims {
            raw.extend(x.to_be_bytes());
        }
        raw.extend(&payload);
        // One or more gzip members (all valid gzip).
        let cut = raw.len() / members;
        let mut gz = common::gzip(&raw[..cut]);
        gz.extend(common::gzip(&raw[cut..]));
        let (img, lbl) = (d.path().join("i.gz"), d.path().join("l.gz"));
        std::fs::write(&img, &gz).unwrap();
        let n = dims.first().copied().unwrap_or(0);
        std::fs::write(&lbl, common::gzip(&common::idx(0x801, &[n.min(400)], &vec![1u8; n.min(400) as usize]))).unwrap();
        if let Ok(set) = data::load_pair(&img, &lbl) {
            prop_assert_eq!(set.images.len(), set.len() * set.features());
            prop_assert!(!set.is_empty());
        }
    }

    #[test]
    fn lying_safetensors_never_panic(bytes in safetensors_bytes()) {
        if let Ok(p) = checkpoint::from_bytes(&bytes, 784, 10) {
            prop_assert!(p.data.iter().all(|x| x.is_finite()));
        }
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        let _ = checkpoint::load_state(&path, 10);
    }

    #[test]
    fn configs_with_repeated_keys_are_refused(
        pairs in prop::collection::vec((0..KEYS.len(), prop_oneof![
            Just("1".to_string()), Just("0.5".to_string()), Just("[128]".to_string()),
            Just("\"rprop-plus\"".to_string()), Just("-3".to_string()), Just("[65536,65536]".to_string()),
        ]), 0..8),
    ) {
        let mut body = vec!["\"optimizer\": \"irprop-plus\"".to_string()];
        body.extend(pairs.iter().map(|(k, v)| format!("\"{}\": {v}", KEYS[*k])));
        let text = format!("{{{}}}", body.join(", "));
        let mut keys: Vec<&str> = vec!["optimizer"];
        keys.extend(pairs.iter().map(|(k, _)| KEYS[*k]));
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        let r = Config::parse(&text);
        if unique.len() < keys.len() {
            let e = format!("{:#}", r.unwrap_err());
            prop_assert!(e.contains("appears twice"), "{}", e);
        } else if let Ok(cfg) = r {
            prop_assert!(cfg.hidden.iter().all(|&h| (1..=65536).contains(&h)));
        }
    }

    #[test]
    fn png_headers_bound_the_decode(
        w in dim(), h in dim(),
        depth in prop_oneof![Just(1u8), Just(8u8), Just(16u8), any::<u8>()],
        color in prop_oneof![Just(0u8), Just(2u8), Just(6u8), any::<u8>()],
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("p.png");
        std::fs::write(&path, png(w, h, depth, color, &body)).unwrap();
        if let Ok(px) = rprop_lab::digits::load_digit(&path) {
            prop_assert_eq!(px.len(), 28 * 28);
            prop_assert!(w <= rprop_lab::digits::MAX_SIDE && h <= rprop_lab::digits::MAX_SIDE);
        }
    }
}
