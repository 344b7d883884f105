//! The GPU's matmul strategies by name (`--matmul-kernel`, the `matmul_kernel` key): here,
//! outside `gpu`, so that `config` can check the key without knowing the GPU. The kernels
//! of each strategy are `gpu::kernels`'.

/// How the matrix products are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Workgroup-memory tiling: what real GPUs like.
    Tiled,
    /// Big register blocks, no workgroup memory, one operand at uniform addresses: what
    /// CPU-like SIMD adapters (lavapipe) like.
    Register,
    /// The register strategy with Z1 and dW1 from shaders/matmul_sg.wgsl: images and W1 in
    /// textures, the shared operand fetched once per 8-lane subgroup and broadcast. Needs
    /// subgroups of exactly 8 lanes (lavapipe on AVX2 CPUs).
    Texture,
    /// The texture strategy (register where there are no 8-lane subgroups) with Z1 of the
    /// full passes (train step, eval pass) from `block_z1` of shaders/block_z1.wgsl:
    /// 16 x 16 register blocks skipping 4-pixel words zero in all 16 images of a block.
    Sparse,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Tiled,
        Strategy::Register,
        Strategy::Texture,
        Strategy::Sparse,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Tiled => "tiled",
            Strategy::Register => "register",
            Strategy::Texture => "texture",
            Strategy::Sparse => "sparse",
        }
    }
}

crate::names::named!(Strategy, &Strategy::ALL, "matmul kernel");
