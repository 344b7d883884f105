//! The checks a saved L-BFGS state passes before a resume runs from it: every field must
//! be one that [`super::lbfgs::run`] can leave after `steps` steps with the run's settings.
//! Vectors are finite and of the network's length, the counts lie within what the steps
//! could make, the history holds at most `history_size` pairs, and each pair's rho and the
//! scale H_diag match the pair they were computed from. A field that fails is named (its
//! tensor or metadata key), so an edited or damaged state is refused instead of steering
//! the run somewhere an uninterrupted run would not go.

use anyhow::{bail, Result};

use super::lbfgs::{abs_sum, dot, LineSearch, Settings, State};

/// How far a recomputed dot product may stray from the saved one, relative to the sum of
/// its terms' magnitudes: the GPU sums in the CPU's order but may round an element
/// differently (about 1e-6 relative, `verify`); an edit moves it further.
const DOT_TOLERANCE: f64 = 1e-3;

/// The largest rho a pair can have: a pair is kept only when y . s > 1e-10 (in f32).
fn max_ro() -> f32 {
    1.0 / 1e-10f32
}

impl State {
    /// Checks this state as one saved after `steps` steps of `s` on a network of `len`
    /// parameters; the error names the tensor or metadata key at fault.
    pub fn check(&self, s: &Settings, len: usize, steps: u64) -> Result<()> {
        self.check_vectors(len)?;
        self.check_counts(s, steps)?;
        if self.n_iter == 0 {
            return self.check_before_any_iteration();
        }
        self.check_history_size(s)?;
        for (name, v) in [
            ("lbfgs.d", &self.d),
            ("lbfgs.prev_flat_grad", &self.prev_flat_grad),
        ] {
            if v.is_empty() {
                bail!(
                    "tensor `{name}` is empty, but metadata `lbfgs_n_iter` is {} (an iteration has run and left it)",
                    self.n_iter
                );
            }
        }
        self.check_pairs()?;
        self.check_scalars(s)
    }

    /// Every vector finite; the direction and last gradient empty (no iteration yet) or
    /// of `len` values; each history vector of `len` values.
    fn check_vectors(&self, len: usize) -> Result<()> {
        let pairs = self.old_dirs.iter().zip(&self.old_stps).enumerate();
        let history = pairs.flat_map(|(i, (y, s))| {
            [
                (format!("lbfgs.y.{i}"), &y[..]),
                (format!("lbfgs.s.{i}"), &s[..]),
            ]
        });
        let vectors = [
            ("lbfgs.d".to_string(), &self.d[..]),
            ("lbfgs.prev_flat_grad".to_string(), &self.prev_flat_grad[..]),
        ];
        for (k, (name, v)) in vectors.into_iter().chain(history).enumerate() {
            if v.len() != len && !(k < 2 && v.is_empty()) {
                bail!(
                    "tensor `{name}` has {} values; L-BFGS keeps it as {len} (one per parameter)",
                    v.len()
                );
            }
            if let Some((i, x)) = v.iter().enumerate().find(|(_, x)| !x.is_finite()) {
                bail!("tensor `{name}` holds a non-finite value ({x}) at index {i}");
            }
        }
        if self.old_dirs.len() != self.old_stps.len() || self.ro.len() != self.old_dirs.len() {
            bail!(
                "metadata `lbfgs_pairs`: {} y, {} s and {} rho values do not make pairs",
                self.old_dirs.len(),
                self.old_stps.len(),
                self.ro.len()
            );
        }
        Ok(())
    }

    /// Iterations, pairs and evaluations within what `steps` steps of `s` can make.
    fn check_counts(&self, s: &Settings, steps: u64) -> Result<()> {
        let max_iter = steps.saturating_mul(s.max_iter as u64);
        if self.n_iter > max_iter {
            bail!(
                "metadata `lbfgs_n_iter` is {}, more than the {max_iter} iterations {steps} steps of at most max_iter {} make",
                self.n_iter,
                s.max_iter
            );
        }
        // Each step evaluates once, then at most max_eval + 1 times per iteration (a
        // line search may pass max_eval by one; torch checks it after the search).
        let per_step = 1 + s.max_iter as u64 * (s.max_eval as u64 + 2);
        let (lo, hi) = (steps, steps.saturating_mul(per_step));
        if !(lo..=hi).contains(&self.func_evals) {
            bail!(
                "metadata `lbfgs_func_evals` is {}, outside the {lo}..={hi} evaluations {steps} steps make",
                self.func_evals
            );
        }
        Ok(())
    }

    /// At most `history_size` pairs, and no more than the iterations since the first
    /// (which clears the history) could add, one each.
    fn check_history_size(&self, s: &Settings) -> Result<()> {
        let pairs = self.old_dirs.len();
        if pairs > s.history_size as usize {
            bail!(
                "metadata `lbfgs_pairs` is {pairs}, more than history_size {}",
                s.history_size
            );
        }
        if pairs as u64 > self.n_iter - 1 {
            bail!(
                "metadata `lbfgs_pairs` is {pairs}, but {} iterations (metadata `lbfgs_n_iter`) add at most {}",
                self.n_iter,
                self.n_iter - 1
            );
        }
        Ok(())
    }

