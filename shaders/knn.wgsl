// Squared L2 distances between every query and a tile of candidates, for exact kNN.
// Invocation (i, j): d2[j, i] = ||cand[i] - query[j]||^2 over `dim` columns, one loop of `dim`
// iterations (the host keeps dim under lavapipe's 65,535-iteration limit). The host streams
// candidate tiles and keeps each query's nearest candidates.

struct Params {
    tile: u32,
    m: u32,
    dim: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cand: array<f32>;
@group(0) @binding(2) var<storage, read> query: array<f32>;
@group(0) @binding(3) var<storage, read_write> d2: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn distances(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let j = gid.y;
    if (i >= params.tile || j >= params.m) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < params.dim; c = c + 1u) {
        let diff = cand[i * params.dim + c] - query[j * params.dim + c];
        acc = acc + diff * diff;
    }
    d2[j * params.tile + i] = acc;
}
