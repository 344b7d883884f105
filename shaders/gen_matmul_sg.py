#!/usr/bin/env python3
"""Prints the two unrolled kernels of shaders/matmul_sg.wgsl, fwd_x_sg and dw1_sg.

usage: python3 shaders/gen_matmul_sg.py [RA HB WG_FWD HB_DW1 WG_DW1]
Defaults 4 32 32 32 8 are the committed block sizes; keep FWD_SG and DW1_SG in
src/gpu/ops/linear.rs in step, and paste the output over the two kernels at the end of
matmul_sg.wgsl (tests/shader_sources.rs checks both).
"""
import sys


def fwd(RA, HB, WG):
    A=RA//4; B=HB//4; M=HB//8
    L=[]
    L.append(f"""// Z1 = X W1^T + b1 and H = relu(Z1): {RA} samples x {HB} hidden units per invocation, 16
// pixels per step. All invocations of a subgroup (8 lanes) share the hidden block: lane t
// fetches W1 rows j0 + t + 8m and subgroupBroadcast hands them to the others, so each W1
// texel is fetched once per subgroup instead of once per lane. No early return (the
// broadcasts need every lane): rows past the set are clamped and not stored.
// Grid: x = sample blocks of {RA} ({WG} per group), y = hidden blocks of {HB}.
@compute @workgroup_size({WG})
fn fwd_x_sg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(subgroup_invocation_id) sl: u32) {{
    let r0 = gid.x * {RA}u;
    let j0 = wid.y * {HB}u;
    let rl = qt.rows - 1u;
    let lr = qt.layer_rows;
    let jl = qt.hidden - 1u;""")
    for i in range(RA):
        L.append(f"    let s{i} = min(r0 + {i}u, rl); let y{i} = s{i} % lr; let l{i} = s{i} / lr;")
    for m in range(M):
        L.append(f"    let h{m} = min(j0 + sl + {8*m}u, jl);")
    for a in range(A):
        L.append("    " + " ".join(f"var c{a}_{b} = mat4x4<f32>();" for b in range(B)))
    L.append("    for (var k = 0u; k < qt.xw; k++) {")
    for i in range(RA):
        L.append(f"        let x{i} = textureLoad(xt, vec2<u32>(k, y{i}), l{i}, 0);")
    L.append("        let k4 = k * 4u;")
    for sub in range(4):
        comp="xyzw"[sub]
        L.append("        {")
        for m in range(M):
            L.append(f"            let w{m} = textureLoad(w1t, vec2<u32>(k4 + {sub}u, h{m}), 0);")
        for a in range(A):
            args=", ".join(f"norm4(x{4*a+t}.{comp})" for t in range(4))
            L.append(f"            let a{a} = transpose(mat4x4<f32>({args}));")
        for b in range(B):
            args=", ".join(f"subgroupBroadcast(w{(4*b+t)//8}, {(4*b+t)%8}u)" for t in range(4))
            L.append(f"            let b{b} = mat4x4<f32>({args});")
        for a in range(A):
            L.append("            " + " ".join(f"c{a}_{b} += a{a} * b{b};" for b in range(B)))
        L.append("        }")
    L.append("    }")
    L.append("    if (r0 >= qt.rows) {\n        return;\n    }")
    for a in range(A):
        L.append("    " + " ".join(f"fwd_store(r0 + {4*a}u, j0 + {4*b}u, c{a}_{b});" for b in range(B)))
    L.append("}")
    return "\n".join(L)

def dw1(HB, WG):
    G=HB//4; V=HB//8  # hidden groups of 4; dZ1 vec4 loads per lane per step (4 rows)
    L=[]
    L.append(f"""// dW1 = dZ1^T X over all samples: {HB} hidden units x 16 pixels per invocation, 4 samples
// per step. The lanes of a subgroup share the hidden block: each lane loads {V} of the
// {HB} dZ1 vec4s a step needs and subgroupBroadcast hands them to the others. No early
// return (the broadcasts need every lane): extra lanes are clamped and store nothing.
// Grid: x = pixel blocks of 16 ({WG} per group), y = hidden blocks of {HB}.
@compute @workgroup_size({WG})
fn dw1_sg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(subgroup_invocation_id) sl: u32) {{
    let c = min(gid.x, qt.xw - 1u); // texel column: pixels 16c..16c+15
    let j0 = wid.y * {HB}u;
    let rl = qt.rows - 1u;
    let lr = qt.layer_rows;
    let hq = qt.hidden / 4u - 1u;""")
    for v in range(V):
        L.append(f"    let q{v} = {8*v}u + sl; let i{v} = q{v} / {G}u; let g{v} = min(j0 / 4u + q{v} % {G}u, hq);")
    for g in range(G):
        L.append("    " + " ".join(f"var c{g}_{p} = mat4x4<f32>();" for p in range(4)))
    L.append("    for (var k = 0u; k < qt.rows; k += 4u) {")
    for t in range(4):
        L.append(f"        let r{t} = min(k + {t}u, rl);")
        L.append(f"        let x{t} = textureLoad(xt, vec2<u32>(c, r{t} % lr), r{t} / lr, 0);")
    for v in range(V):
        L.append(f"        let d{v} = select(vec4<f32>(0.0), pv[min(k + i{v}, rl) * (qt.hidden / 4u) + g{v}], k + i{v} < qt.rows);")
    for g in range(G):
        cols=", ".join(f"subgroupBroadcast(d{(i*G+g)//8}, {(i*G+g)%8}u)" for i in range(4))
        L.append(f"        let a{g} = mat4x4<f32>({cols});")
    for p in range(4):
        comp="xyzw"[p]
        args=", ".join(f"norm4(x{t}.{comp})" for t in range(4))
        L.append(f"        let b{p} = transpose(mat4x4<f32>({args}));")
    for g in range(G):
        L.append("        " + " ".join(f"c{g}_{p} += a{g} * b{p};" for p in range(4)))
    L.append("    }")
    L.append("    if (gid.x >= qt.xw) {\n        return;\n    }")
    for g in range(G):
        L.append("    " + " ".join(f"dw1_store(j0 + {4*g}u, gid.x * 16u + {4*p}u, c{g}_{p});" for p in range(4)))
    L.append("}")
    return "\n".join(L)

if __name__ == "__main__":
    a = [int(v) for v in sys.argv[1:]] or [4, 32, 32, 32, 8]
    print(fwd(a[0], a[1], a[2]))
    print()
    print(dw1(a[3], a[4]))
