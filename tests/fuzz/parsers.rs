//! Arbitrary bytes into every parser a user's file reaches: the IDX reader, the config
//! parser, the checkpoint and optimizer-state readers. None may panic, and what they accept
//! is consistent (dims match the payload, values pass validation).

use std::path::Path;

use proptest::prelude::*;

use crate::common;
use rprop_lab::checkpoint;
use rprop_lab::config::{Config, KEYS};
use rprop_lab::data::{self, IMAGES_MAGIC, LABELS_MAGIC};
use rprop_lab::model::{Layout, Params};

/// An IDX header with arbitrary (possibly lying) dims and a payload of arbitrary length.
fn idx_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(IMAGES_MAGIC), Just(LABELS_MAGIC), any::<u32>()],
        prop::collection::vec(prop_oneof![0u32..40, any::<u32>(), Just(u32::MAX)], 0..4),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(magic, dims, payload)| {
            let mut v = magic.to_be_bytes().to_vec();
            for d in dims {
                v.extend(d.to_be_bytes());
            }
            v.extend(payload);
            v
        })
}

proptest! {
    #![proptest_config(crate::capped(300))]

    #[test]
    fn idx_parser_never_panics(bytes in idx_bytes(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let p = Path::new("x.idx");
        for magic in [IMAGES_MAGIC, LABELS_MAGIC] {
            if let Ok((dims, payload)) = data::parse_idx(p, &bytes, magic) {
                // Accepted only when the dims describe the payload exactly.
                prop_assert_eq!(dims.iter().product::<usize>(), payload.len());
            }
            let _ = data::parse_idx(p, &raw, magic);
        }
    }

    #[test]
    fn idx_files_never_panic(images in idx_bytes(), labels in idx_bytes(), cut in 0usize..400) {
        let d = tempfile::tempdir().unwrap();
        let (i, l) = (d.path().join("i.gz"), d.path().join("l.gz"));
        let gi = common::gzip(&images);
        std::fs::write(&i, &gi).unwrap();
        std::fs::write(&l, common::gzip(&labels)).unwrap();
        if let Ok(set) = data::load_pair(&i, &l) {
            prop_assert_eq!(set.images.len(), set.len() * set.features());
            prop_assert!(set.labels.iter().all(|&y| y < 10));
        }
        // The same file cut short anywhere.
        std::fs::write(&i, &gi[..cut.min(gi.len())]).unwrap();
        let _ = data::load_pair(&i, &l);
    }

    #[test]
    fn config_parser_never_panics(text in "\\PC{0,80}") {
        let _ = Config::parse(&text);
    }

    #[test]
    fn config_values_are_checked_not_trusted(
        key in prop::sample::select(KEYS.to_vec()),
        value in prop_oneof![
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            any::<i64>().prop_map(|i| serde_json::json!(i)),
            any::<u64>().prop_map(|i| serde_json::json!(i)),
            "\\PC{0,12}".prop_map(|s| serde_json::json!(s)),
            Just(serde_json::json!(null)),
            Just(serde_json::json!([1, 2])),
        ],
    ) {
        let mut obj = serde_json::json!({"optimizer": "irprop-plus"});
        obj[key] = value;
        if let Ok(cfg) = Config::parse(&obj.to_string()) {
            // Whatever is accepted passes validation.
            prop_assert!(cfg.validate().is_ok());
            prop_assert!(cfg.hyper.eta_minus > 0.0 && cfg.hyper.eta_minus < 1.0 && cfg.hyper.eta_plus > 1.0);
            prop_assert!(cfg.train_set_size + cfg.eval_set_size <= 60_000 && cfg.epochs > 0);
        } else {
            let e = format!("{:#}", Config::parse(&obj.to_string()).unwrap_err());
            prop_assert!(e.contains(key) || e.contains("exceeds"), "{}", e);
        }
    }

    #[test]
    fn checkpoint_reader_never_panics(
        raw in prop::collection::vec(any::<u8>(), 0..200),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let _ = checkpoint::from_bytes(&raw, 784, 10);
        // A valid small checkpoint with bytes changed (header included), or cut short.
        let p = Params::init(Layout::new(6, 3, 2), 1);
        let mut good = checkpoint::to_bytes(&p, &[]).unwrap();
        let header = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
        for (i, b) in &flips {
            let at = i.index(header.min(good.len()));
            good[at] ^= b;
        }
        if let Ok(q) = checkpoint::from_bytes(&good, 6, 2) {
            prop_assert_eq!(q.layout, p.layout);
        }
        let _ = checkpoint::from_bytes(&good[..cut.index(good.len())], 6, 2);
    }

    #[test]
    fn state_reader_never_panics(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.safetensors");
        std::fs::write(&p, &raw).unwrap();
        let _ = checkpoint::load_state(&p, 10);
    }
}

#[test]
fn lying_header_in_a_safetensors_file_is_refused() {
    // Header length claiming 2^60 bytes.
    let mut b = (1u64 << 60).to_le_bytes().to_vec();
    b.extend(b"{}");
    assert!(checkpoint::from_bytes(&b, 784, 10).is_err());
}
