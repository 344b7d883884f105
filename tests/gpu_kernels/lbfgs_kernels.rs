//! The L-BFGS kernels (shaders/lbfgs.wgsl, shaders/lbfgs_admit.wgsl, recorded by
//! gpu::ops::lbfgs) against their CPU twins in cpu::lbfgs: the fixed-order reductions, the
//! history test and the two-loop recursion with a pair gated out. The reductions' order is
//! the same; the driver may round a product or an fma differently, so values agree to 1e-6
//! relative (the bits are counted and printed).

use rprop_lab::cpu::lbfgs as twin;
use rprop_lab::gpu::buffers::{f32s, storage};
use rprop_lab::gpu::ops::lbfgs::{self as rec, Admit, LbfgsKernels, Op, Vecs, Words, NONE};
use rprop_lab::gpu::ops::Plan;
use rprop_lab::gpu::{GpuContext, Needs};
use rprop_lab::rng::Rng;

use crate::common::gpu::GpuTest;

pub const TESTS: &[GpuTest] = &[
    (
        "lbfgs_kernels::reductions_match_their_cpu_twins",
        reductions_match_their_cpu_twins,
    ),
    (
        "lbfgs_kernels::admit_matches_its_cpu_twin",
        admit_matches_its_cpu_twin,
    ),
    (
        "lbfgs_kernels::two_loop_matches_its_cpu_twin",
        two_loop_matches_its_cpu_twin,
    ),
];

/// A device, the kernels, a scalar buffer of 8 pair slots and the block sums for `n`.
struct Rig {
    ctx: GpuContext,
    k: LbfgsKernels,
    sc: wgpu::Buffer,
    parts: [wgpu::Buffer; 2],
    n: usize,
}

impl Rig {
    fn new(n: usize) -> Rig {
        let needs = Needs {
            binding: 1 << 24,
            buffer: 1 << 24,
        };
        let ctx = GpuContext::new(None, needs).unwrap();
        let k = LbfgsKernels::new(&ctx).unwrap();
        let d = &ctx.device;
        let sc = storage(d, "sc", Words::len(8) as usize * 4);
        let blocks = n.div_ceil(twin::BLOCK);
        let parts = [
            storage(d, "a", 2 * blocks * 4),
            storage(d, "b", 2 * blocks * 4),
        ];
        Rig {
            ctx,
            k,
            sc,
            parts,
            n,
        }
    }

    fn upload(&mut self, v: &[f32]) -> wgpu::Buffer {
        let b = storage(&self.ctx.device, "vector", v.len() * 4);
        self.ctx.write(&b, 0, bytemuck::cast_slice(v));
        b
    }

    /// Records with `f`, submits, waits.
    fn run(&mut self, f: impl FnOnce(&mut Plan, Vecs)) {
        let mut plan = Plan::new(&self.ctx.device);
        let v = Vecs {
            k: &self.k,
            sc: &self.sc,
            parts: [&self.parts[0], &self.parts[1]],
            n: self.n,
        };
        f(&mut plan, v);
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        rprop_lab::gpu::ops::encode_all(&mut enc, plan.list.iter());
        self.ctx.submit(enc.finish());
        self.ctx.wait().unwrap();
    }

    fn read(&mut self, b: &wgpu::Buffer, len: usize) -> Vec<f32> {
        f32s(&self.ctx.read_buffer(b, 0, (len * 4) as u64).unwrap())
    }

    fn words(&mut self) -> Vec<f32> {
        let sc = self.sc.clone();
        self.read(&sc, Words::len(8) as usize)
    }
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.uniform(-1.0, 1.0)).collect()
}

fn close(gpu: f32, cpu: f32, what: &str) {
    let rel = ((gpu - cpu) / cpu.abs().max(1e-30)).abs();
    assert!(rel <= 1e-6, "{what}: gpu {gpu} cpu {cpu} ({rel:e} rel.)");
}

/// dot, |.|_1 and max |.| over lengths that end mid-block, against cpu::lbfgs.
fn reductions_match_their_cpu_twins() {
    let (mut same, mut all) = (0, 0);
    for n in [64, 1000, 256 * 37 + 192] {
        let mut rig = Rig::new(n);
        let (x, z) = (random(n, 1), random(n, 2));
        let (xb, zb) = (rig.upload(&x), rig.upload(&z));
        let w = Words::RING;
        rig.run(|p, v| {
            rec::reduce(p, v, (Op::Dot, &xb, &zb), w);
            rec::reduce(p, v, (Op::AbsSum, &xb, &xb), w + 1);
            rec::reduce(p, v, (Op::AbsMax, &xb, &xb), w + 2);
        });
        let got = rig.words();
        let want = [twin::dot(&x, &z), twin::abs_sum(&x), twin::abs_max(&x)];
        for (i, (&c, name)) in want.iter().zip(["dot", "abs_sum", "abs_max"]).enumerate() {
            let g = got[(w as usize) + i];
            close(g, c, &format!("{name} over {n}"));
            same += usize::from(g.to_bits() == c.to_bits());
            all += 1;
        }
        assert_eq!(got[w as usize + 2], twin::abs_max(&x), "max is exact");
    }
    eprintln!("reductions: {same} of {all} bit-identical to the CPU twins");
}

