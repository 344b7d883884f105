//! Property tests of every parser a user's file reaches (IDX, config, checkpoint and
//! optimizer state, PNG headers), in a test binary of their own: the whole process runs
//! under a memory cap, so a lying header that allocates aborts the test, not the machine.

#[path = "../common/mod.rs"]
mod common;

mod lying_headers;
mod parsers;

use std::sync::Once;

use proptest::prelude::ProptestConfig;

/// Caps the whole test process at 1.5 GiB of address space (once) and returns the config of
/// a property: `cases` cases, or `PROPTEST_CASES=N` for a longer hunt.
pub fn capped(cases: u32) -> ProptestConfig {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let lim = libc::rlimit {
            rlim_cur: 1536 << 20,
            rlim_max: 1536 << 20,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) }, 0);
    });
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}
