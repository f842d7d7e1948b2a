// Exact k-nearest neighbours: squared L2 distances and a bitonic top-K, all on the GPU.
//
// Every query row owns two regions of (key, id) slots, keys = f32 squared distances, ids = u32
// candidate indices, ordered by (key, id) so that ties fall to the lower index:
//   best: `best` slots (a power of two >= K), the K nearest so far, sorted ascending;
//   tile: `tile` slots (a power of two >= best), the distances of the current candidate tile.
// The regions of all rows are stored apart (every row's best first), so the host reads the
// answers back as one contiguous block.
// For each tile the host dispatches: `fill` (empty tile slots), `distances` (one or more pieces
// of the tile), then `sort_step` for the bitonic sort of the tile, one merge of the tile's
// smallest `best` into the best region, and the half-cleaners that sort the merged region.
// Each sort step is one compare-exchange per invocation, so no invocation loops except
// `distances`, whose one loop runs `dim` times (the host keeps dim under lavapipe's silent
// 65,535-iteration limit).

struct Params {
    rows: u32,
    dim: u32,
    best: u32,
    tile: u32,
    // distances: valid candidates in this piece, and where the piece starts in the tile.
    count: u32,
    offset: u32,
    // sort_step: 0 = flip in the tile, 1 = disperse in the tile, 2 = merge the tile into best,
    // 3 = disperse in best; fill: 0 = the tile region, 1 = the best region.
    mode: u32,
    // flip: the block size; disperse: the compare distance.
    span: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cand: array<f32>;
@group(0) @binding(2) var<storage, read> cand_ids: array<u32>;
@group(0) @binding(3) var<storage, read> query: array<f32>;
@group(0) @binding(4) var<storage, read_write> keys: array<f32>;
@group(0) @binding(5) var<storage, read_write> ids: array<u32>;

const EMPTY_ID: u32 = 0xffffffffu;

fn best_slot(row: u32, i: u32) -> u32 {
    return row * params.best + i;
}

fn tile_slot(row: u32, i: u32) -> u32 {
    return params.rows * params.best + row * params.tile + i;
}

fn infinity() -> f32 {
    return bitcast<f32>(0x7f800000u);
}

@compute @workgroup_size(64, 1, 1)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let row = gid.y;
    if (row >= params.rows) {
        return;
    }
    if (params.mode == 0u) {
        if (i < params.tile) {
            keys[tile_slot(row, i)] = infinity();
            ids[tile_slot(row, i)] = EMPTY_ID;
        }
    } else if (i < params.best) {
        keys[best_slot(row, i)] = infinity();
        ids[best_slot(row, i)] = EMPTY_ID;
    }
}

@compute @workgroup_size(64, 1, 1)
fn distances(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let row = gid.y;
    if (i >= params.count || row >= params.rows) {
        return;
    }
    var acc = 0.0;
    for (var c = 0u; c < params.dim; c = c + 1u) {
        let diff = cand[i * params.dim + c] - query[row * params.dim + c];
        acc = acc + diff * diff;
    }
    let s = tile_slot(row, params.offset + i);
    keys[s] = acc;
    ids[s] = cand_ids[i];
}

// Puts the smaller of slots a and b (by key, then id) into a.
fn order(a: u32, b: u32) {
    let ka = keys[a];
    let kb = keys[b];
    let ia = ids[a];
    let ib = ids[b];
    if (ka > kb || (ka == kb && ia > ib)) {
        keys[a] = kb;
        keys[b] = ka;
        ids[a] = ib;
        ids[b] = ia;
    }
}

// One step of a bitonic network whose comparators all put the smaller value first: within
// each block of `span`, a "flip" compares slot r with slot span-1-r; a "disperse" compares
// slot i with slot i+span. Invocation t is one compare-exchange.
@compute @workgroup_size(64, 1, 1)
fn sort_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let row = gid.y;
    if (row >= params.rows) {
        return;
    }
    let span = params.span;
    switch params.mode {
        case 0u: {
            if (t >= params.tile / 2u) {
                return;
            }
            let h = span / 2u;
            let start = (t / h) * span;
            let r = t % h;
            order(tile_slot(row, start + r), tile_slot(row, start + span - 1u - r));
        }
        case 1u: {
            if (t >= params.tile / 2u) {
                return;
            }
            let a = (t / span) * 2u * span + t % span;
            order(tile_slot(row, a), tile_slot(row, a + span));
        }
        case 2u: {
            // best and the tile are both sorted; min(best[t], tile[best-1-t]) over t are the
            // `best` smallest of both, as a bitonic sequence.
            if (t >= params.best) {
                return;
            }
            order(best_slot(row, t), tile_slot(row, params.best - 1u - t));
        }
        default: {
            if (t >= params.best / 2u) {
                return;
            }
            let a = (t / span) * 2u * span + t % span;
            order(best_slot(row, a), best_slot(row, a + span));
        }
    }
}