/// The history test on both sides of ys > 1e-10, with a full history (the oldest pair's
/// gate) and not, and the first iteration's reset.
fn admit_matches_its_cpu_twin() {
    let mut rig = Rig::new(64);
    for (ys, yy, full) in [
        (0.5f32, 2.0f32, false),
        (1e-10, 1.0, true),
        (2e-10, 3.0, true),
        (-1.0, 1.0, false),
    ] {
        let mut init = vec![0f32; Words::len(8) as usize];
        init[Words::H_DIAG as usize] = 0.25;
        init[Words::RING as usize] = ys;
        init[Words::RING as usize + 1] = yy;
        init[Words::act(0) as usize] = 1.0;
        rig.ctx.write(&rig.sc, 0, bytemuck::cast_slice(&init));
        let a = Admit {
            ys: Words::RING,
            yy: Words::RING + 1,
            h_diag: Words::H_DIAG,
            rho: Words::rho(3),
            act: Words::act(3),
            first_act: if full { Words::act(0) } else { NONE },
            reset: 0,
            _pad: 0,
        };
        rig.run(|p, v| rec::admit(p, v, a));
        let got = rig.words();
        let (joins, ro, hd) = twin::lbfgs_admit(ys, yy, 0.25);
        let what = format!("ys {ys:e} yy {yy} full {full}");
        assert_eq!(
            got[Words::act(3) as usize],
            f32::from(u8::from(joins)),
            "{what}"
        );
        let first = if full && joins { 0.0 } else { 1.0 };
        assert_eq!(got[Words::act(0) as usize], first, "{what}");
        close(got[Words::rho(3) as usize], ro, &what);
        close(got[Words::H_DIAG as usize], hd, &what);
    }
    assert!(
        !twin::lbfgs_admit(1e-10, 1.0, 1.0).0,
        "1e-10 itself does not join"
    );
    let reset = Admit {
        ys: NONE,
        yy: NONE,
        h_diag: Words::H_DIAG,
        rho: NONE,
        act: NONE,
        first_act: NONE,
        reset: 1,
        _pad: 0,
    };
    rig.run(|p, v| rec::admit(p, v, reset));
    assert_eq!(rig.words()[Words::H_DIAG as usize], 1.0);
}

/// Five pairs, the second gated out: the chain of links against cpu::lbfgs::two_loop over
/// the four others, with g . d and max |d|.
fn two_loop_matches_its_cpu_twin() {
    let n = 256 * 5 + 64;
    let mut rig = Rig::new(n);
    let g = random(n, 10);
    let pairs: Vec<(Vec<f32>, Vec<f32>, f32)> = (0..5u64)
        .map(|i| (random(n, 20 + i), random(n, 30 + i), 0.01 * (i + 1) as f32))
        .collect();
    let mut init = vec![0f32; Words::len(8) as usize];
    init[Words::H_DIAG as usize] = 0.7;
    for (slot, p) in pairs.iter().enumerate() {
        init[Words::rho(slot as u32) as usize] = p.2;
        init[Words::act(slot as u32) as usize] = if slot == 1 { 0.0 } else { 1.0 };
    }
    rig.ctx.write(&rig.sc, 0, bytemuck::cast_slice(&init));
    let bufs: Vec<(wgpu::Buffer, wgpu::Buffer)> = pairs
        .iter()
        .map(|p| (rig.upload(&p.0), rig.upload(&p.1)))
        .collect();
    let (gb, q) = (rig.upload(&g), rig.upload(&vec![f32::NAN; n]));
    let list: Vec<rec::Slotted> = bufs
        .iter()
        .enumerate()
        .map(|(i, b)| (&b.0, &b.1, i as u32))
        .collect();
    let out = (Words::RING, Words::RING + 1);
    rig.run(|p, v| rec::two_loop(p, v, (&q, &gb), &list, out));
    let d = rig.read(&q, n);
    let kept: Vec<(&[f32], &[f32], f32)> = pairs
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, p)| (&p.0[..], &p.1[..], p.2))
        .collect();
    let want = twin::two_loop(&kept, 0.7, &g);
    let rel = crate::common::rel_l2(&d, &want);
    eprintln!("two-loop over 4 of 5 pairs: {rel:.2e} rel. L2 from the CPU twin");
    assert!(rel < 1e-6, "{rel:e}");
    let words = rig.words();
    close(words[out.0 as usize], twin::dot(&g, &want), "g.d");
    close(words[out.1 as usize], twin::abs_max(&want), "max |d|");
}