    /// No iteration has run (each step so far stopped at its first gradient): nothing
    /// but the evaluation count has left its start.
    fn check_before_any_iteration(&self) -> Result<()> {
        for (name, v) in [
            ("lbfgs.d", &self.d),
            ("lbfgs.prev_flat_grad", &self.prev_flat_grad),
        ] {
            if !v.is_empty() {
                bail!(
                    "metadata `lbfgs_n_iter` is 0 (no iteration has run), but tensor `{name}` holds one's vector"
                );
            }
        }
        if !self.old_dirs.is_empty() {
            bail!(
                "metadata `lbfgs_n_iter` is 0 (no iteration has run), but metadata `lbfgs_pairs` is {}",
                self.old_dirs.len()
            );
        }
        let scalars = [
            ("lbfgs_t", self.t),
            ("lbfgs_h_diag", self.h_diag as f64),
            ("lbfgs_prev_loss", self.prev_loss),
        ];
        if let Some((key, x)) = scalars.iter().find(|(_, x)| x.to_bits() != 0) {
            bail!("metadata `{key}` is {x} but no iteration has run (metadata `lbfgs_n_iter` 0); it must be 0");
        }
        Ok(())
    }

    /// Each pair's rho is 1 / (y . s) in (0, 1e10]; H_diag is (y . s) / (y . y) of the
    /// newest pair, or 1 with none.
    fn check_pairs(&self) -> Result<()> {
        for (i, (y, s)) in self.old_dirs.iter().zip(&self.old_stps).enumerate() {
            let ro = self.ro[i];
            if !(ro > 0.0 && ro <= max_ro()) {
                bail!(
                    "tensor `lbfgs.ro` holds {ro} at index {i}; a pair is kept only with rho = 1/(y.s) in (0, 1e10]"
                );
            }
            let (ys, scale) = (dot(y, s) as f64, abs_dot(y, s));
            if (1.0 / ro as f64 - ys).abs() > DOT_TOLERANCE * scale {
                bail!(
                    "tensor `lbfgs.ro` holds {ro} at index {i}, but 1/(y.s) of tensors `lbfgs.y.{i}` and `lbfgs.s.{i}` is {}",
                    1.0 / ys
                );
            }
        }
        let h = self.h_diag;
        match (self.old_dirs.last(), self.old_stps.last()) {
            (Some(y), Some(s)) => {
                let (ys, yy) = (dot(y, s) as f64, dot(y, y) as f64);
                let off = (h as f64 * yy - ys).abs();
                if !(h.is_finite() && h > 0.0) || off > DOT_TOLERANCE * abs_dot(y, s) {
                    bail!(
                        "metadata `lbfgs_h_diag` is {h}, but (y.s)/(y.y) of the newest pair (`lbfgs.y.{0}`, `lbfgs.s.{0}`) is {1}",
                        self.old_dirs.len() - 1,
                        ys / yy
                    );
                }
            }
            _ if h != 1.0 => bail!("metadata `lbfgs_h_diag` is {h}; with no pairs it is 1"),
            _ => {}
        }
        Ok(())
    }

    /// The step length and the loss of the last iteration.
    fn check_scalars(&self, s: &Settings) -> Result<()> {
        let t = self.t;
        if !(t.is_finite() && t >= 0.0) {
            bail!("metadata `lbfgs_t` is {t}; a step length is finite and >= 0");
        }
        if s.line_search == LineSearch::None {
            // The first iteration steps min(1, 1/|g|_1) * lr (g its gradient, saved as
            // prev_flat_grad), every later one lr.
            let (want, what) = if self.n_iter == 1 {
                let first = (1f32 / abs_sum(&self.prev_flat_grad)).min(1.0);
                (
                    first as f64 * s.lr as f64,
                    "min(1, 1/|g|_1) * learning_rate",
                )
            } else {
                (s.lr as f64, "learning_rate")
            };
            if (t - want).abs() > 1e-5 * want.abs() {
                bail!(
                    "metadata `lbfgs_t` is {t}, but with line_search none the last iteration's step is {what} ({want})"
                );
            }
        }
        // The first iteration's direction is -g, which no line search changes.
        if self.n_iter == 1
            && self
                .d
                .iter()
                .zip(&self.prev_flat_grad)
                .any(|(d, g)| *d != -g)
        {
            bail!(
                "tensor `lbfgs.d` is not -`lbfgs.prev_flat_grad`, as the first iteration leaves it"
            );
        }
        // A loss of the f32 objective, as f64.
        let p = self.prev_loss;
        if p.is_nan() || p < 0.0 || p as f32 as f64 != p {
            bail!(
                "metadata `lbfgs_prev_loss` is {p}, not a loss the objective returns (an f32 >= 0)"
            );
        }
        Ok(())
    }
}

/// Sum of |a_i b_i| in f64: the scale a dot product's rounding is measured against.
fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 * *y as f64).abs())
        .sum()
}
