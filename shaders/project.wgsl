// Random projection features = P·g without storing P.
//
// P[r, c] = ±1 from a counter-based hash of (seed, r, c) (the same functions as
// src/features/rng.rs), scaled by 1/sqrt(k) on the host. g holds a slab of columns
// [col_base, col_base + slab) of E gradient rows, laid out [E, slab].
//
// Pass 1 (`project`): invocation (r, example tile, chunk z) sums CHUNK columns for up to
// TILE_E examples and writes partial[z, e, r]. Each invocation runs at most
// CHUNK * (TILE_E + 1) loop iterations: lavapipe silently stops an invocation after 65,535.
// Pass 2 (`accumulate`): out[e, r] += sum over z of partial[z, e, r] (at most Z iterations).

struct Params {
    k: u32,
    e: u32,
    slab: u32,
    col_base: u32,
    chunk: u32,
    z_count: u32,
    seed_lo: u32,
    seed_hi: u32,
}

const TILE_E: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grads: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

fn fmix32(x: u32) -> u32 {
    var h = x;
    h = h ^ (h >> 16u);
    h = h * 0x85EBCA6Bu;
    h = h ^ (h >> 13u);
    h = h * 0xC2B2AE35u;
    return h ^ (h >> 16u);
}

fn row_key(row: u32) -> u32 {
    let s = fmix32(fmix32(params.seed_lo ^ 0x5EED0001u) ^ params.seed_hi);
    return fmix32(s ^ (row * 0x9E3779B9u + 0x7F4A7C15u));
}

fn sign_of(rk: u32, col: u32) -> f32 {
    let h = fmix32(rk ^ fmix32(col * 0x27D4EB2Fu + 0x165667B1u));
    return select(1.0, -1.0, (h & 0x80000000u) != 0u);
}

@compute @workgroup_size(64, 1, 1)
fn project(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r = gid.x;
    if (r >= params.k) {
        return;
    }
    let e0 = wid.y * TILE_E;
    let z = wid.z;
    let start = z * params.chunk;
    let end = min(start + params.chunk, params.slab);
    var acc: array<f32, 8>;
    for (var j = 0u; j < TILE_E; j = j + 1u) {
        acc[j] = 0.0;
    }
    let rk = row_key(r);
    let n_e = min(TILE_E, params.e - e0);
    for (var c = start; c < end; c = c + 1u) {
        let s = sign_of(rk, params.col_base + c);
        for (var j = 0u; j < n_e; j = j + 1u) {
            acc[j] = acc[j] + s * grads[(e0 + j) * params.slab + c];
        }
    }
    for (var j = 0u; j < n_e; j = j + 1u) {
        partial[(z * params.e + e0 + j) * params.k + r] = acc[j];
    }
}

@compute @workgroup_size(64, 1, 1)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= params.e * params.k) {
        return;
    }
    var s = out[i];
    for (var z = 0u; z < params.z_count; z = z + 1u) {
        s = s + partial[z * params.e * params.k + i];
    }
    out[i] = s;
}
