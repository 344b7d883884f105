//! A pair of sets that many CPU backends train on, one after another or at once (a sweep's
//! trials): the f32 copies of the images and the first layer's sparse copies are made by the
//! first backend that needs them and shared by the rest, instead of normalizing 50,000
//! images for every trial. Each backend computes exactly as one built alone on the sets.

use std::sync::{Arc, Mutex, OnceLock};

use super::backend::{CpuBackend, CpuSets};
use super::fused::{CpuMatmul, SparseSets};
use crate::backend::RunStart;
use crate::data::Dataset;

pub struct SharedSets {
    pub train: Dataset,
    pub eval: Dataset,
    dense: OnceLock<Arc<CpuSets>>,
    /// The sparse copies, by the strategy asked for (its rule may leave them dense).
    sparse: Mutex<Vec<(CpuMatmul, Arc<SparseSets>)>>,
}

impl SharedSets {
    pub fn new(train: Dataset, eval: Dataset) -> SharedSets {
        SharedSets {
            train,
            eval,
            dense: OnceLock::new(),
            sparse: Mutex::new(Vec::new()),
        }
    }

    /// A CPU backend on these sets from `start`, with the first layer's strategy `choice`:
    /// what `CpuBackend::with_state(train, eval, start).with_matmul(choice)` builds.
    pub fn backend(&self, start: RunStart, choice: CpuMatmul) -> CpuBackend {
        let dense = self
            .dense
            .get_or_init(|| Arc::new(CpuSets::new(&self.train, &self.eval)))
            .clone();
        let sparse = {
            let mut made = self.sparse.lock().unwrap_or_else(|e| e.into_inner());
            match made.iter().find(|(c, _)| *c == choice) {
                Some((_, s)) => s.clone(),
                None => {
                    let s = Arc::new(dense.sparse(choice, &start.params));
                    made.push((choice, s.clone()));
                    s
                }
            }
        };
        CpuBackend::on_sets(dense, sparse, start)
    }
}
