// Candidate × target scoring for LESS-style methods, one checkpoint (stage) at a time, the
// candidates streamed in chunks.
//
// `dots`: invocation (i, j) computes dots[i, j] = cand[i] · targ[j] over k columns (rows are
// unit-normalised on the host, so this is the cosine). One loop of k iterations.
// `aggregate`: invocation i computes, for each subtask g, the mean of dots[i, t] over the
// targets t of g (members[offsets[g] .. offsets[g+1]]) into per_task[i, g] (this stage's
// column), and adds weight × that mean into weighted[row0 + i, g], which holds the
// learning-rate-weighted sum over stages for the whole pool. m + G loop iterations in total.
// `maximum`: after the last stage, score[i] = max over g of weighted[i, g]. G iterations.
// Every invocation's loops are bounded: lavapipe silently stops one after 65,535 iterations.

struct Params {
    n: u32,
    m: u32,
    k: u32,
    groups: u32,
    // The chunk's first candidate in the pool, and the pool's size.
    row0: u32,
    total: u32,
    weight: f32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cand: array<f32>;
@group(0) @binding(2) var<storage, read> targ: array<f32>;
@group(0) @binding(3) var<storage, read_write> dots_out: array<f32>;
@group(0) @binding(4) var<storage, read> members: array<u32>;
@group(0) @binding(5) var<storage, read> offsets: array<u32>;
@group(0) @binding(6) var<storage, read_write> per_task: array<f32>;
@group(0) @binding(7) var<storage, read_write> weighted: array<f32>;
@group(0) @binding(8) var<storage, read_write> score: array<f32>;

// Workgroups along x in a `maximum` dispatch; y counts blocks of that many.
const MAX_X: u32 = 1024u;

@compute @workgroup_size(64, 1, 1)
fn dots(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let j = gid.y;
    if (i >= params.n || j >= params.m) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < params.k; c = c + 1u) {
        acc = acc + cand[i * params.k + c] * targ[j * params.k + c];
    }
    dots_out[i * params.m + j] = acc;
}

@compute @workgroup_size(64, 1, 1)
fn aggregate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= params.n) {
        return;
    }
    for (var g = 0u; g < params.groups; g = g + 1u) {
        let start = offsets[g];
        let end = offsets[g + 1u];
        var sum = 0.0;
        for (var t = start; t < end; t = t + 1u) {
            sum = sum + dots_out[i * params.m + members[t]];
        }
        let mean = sum / f32(end - start);
        per_task[i * params.groups + g] = mean;
        let w = (params.row0 + i) * params.groups + g;
        weighted[w] = weighted[w] + params.weight * mean;
    }
}

@compute @workgroup_size(64, 1, 1)
fn maximum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * (MAX_X * 64u) + gid.x;
    if (i >= params.total) {
        return;
    }
    var best = weighted[i * params.groups];
    for (var g = 1u; g < params.groups; g = g + 1u) {
        best = max(best, weighted[i * params.groups + g]);
    }
    score[i] = best;
}
