//! The shader sources stay in step with what generates and binds them: the unrolled kernels
//! at the end of matmul_sg.wgsl are the output of shaders/gen_matmul_sg.py for the block
//! sizes the host dispatches (FWD_SG, DW1_SG), and every shader numbers its own bindings
//! from 0 without gaps.

use std::path::Path;
use std::process::Command;

use rprop_lab::gpu::ops::linear::{DW1_SG, FWD_SG};

fn shader(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("shaders")
            .join(name),
    )
    .unwrap()
}

#[test]
fn matmul_sg_kernels_are_the_generators_output_for_the_host_block_sizes() {
    let args = [FWD_SG.0, FWD_SG.1, FWD_SG.2, DW1_SG.0, DW1_SG.2].map(|v| v.to_string());
    let out = match Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders/gen_matmul_sg.py"))
        .args(&args)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            // CI has python3; elsewhere say the check did not run.
            assert!(std::env::var("CI").is_err(), "CI: python3 not found: {e}");
            eprintln!("notice: python3 not found ({e}); skipping the generator check");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        DW1_SG.1, 16,
        "gen_matmul_sg.py writes 16 pixels per dw1_sg invocation"
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let committed = shader("matmul_sg.wgsl");
    assert!(
        generated.len() > 1000 && committed.trim_end().ends_with(generated.trim_end()),
        "the kernels at the end of shaders/matmul_sg.wgsl differ from \
         `python3 shaders/gen_matmul_sg.py {}`",
        args.join(" ")
    );
}

#[test]
fn every_shader_numbers_its_bindings_from_zero() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "wgsl") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut b: Vec<u32> = text
            .split("@binding(")
            .skip(1)
            .map(|t| t.split(')').next().unwrap().parse().unwrap())
            .collect();
        b.sort_unstable();
        b.dedup();
        let want: Vec<u32> = (0..b.len() as u32).collect();
        assert_eq!(b, want, "{}: bindings", path.display());
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} shaders found");
}
