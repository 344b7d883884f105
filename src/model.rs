//! The model: an MLP, by default the report's 784 -> 128 (ReLU) -> 10, with up to
//! [`MAX_HIDDEN`] hidden ReLU layers; parameters laid out as one flat f32 vector.
//!
//! All tensors live in one vector so an optimizer step is one pass (one GPU dispatch)
//! over all weights. Each tensor starts at a multiple of [`ALIGN`] floats (256 bytes), so a GPU
//! can bind any tensor at its offset; the padding stays zero (its gradient is zero, so no
//! optimizer ever moves it). Names and layouts are PyTorch's (`fc1.weight` is [out, in],
//! row-major), so checkpoints load into `nn.Linear` modules unchanged.

use crate::rng::Rng;

/// Tensor offsets are multiples of this many floats (256 bytes: wgpu's storage offset alignment).
pub const ALIGN: usize = 64;

/// Most hidden layers a model may have.
pub const MAX_HIDDEN: usize = 4;

/// PyTorch's names of the layers' tensors: `fc1.weight`, `fc1.bias`, `fc2.weight`, ...
const NAMES: [[&str; 2]; MAX_HIDDEN + 1] = [
    ["fc1.weight", "fc1.bias"],
    ["fc2.weight", "fc2.bias"],
    ["fc3.weight", "fc3.bias"],
    ["fc4.weight", "fc4.bias"],
    ["fc5.weight", "fc5.bias"],
];

/// Sizes of the network and where each tensor sits in the flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub inputs: usize,
    /// The first hidden layer (the only one of the report's network).
    pub hidden: usize,
    pub classes: usize,
    /// The hidden layers after the first, in order; zeros after the last one.
    pub deeper: [usize; MAX_HIDDEN - 1],
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
    pub const MNIST: Layout = Layout::new(784, 128, 10);

    /// One hidden layer: inputs -> hidden (ReLU) -> classes.
    pub const fn new(inputs: usize, hidden: usize, classes: usize) -> Layout {
        Layout {
            inputs,
            hidden,
            classes,
            deeper: [0; MAX_HIDDEN - 1],
        }
    }

    /// Any number (1..=[`MAX_HIDDEN`]) of hidden layers; None for a list out of range or
    /// holding a zero.
    pub fn with_hidden(inputs: usize, hidden: &[usize], classes: usize) -> Option<Layout> {
        if hidden.is_empty() || hidden.len() > MAX_HIDDEN || hidden.contains(&0) {
            return None;
        }
        let mut l = Layout::new(inputs, hidden[0], classes);
        l.deeper[..hidden.len() - 1].copy_from_slice(&hidden[1..]);
        Some(l)
    }

    /// The hidden layer sizes, in order.
    pub fn hidden_sizes(&self) -> Vec<usize> {
        std::iter::once(self.hidden)
            .chain(self.deeper.iter().copied().take_while(|&h| h > 0))
            .collect()
    }

    /// Number of linear layers (hidden layers + the output layer).
    pub fn depth(&self) -> usize {
        self.hidden_sizes().len() + 1
    }

    /// (fan_in, fan_out) of each linear layer, input first.
    pub fn layer_sizes(&self) -> Vec<(usize, usize)> {
        let mut sizes = vec![self.inputs];
        sizes.extend(self.hidden_sizes());
        sizes.push(self.classes);
        sizes.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// The tensors in order: fc1.weight, fc1.bias, fc2.weight, fc2.bias, ... (for the report's
    /// network, fc2 is the output layer).
    pub fn tensors(&self) -> Vec<TensorInfo> {
        let mut offset = 0;
        let mut out = Vec::with_capacity(2 * self.depth());
        for (k, (fan_in, fan_out)) in self.layer_sizes().into_iter().enumerate() {
            for (j, (shape, rank)) in [([fan_out, fan_in], 2), ([fan_out, 0], 1)]
                .into_iter()
                .enumerate()
            {
                let t = TensorInfo {
                    name: NAMES[k][j],
                    shape,
                    rank,
                    offset,
                    fan_in,
                };
                offset += align(t.len());
                out.push(t);
            }
        }
        out
    }

    /// Length of the flat vector, padding included.
    pub fn total(&self) -> usize {
        self.tensors()
            .last()
            .map_or(0, |t| align(t.offset + t.len()))
    }

    /// Number of real (trainable) parameters.
    pub fn count(&self) -> usize {
        self.tensors().iter().map(TensorInfo::len).sum()
    }

    /// "784-128-10".
    pub fn describe(&self) -> String {
        let mut v = vec![self.inputs];
        v.extend(self.hidden_sizes());
        v.push(self.classes);
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("-")
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

    /// The slice of one tensor (0 = fc1.weight, 1 = fc1.bias, 2 = fc2.weight, ...).
    pub fn tensor(&self, index: usize) -> &[f32] {
        &self.data[self.layout.tensors()[index].range()]
    }

    /// Weight and bias of linear layer `k` (0-based).
    pub fn layer(&self, k: usize) -> (&[f32], &[f32]) {
        (self.tensor(2 * k), self.tensor(2 * k + 1))
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
