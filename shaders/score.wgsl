// Candidate × target scoring for LESS-style methods.
//
// Pass 1 (`dots`): invocation (i, j) computes dots[i, j] = cand[i] · targ[j] over k columns
// (rows are unit-normalised on the host, so this is the cosine). One loop of k iterations.
// Pass 2 (`aggregate`): invocation i computes, for each subtask g, the mean of dots[i, t] over
// the targets t of g (members[offsets[g] .. offsets[g+1]]) into per_task[i, g]; the host takes
// the checkpoint-weighted maximum over subtasks. At most m + G loop iterations.
// Every invocation's loops are bounded: lavapipe silently stops one after 65,535 iterations.

struct Params {
    n: u32,
    m: u32,
    k: u32,
    groups: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cand: array<f32>;
@group(0) @binding(2) var<storage, read> targ: array<f32>;
@group(0) @binding(3) var<storage, read_write> dots_out: array<f32>;
@group(0) @binding(4) var<storage, read> members: array<u32>;
@group(0) @binding(5) var<storage, read> offsets: array<u32>;
@group(0) @binding(6) var<storage, read_write> per_task: array<f32>;

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
        per_task[i * params.groups + g] = sum / f32(end - start);
    }
}
