//! The CPU backend: holds the sets, the parameters and the optimizer state, and runs each
//! step through the fused pass ([`super::fused`]) and the reference optimizer.

use std::sync::Arc;

use anyhow::Result;

use super::fused::{self, CpuMatmul, Input, SparseSets};
use super::lbfgs::cpu_step;
use super::reference::{normalize_images, optimizer, Workspace};
use crate::backend::{Backend, Batch, EpochStats, PassStats, RunStart};
use crate::data::Dataset;
use crate::model::{Layout, Params};
use crate::optim::lbfgs;
use crate::optim::{Hyper, OptimState, Variant};
use crate::telemetry::{self, Counts, LayerTelemetry};

/// One optimizer step on the batch `x`, `y`: forward, loss, gradient, update. Returns the
/// batch's stats at the weights before the update.
fn train_on(
    params: &mut Params,
    state: &mut OptimState,
    ws: &mut Workspace,
    (variant, hyper): (Variant, &Hyper),
    x: Input,
    y: &[u8],
    tele: Option<&mut [Counts]>,
) -> PassStats {
    // Batches of another size (the last mini-batch, or full batch after mini-batches).
    if ws.n != y.len() {
        *ws = Workspace::new(params.layout, y.len());
    }
    // forward + backward, fused (same math; see cpu/fused.rs).
    let stats = fused::train_pass(params, x, y, ws);
    if let Some(counts) = tele {
        let loss_up = stats.loss > state.prev_loss;
        let bufs = (&params.data[..], &ws.grads[..], &state.prev_grad[..]);
        telemetry::signs(params.layout, variant, hyper, loss_up, bufs, counts);
    }
    optimizer(
        variant,
        hyper,
        &mut params.data,
        &ws.grads,
        state,
        stats.loss,
    );
    stats
}

/// The CPU backend: the reference forward/backward and the optimizer rules, on the host.
pub struct CpuBackend {
    pub variant: Variant,
    pub hyper: Hyper,
    pub params: Params,
    pub state: OptimState,
    /// The sets as the passes read them (shared by backends over the same sets).
    sets: Arc<CpuSets>,
    /// Intermediates of the last training step (read by `verify`).
    pub train_ws: Workspace,
    eval_ws: Workspace,
    /// The epoch's train stats so far: sample-weighted loss sum, correct, samples.
    acc: (f64, u32, u32),
    /// The parameters kept by [`Backend::keep_best`].
    best: Option<Params>,
    /// The first layer's matmul strategy (sparse copies of the sets when it is on).
    sparse: Arc<SparseSets>,
    /// The epoch's telemetry counts so far (Rprop only), one per layer.
    tele: Vec<Counts>,
    /// Telemetry rows of the epochs ended since the last [`Backend::take_telemetry`].
    tele_rows: Vec<Vec<LayerTelemetry>>,
    /// L-BFGS's settings, when it is the optimizer (its steps make several passes; its
    /// history is `state.lbfgs`).
    pub lbfgs: Option<lbfgs::Settings>,
    /// Forward+backward passes over the train set since the epoch began.
    evals: u32,
}

/// The train and eval sets as the CPU passes read them: the images normalized once to f32
/// (what a GEMM needs), and the labels.
#[derive(Debug, Default)]
pub struct CpuSets {
    pub train_x: Vec<f32>,
    pub train_y: Vec<u8>,
    pub eval_x: Vec<f32>,
    pub eval_y: Vec<u8>,
}

impl CpuSets {
    pub fn new(train: &Dataset, eval: &Dataset) -> CpuSets {
        CpuSets {
            train_x: normalize_images(train),
            train_y: train.labels.clone(),
            eval_x: normalize_images(eval),
            eval_y: eval.labels.clone(),
        }
    }

    /// The first layer's strategy `choice` applied to these sets (its sparse copies when on).
    pub fn sparse(&self, choice: CpuMatmul, p: &Params) -> SparseSets {
        let train = (&self.train_x[..], &self.train_y[..]);
        SparseSets::choose(choice, p, train, &self.eval_x)
    }
}

