//! The browser page's path: `less_in_memory` on the embedded model loaded from bytes gives the
//! scores and the selection `select --method less` gives on the same data, on both backends.

use std::path::PathBuf;

use gradsift::blocking::block_on;
use gradsift::data::parse_jsonl;
use gradsift::pipeline::{
    self, less_in_memory, FeatureOptions, Method, MethodOptions, MethodSpec, ModelSpec, SelectSpec,
};
use gradsift::select::Budget;

use crate::common::{each_backend, tmp};

each_backend! {
    fn in_memory_less_equals_select(c) {
        let assets = gradsift::assets::materialize().unwrap();
        let dir_tmp = tmp("in-memory", if c.is_gpu() { "wgpu" } else { "cpu" });
        let dir = dir_tmp.path();
        // 13 lines of the demo pool (both target tasks among them) keep the lavapipe run short;
        // a chunk of 16 holds them in two batches of 8, the last partial.
        let pool_text: String =
            std::fs::read_to_string(&assets.pool).unwrap().lines().take(13).map(|l| format!("{l}\n")).collect();
        let pool_path: PathBuf = dir.join("pool.jsonl");
        std::fs::write(&pool_path, &pool_text).unwrap();
        let opts = FeatureOptions { chunk_size: 16, batch_size: 8, ..FeatureOptions::default() };
        let budget = 6;

        let loaded = pipeline::load(&ModelSpec::fresh(assets.model_dir.clone()), c).unwrap();
        let options = MethodOptions::default();
        let spec = SelectSpec {
            pool: std::slice::from_ref(&pool_path),
            method: MethodSpec::new(Method::Less, Some(&assets.target), &[], &options).unwrap(),
            budget: Budget::Count(budget),
            opts: &opts,
            out: &dir.join("select"),
            pool_features: &[],
        };
        let sel = pipeline::select(&loaded, &spec, c).unwrap();
        let mut csv = csv::Reader::from_path(dir.join("select/scores.csv")).unwrap();
        let scores: Vec<f64> = csv.records().map(|r| r.unwrap()[1].parse().unwrap()).collect();

        let embedded = pipeline::load_embedded(c).unwrap();
        let pool = parse_jsonl(&pool_text, &pool_path).unwrap();
        let target_text = std::fs::read_to_string(&assets.target).unwrap();
        let target = parse_jsonl(&target_text, &assets.target).unwrap();
        let mut heard = Vec::new();
        let mem = block_on(less_in_memory(&embedded, c, &opts, &pool, &target, budget, |p| {
            heard.push((p.stage, p.done, p.total));
            std::future::ready(())
        }))
        .unwrap();

        assert_eq!(mem.selected, sel.selected);
        assert_eq!(mem.scores, scores, "scores differ from select's scores.csv");
        assert_eq!((mem.pool.rows, mem.pool.dim), (13, opts.proj_dim));
        assert_eq!(mem.scorer, if c.is_gpu() { "wgsl (f32)" } else { "cpu (f64)" });
        // Progress after every batch: the target's, then the pool's 8 | 13.
        let pool_steps: Vec<usize> = heard.iter().filter(|h| h.0 == "pool").map(|h| h.1).collect();
        assert_eq!(pool_steps, [8, 13]);
        assert_eq!(heard.first().map(|h| (h.0, h.2)), Some(("target", target.len())));
    }
}
