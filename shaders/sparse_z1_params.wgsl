// sparse_z1_params.wgsl: `struct SparseZ1`, the parameters of the first layer's sparse
// kernels (block_z1.wgsl, and the probes of sparse_first.wgsl), declared once. WGSL has no
// include: the host prepends this file to each of those sources (gpu::kernels::BLOCK_Z1_WGSL,
// gpu::ops::sparse_probes::SPARSE_FIRST_WGSL). Twin: gpu::ops::sparse_z1::SparseZ1.

struct SparseZ1 {
    rows: u32,
    hidden: u32, // multiple of 16
    scale: f32,  // a = 2/255
    kw: u32,     // block_z1, block_dw1: u32 words (4 pixels) per image
    parts: u32,  // block_dw1: split-k parts
    _p1: u32,
    _p2: u32,
    _p3: u32,
}