impl CpuBackend {
    /// Normalizes both sets once (the f32 copy is what a GEMM needs) and starts a fresh
    /// optimizer state.
    pub fn new(
        train: &Dataset,
        eval: &Dataset,
        params: Params,
        variant: Variant,
        hyper: Hyper,
    ) -> CpuBackend {
        CpuBackend::with_state(train, eval, RunStart::fresh(params, variant, hyper))
    }

    /// Like [`CpuBackend::new`] but from `start` (a saved optimizer state, say).
    pub fn with_state(train: &Dataset, eval: &Dataset, start: RunStart) -> CpuBackend {
        let sets = Arc::new(CpuSets::new(train, eval));
        CpuBackend::on_sets(sets, Arc::default(), start)
    }

    /// A backend over sets already normalized (and their sparse copies, when the sparse
    /// strategy is on), from `start`: what [`super::SharedSets`] builds its backends with.
    pub fn on_sets(sets: Arc<CpuSets>, sparse: Arc<SparseSets>, start: RunStart) -> CpuBackend {
        let (layout, variant, hyper) = (start.params.layout, start.variant, start.hyper);
        CpuBackend {
            variant,
            hyper,
            state: start.state,
            train_ws: Workspace::new(layout, sets.train_y.len()),
            eval_ws: Workspace::new(layout, sets.eval_y.len()),
            sets,
            acc: (0.0, 0, 0),
            best: None,
            sparse,
            tele: fresh_counts(variant, layout),
            tele_rows: Vec::new(),
            lbfgs: lbfgs_settings(variant, &hyper),
            evals: 0,
            params: start.params,
        }
    }

    /// Computes the first layer's products as `choice` says (dense by default; mini-batch
    /// steps always run dense).
    pub fn with_matmul(mut self, choice: CpuMatmul) -> CpuBackend {
        self.sparse = Arc::new(self.sets.sparse(choice, &self.params));
        self
    }

    /// One step on the train rows `idx`, gathered in that order.
    fn step_rows(&mut self, idx: &[u32]) -> PassStats {
        let f = self.params.layout.inputs;
        let mut x = Vec::with_capacity(idx.len() * f);
        for &i in idx {
            let i = i as usize;
            x.extend_from_slice(&self.sets.train_x[i * f..(i + 1) * f]);
        }
        let y: Vec<u8> = idx.iter().map(|&i| self.sets.train_y[i as usize]).collect();
        train_on(
            &mut self.params,
            &mut self.state,
            &mut self.train_ws,
            (self.variant, &self.hyper),
            Input::dense(&x),
            &y,
            self.variant.is_sign_based().then_some(&mut self.tele[..]),
        )
    }

    /// One full-batch step: forward, loss, gradient, optimizer update. Returns the train
    /// pass's stats (at the weights before the update).
    pub fn step(&mut self) -> PassStats {
        let x = Input {
            x: &self.sets.train_x,
            sparse: self.sparse.train.as_ref(),
        };
        if let Some(cfg) = &self.lbfgs {
            self.state.t += 1;
            let st = self.state.lbfgs.get_or_insert_with(Default::default);
            let data = (x, &self.sets.train_y[..]);
            let (first, n) = cpu_step(cfg, st, &mut self.params, data, &mut self.train_ws);
            self.evals += n - 1; // train_step counted one
            return first;
        }
        train_on(
            &mut self.params,
            &mut self.state,
            &mut self.train_ws,
            (self.variant, &self.hyper),
            x,
            &self.sets.train_y,
            self.variant.is_sign_based().then_some(&mut self.tele[..]),
        )
    }

