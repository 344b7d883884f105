//! The model: 784 -> 128 (ReLU) -> 10 MLP, parameters laid out as one flat f32 vector.
//!
//! All four tensors live in one vector so an optimizer step is one pass (one GPU dispatch)
//! over all weights. Each tensor starts at a multiple of [`ALIGN`] floats (256 bytes), so a GPU
//! can bind any tensor at its offset; the padding stays zero (its gradient is zero, so no
//! optimizer ever moves it). Names and layouts are PyTorch's (`fc1.weight` is [out, in],
//! row-major), so checkpoints load into `nn.Linear` modules unchanged.

use crate::rng::Rng;

/// Tensor offsets are multiples of this many floats (256 bytes: wgpu's storage offset alignment).
pub const ALIGN: usize = 64;

/// Sizes of the network and where each tensor sits in the flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub inputs: usize,
    pub hidden: usize,
    pub classes: usize,
}

/// One named tensor of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: &'static str,
    /// PyTorch shape: [out, in] for weights, [out] for biases.
    pub shape: [usize; 2],
    pub rank: usize,
    pub offset: usize,
    /// `fan_in` of the layer, which sets the init bound 1/sqrt(fan_in).
    pub fan_in: usize,
}

impl TensorInfo {
    pub fn len(&self) -> usize {
        self.shape[..self.rank].iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
    pub fn dims(&self) -> &[usize] {
        &self.shape[..self.rank]
    }
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

impl Layout {
    /// The report's network: 784 -> 128 -> 10.
    pub const MNIST: Layout = Layout {
        inputs: 784,
        hidden: 128,
        classes: 10,
    };

    /// The four tensors in order: fc1.weight, fc1.bias, fc2.weight, fc2.bias.
    pub fn tensors(&self) -> [TensorInfo; 4] {
        let (i, h, c) = (self.inputs, self.hidden, self.classes);
        let w1 = 0;
        let b1 = w1 + align(h * i);
        let w2 = b1 + align(h);
        let b2 = w2 + align(c * h);
        [
            TensorInfo {
                name: "fc1.weight",
                shape: [h, i],
                rank: 2,
                offset: w1,
                fan_in: i,
            },
            TensorInfo {
                name: "fc1.bias",
                shape: [h, 0],
                rank: 1,
                offset: b1,
                fan_in: i,
            },
            TensorInfo {
                name: "fc2.weight",
                shape: [c, h],
                rank: 2,
                offset: w2,
                fan_in: h,
            },
            TensorInfo {
                name: "fc2.bias",
                shape: [c, 0],
                rank: 1,
                offset: b2,
                fan_in: h,
            },
        ]
    }

    /// Length of the flat vector, padding included.
    pub fn total(&self) -> usize {
        let t = self.tensors()[3];
        align(t.offset + t.len())
    }

    /// Number of real (trainable) parameters.
    pub fn count(&self) -> usize {
        self.tensors().iter().map(TensorInfo::len).sum()
    }
}

/// The parameters of a model: a flat vector in the order of [`Layout::tensors`].
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub layout: Layout,
    pub data: Vec<f32>,
}

impl Params {
    pub fn zeros(layout: Layout) -> Params {
        Params {
            layout,
            data: vec![0.0; layout.total()],
        }
    }

    /// PyTorch `nn.Linear`'s default init: weights and biases U(-b, b), b = 1/sqrt(fan_in),
    /// drawn from a seeded portable generator (same values on every machine).
    pub fn init(layout: Layout, seed: u64) -> Params {
        let mut p = Params::zeros(layout);
        let mut rng = Rng::new(seed);
        for t in layout.tensors() {
            let bound = 1.0 / (t.fan_in as f32).sqrt();
            for v in &mut p.data[t.range()] {
                *v = rng.uniform(-bound, bound);
            }
        }
        p
    }

    /// The slice of one tensor (0 = fc1.weight, 1 = fc1.bias, 2 = fc2.weight, 3 = fc2.bias).
    pub fn tensor(&self, index: usize) -> &[f32] {
        &self.data[self.layout.tensors()[index].range()]
    }

    pub fn w1(&self) -> &[f32] {
        self.tensor(0)
    }
    pub fn b1(&self) -> &[f32] {
        self.tensor(1)
    }
    pub fn w2(&self) -> &[f32] {
        self.tensor(2)
    }
    pub fn b2(&self) -> &[f32] {
        self.tensor(3)
    }
}
