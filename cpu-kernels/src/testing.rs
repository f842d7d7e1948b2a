//! Fresh random inputs for the kernels' tests.

/// The run's seed: `GRADSIFT_TEST_SEED`, else the clock (printed with `what`, to replay a
/// failure).
pub fn fresh_seed(what: &str) -> u64 {
    let seed = std::env::var("GRADSIFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("{what}: seed {seed} (replay with GRADSIFT_TEST_SEED={seed})");
    seed
}

/// `n` floats uniform on [−a, a) from splitmix64, advancing `state`.
pub fn uniform(state: &mut u64, n: usize, a: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0) * a
        })
        .collect()
}
