//! A fingerprint of an optimizer state as saved, stored beside it (metadata `state`), so a
//! resume refuses a state edited or damaged even within the ranges its checks allow.

use super::OptimState;

/// FNV-1a over 32-bit words: each step is a bijection of the running value, so a change
/// of any one word always changes the fingerprint.
struct Fnv(u64);

impl Fnv {
    fn word(&mut self, w: u32) {
        self.0 = (self.0 ^ w as u64).wrapping_mul(0x0100_0000_01b3);
    }
    fn u64(&mut self, x: u64) {
        self.word(x as u32);
        self.word((x >> 32) as u32);
    }
    fn floats(&mut self, v: &[f32]) {
        self.u64(v.len() as u64);
        for x in v {
            self.word(x.to_bits());
        }
    }
}

impl OptimState {
    /// The fingerprint of this state saved at `epoch`, over what the file holds: the slots
    /// named in `names` (the optimizer's: "" for a slot it leaves alone, which is not
    /// saved), the previous loss, the step count, the epoch, and L-BFGS's vectors and
    /// scalars.
    pub fn fingerprint(&self, names: [&str; 3], epoch: usize) -> String {
        let mut h = Fnv(0xcbf2_9ce4_8422_2325);
        let slots = [&self.step, &self.prev_grad, &self.prev_change];
        for (i, (name, v)) in names.iter().zip(slots).enumerate() {
            if !name.is_empty() {
                h.u64(i as u64);
                h.floats(v);
            }
        }
        h.word(self.prev_loss.to_bits());
        h.u64(self.t);
        h.u64(epoch as u64);
        if let Some(l) = &self.lbfgs {
            h.floats(&l.d);
            h.floats(&l.prev_flat_grad);
            for x in [l.t.to_bits(), l.prev_loss.to_bits(), l.n_iter, l.func_evals] {
                h.u64(x);
            }
            h.word(l.h_diag.to_bits());
            h.floats(&l.ro);
            for (y, s) in l.old_dirs.iter().zip(&l.old_stps) {
                h.floats(y);
                h.floats(s);
            }
        }
        format!("{:016x}", h.0)
    }
}