    /// Loss and accuracy on the eval set with the current weights.
    pub fn eval(&mut self) -> PassStats {
        let x = Input {
            x: &self.sets.eval_x,
            sparse: self.sparse.eval.as_ref(),
        };
        fused::eval_pass(&self.params, x, &self.sets.eval_y, &mut self.eval_ws)
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        match self.sparse.note.as_str() {
            "" => format!("cpu ({} threads)", rayon_threads()),
            note => format!("cpu ({note}, {} threads)", rayon_threads()),
        }
    }
    fn settings(&self) -> crate::config::RunSettings {
        let matmul = if self.sparse.train.is_some() {
            "sparse"
        } else {
            "dense"
        };
        crate::config::RunSettings {
            backend: Some("cpu".into()),
            cpu_matmul: Some(matmul.into()),
            ..Default::default()
        }
    }
    fn train_len(&self) -> usize {
        self.sets.train_y.len()
    }
    fn train_step(&mut self, batch: Batch) -> Result<()> {
        self.evals += 1;
        let s = match batch {
            Batch::Full => self.step(),
            Batch::Rows(_) if self.lbfgs.is_some() => anyhow::bail!("lbfgs is full-batch only"),
            Batch::Rows(idx) => {
                let n = self.sets.train_y.len();
                anyhow::ensure!(
                    idx.iter().all(|&i| (i as usize) < n),
                    "batch row out of the train set ({n} rows)"
                );
                self.step_rows(idx)
            }
        };
        // Batch losses weighted by their sizes, as the report's train loop gathers them.
        self.acc.0 += s.loss as f64 * s.samples as f64;
        self.acc.1 += s.correct;
        self.acc.2 += s.samples;
        Ok(())
    }
    fn end_epoch(&mut self) -> Result<EpochStats> {
        let (sum, correct, samples) = std::mem::take(&mut self.acc);
        let train = PassStats {
            loss: (sum / samples.max(1) as f64) as f32,
            correct,
            samples,
        };
        let eval = self.eval();
        if self.variant.is_sign_based() {
            let (layout, h) = (self.params.layout, &self.hyper);
            telemetry::steps(layout, h, &self.state.step, &mut self.tele);
            self.tele_rows
                .push(self.tele.iter().map(|c| c.finish(h)).collect());
            self.tele = fresh_counts(self.variant, layout);
        }
        Ok(EpochStats {
            train,
            eval,
            grad_evals: std::mem::take(&mut self.evals),
        })
    }
    fn keep_best(&mut self) -> Result<()> {
        match &mut self.best {
            Some(b) => b.data.copy_from_slice(&self.params.data),
            None => self.best = Some(self.params.clone()),
        }
        Ok(())
    }
    fn best_params(&mut self) -> Result<Params> {
        self.best
            .clone()
            .ok_or_else(|| anyhow::anyhow!("no best parameters kept yet"))
    }
    fn params(&mut self) -> Result<Params> {
        Ok(self.params.clone())
    }
    fn state(&mut self) -> Result<OptimState> {
        Ok(self.state.clone())
    }
    fn restart(&mut self, start: RunStart) -> Result<()> {
        start.check_layout(self.params.layout)?;
        let (variant, hyper) = (start.variant, start.hyper);
        (self.params, self.state) = (start.params, start.state);
        (self.variant, self.hyper) = (variant, hyper);
        (self.acc, self.best, self.evals) = ((0.0, 0, 0), None, 0);
        self.lbfgs = lbfgs_settings(variant, &hyper);
        (self.tele, self.tele_rows) = (fresh_counts(variant, self.params.layout), Vec::new());
        Ok(())
    }
    fn take_telemetry(&mut self) -> Result<Vec<Vec<LayerTelemetry>>> {
        Ok(std::mem::take(&mut self.tele_rows))
    }
}

/// L-BFGS's settings when it is the optimizer.
fn lbfgs_settings(variant: Variant, hyper: &Hyper) -> Option<lbfgs::Settings> {
    variant
        .is_multi_eval()
        .then(|| lbfgs::Settings::from_hyper(hyper))
}

/// Zeroed telemetry counts, one per layer (none for an optimizer that is not Rprop).
fn fresh_counts(variant: Variant, layout: Layout) -> Vec<Counts> {
    if variant.is_sign_based() {
        vec![Counts::default(); layout.depth()]
    } else {
        Vec::new()
    }
}

/// The threads of the rayon pool the backend runs in (a sweep gives each trial a pool of
/// its own; the results do not depend on it, see `cpu::fused`).
fn rayon_threads() -> usize {
    rayon::current_num_threads()
}
