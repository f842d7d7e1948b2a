// The sparse Johnson–Lindenstrauss projection (src/features/sparse.rs), one slab of columns
// at a time: out[e, r] += sum over row r's list of ±grads[e, column].
//
// The host lists each row's (column, sign) entries of the slab in ascending column order, so
// this sum runs in the same order, and in the same f32 arithmetic, as the CPU's column-by-column
// loop, and the features are bit-identical on every device. Lists are kept short enough that
// no invocation nears lavapipe's silent 65,535-iteration loop limit.

struct Params {
    k: u32,
    e: u32,
    slab: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> entries: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn project(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    let i = gid.y;
    if (r >= params.k || i >= params.e) {
        return;
    }
    let base = i * params.slab;
    var acc = out[i * params.k + r];
    let end = offsets[r + 1u];
    for (var t = offsets[r]; t < end; t = t + 1u) {
        let entry = entries[t];
        let v = grads[base + (entry & 0x7FFFFFFFu)];
        acc = acc + select(v, -v, (entry & 0x80000000u) != 0u);
    }
    out[i * params.k + r] = acc;
}
