//! The GPU harness itself (tests/common/gpu.rs): what a machine without an adapter reports.

use crate::common::gpu::GpuTest;

pub const CPU_TESTS: &[GpuTest] = &[(
    "harness::without_an_adapter_gpu_tests_are_ignored_or_fail_when_required",
    without_an_adapter_gpu_tests_are_ignored_or_fail_when_required,
)];

/// A GPU test of this binary, run again below with the adapters hidden.
const PROBE: &str = "telemetry::telemetry_matches_the_cpu_twin";

/// This binary run again with no adapter: its GPU tests are reported as ignored, or, when a
/// GPU is required (as .ci/run requires), as failed with the reason.
fn without_an_adapter_gpu_tests_are_ignored_or_fail_when_required() {
    let run = |required: bool| {
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", PROBE, "--test-threads", "1"])
            .env("RPROP_LAB_TEST_NO_GPU", "1")
            .env_remove("CI")
            .env_remove("RPROP_LAB_REQUIRE_GPU");
        if required {
            c.env("RPROP_LAB_REQUIRE_GPU", "1");
        }
        let o = c.output().unwrap();
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        (o.status.success(), text)
    };
    let (ok, text) = run(false);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("test {PROBE} ... ignored")),
        "{text}"
    );
    assert!(text.contains("1 ignored"), "{text}");
    assert!(text.contains("notice: no GPU adapter found"), "{text}");
    let (ok, text) = run(true);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("test {PROBE} ... FAILED")), "{text}");
    assert!(
        text.contains("RPROP_LAB_REQUIRE_GPU or CI requires one"),
        "{text}"
    );
}
