//! The harness of the GPU test binaries (`harness = false`, libtest-mimic): with no GPU adapter
//! the tests are reported as ignored (never a silent `ok`), unless a GPU is required
//! (`RPROP_LAB_REQUIRE_GPU=1`, which `.ci/run` sets, or `CI=true`): then each fails with a
//! clear message.

use libtest_mimic::{Arguments, Failed, Trial};

/// A GPU test: its name and body (which panics on failure).
pub type GpuTest = (&'static str, fn());

/// Whether a missing adapter must fail the tests rather than skip them.
pub fn gpu_required() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| v == "1" || v == "true");
    set("RPROP_LAB_REQUIRE_GPU") || set("CI")
}

/// Runs `tests` as a test binary's main: each is a trial, ignored when no adapter exists
/// (failed instead when a GPU is required); `cpu_tests` in the same binary always run.
pub fn main(tests: &[GpuTest], cpu_tests: &[GpuTest]) -> ! {
    let mut args = Arguments::from_args();
    // RPROP_LAB_TEST_NO_GPU=1 hides the adapters, so the harness's own test can see what a
    // machine without one reports.
    let hidden = std::env::var("RPROP_LAB_TEST_NO_GPU").is_ok_and(|v| v == "1");
    let adapters = match hidden {
        true => Vec::new(),
        false => rprop_lab::gpu::adapters(&rprop_lab::gpu::instance()),
    };
    let have = !adapters.is_empty();
    // On wgpu's GL backend, libglvnd frees a thread's EGL state twice when a thread that used
    // EGL exits (wgpu issue #4285): the test binary then dies with "double free or corruption"
    // after its results. libtest-mimic runs the tests in the main thread, which never exits
    // before the process does, when given one thread; so on GL it gets one, whoever runs it.
    if adapters
        .first()
        .is_some_and(|a| a.get_info().backend == wgpu::Backend::Gl)
    {
        args.test_threads = Some(1);
    }
    let required = gpu_required();
    if !have && !required {
        eprintln!(
            "notice: no GPU adapter found; the GPU tests are ignored (install mesa-vulkan-drivers for lavapipe)"
        );
    }
    let trials = tests
        .iter()
        .map(|&(name, body)| {
            Trial::test(name, move || {
                if !have {
                    return Err(Failed::from(
                        "no GPU adapter found, and RPROP_LAB_REQUIRE_GPU or CI requires one (install mesa-vulkan-drivers for lavapipe)",
                    ));
                }
                body();
                Ok(())
            })
            .with_ignored_flag(!have && !required)
        })
        .chain(cpu_tests.iter().map(|&(name, body)| {
            Trial::test(name, move || {
                body();
                Ok(())
            })
        }))
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// The strategies of `of` the first adapter can run, in order. Each one it cannot (the
/// texture strategy without 8-lane subgroups: wgpu's GL backend, most real GPUs) is named
/// on stderr as skipped, never forced. A GPU test runs only when the harness found an
/// adapter, so an adapter that cannot be selected now is a failure, not "all supported".
pub fn strategies(of: &[rprop_lab::gpu::Strategy]) -> Vec<rprop_lab::gpu::Strategy> {
    let instance = rprop_lab::gpu::instance();
    let adapter = match rprop_lab::gpu::select_adapter(&instance, None) {
        Ok(a) => a,
        Err(e) => panic!("the strategies an adapter runs: no adapter to ask ({e})"),
    };
    of.iter()
        .copied()
        .filter(
            |&k| match rprop_lab::gpu::kernels::unsupported(&adapter, k) {
                Some(why) => {
                    eprintln!("skipped on this adapter: matmul strategy {k} ({why})");
                    false
                }
                None => true,
            },
        )
        .collect()
}
