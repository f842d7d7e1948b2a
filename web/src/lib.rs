//! gradsift in a browser tab: the embedded demo's LESS selection, computed in the page.
//!
//! The library runs unchanged on Burn's wgpu backend over the browser's WebGPU, with its own
//! WGSL projection and scoring kernels on the same device; without WebGPU, on Burn's CPU
//! backend compiled to wasm (one thread). Model and data are the ones compiled into the
//! library (`gradsift::assets`), so the page needs no download beyond itself. Every GPU read
//! is awaited, and the page is handed control after every batch so it can show progress.

use gradsift::data::{parse_jsonl, Dataset};
use gradsift::pipeline::{less_in_memory, load_embedded, FeatureOptions, Loaded, Progress};
use gradsift::select::Budget;
use gradsift::Compute;
use serde::Serialize;
use std::path::Path;
use wasm_bindgen::prelude::*;

/// The device, model and demo data, loaded once per page.
#[wasm_bindgen]
pub struct Demo {
    compute: Compute,
    loaded: Loaded,
    pool: Dataset,
    target: Dataset,
}

/// One run's results, as the page draws them.
#[derive(Serialize)]
struct RunReport<'a> {
    device: &'a str,
    scorer: &'a str,
    target_tasks: Vec<String>,
    budget: usize,
    /// Pool indices in rank order.
    selected: Vec<usize>,
    scores: Vec<f64>,
    /// Each pool example's task (what the map colours and the share counts).
    tasks: Vec<String>,
    /// Prompt and completion of every pool example, for the table.
    prompts: Vec<String>,
    completions: Vec<String>,
    /// The first two principal components of the pool's features.
    pca: Vec<[f64; 2]>,
    /// Share of target-task examples among the selected, and in the pool (what a random
    /// subset of the same size holds on average).
    selected_share: f64,
    pool_share: f64,
    seconds: f64,
}

#[wasm_bindgen]
extern "C" {
    /// The browser console.
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(s: &str);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(s: &str);
}

/// Sends wgpu's and CubeCL's warnings and errors (a shader the browser rejects, a lost device)
/// to the console, where a user can read them.
struct ConsoleLog;

impl log::Log for ConsoleLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("{} {}: {}", r.level(), r.target(), r.args());
            if r.level() == log::Level::Error {
                console_error(&line)
            } else {
                console_warn(&line)
            }
        }
    }
    fn flush(&self) {}
}

/// Panics and library log lines go to the console (a panic in wasm otherwise shows only as
/// "unreachable").
fn report_to_console() {
    static LOGGER: ConsoleLog = ConsoleLog;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
        std::panic::set_hook(Box::new(|p| console_error(&format!("gradsift panicked: {p}"))));
    }
}

/// Less autotuning than CubeCL's default. In wasm its tuner runs every candidate kernel 3 times
/// to warm up and 10 times to measure (the fixed-count pass; wasm has no adaptive one), on first
/// use of each bucket of matrix-product shapes, and on SwiftShader's WebGPU, where every launch
/// costs CPU time, the page's first batch, which compiles and tunes the kernels, takes minutes.
/// Here a candidate is measured once, over the coarser shape buckets of the `Minimal` level. A
/// kernel picked on one measurement may be slower than the best; what it computes is the same
/// up to rounding (the page's test holds its selection to the CLI's).
fn light_tuning() {
    use burn::cubecl::config::autotune::AutotuneLevel;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let mut config = CubeClRuntimeConfig::default();
    config.autotune.level = AutotuneLevel::Minimal;
    config.autotune.bench.min_samples = 1;
    config.autotune.bench.max_samples = 1;
    // Set once per page; a second Demo finds it set.
    let _ = CubeClRuntimeConfig::try_set(config);
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The embedded demo file `name` as a data set (errors name `<embedded>/demo/NAME`).
fn demo_data(name: &str) -> Result<Dataset, JsError> {
    let file = format!("demo/{name}");
    let bytes = gradsift::assets::bytes(&file).ok_or_else(|| js_error(format!("no embedded {file}")))?;
    let text = std::str::from_utf8(bytes).map_err(js_error)?;
    parse_jsonl(text, &Path::new("<embedded>").join(&file)).map_err(js_error)
}

#[wasm_bindgen]
impl Demo {
    /// Opens WebGPU (or, when `gpu` is false or the browser has none, the CPU backend; the
    /// reason is in [`Demo::notice`]) and loads the embedded model and demo data.
    pub async fn open(gpu: bool) -> Result<Demo, JsError> {
        report_to_console();
        light_tuning();
        let compute = if gpu {
            match gradsift::device::open_default_gpu_async().await {
                Ok(c) => c,
                Err(e) => {
                    let mut c = Compute::cpu();
                    c.notice = Some(format!("{e}; running on the CPU backend (wasm, one thread)"));
                    c
                }
            }
        } else {
            Compute::cpu()
        };
        let loaded = load_embedded(&compute).map_err(js_error)?;
        Ok(Demo { compute, loaded, pool: demo_data("pool.jsonl")?, target: demo_data("target.jsonl")? })
    }

    /// Where the work runs, in one line.
    pub fn device(&self) -> String {
        self.compute.label.clone()
    }

    /// Why the page is not on the GPU it asked for, if it is not.
    pub fn notice(&self) -> Option<String> {
        self.compute.notice.clone()
    }

    /// The target tasks the demo has few-shot examples of (JSON array).
    pub fn target_tasks(&self) -> String {
        let mut tasks: Vec<String> = self.target.examples.iter().filter_map(|e| e.task.clone()).collect();
        tasks.sort();
        tasks.dedup();
        serde_json::to_string(&tasks).expect("json")
    }

    /// Pool size.
    pub fn pool_size(&self) -> usize {
        self.pool.len()
    }

    /// Runs LESS with the target examples of `tasks` (comma-separated) over the first `pool`
    /// examples of the pool (all of them when `pool` is larger; the pool is shuffled, so a
    /// shorter run still sees every kind of task) and keeps `budget` of them;
    /// `progress(stage, done, total)` is called after every batch. Returns the report as JSON,
    /// indices into that part of the pool. `now` is the page's clock in milliseconds (wasm has
    /// none of its own).
    pub async fn run(
        &self,
        tasks: String,
        budget: usize,
        pool: usize,
        progress: js_sys::Function,
        now: js_sys::Function,
    ) -> Result<String, JsError> {
        let wanted: Vec<String> = tasks.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
        let mut target = self.target.clone();
        target.examples.retain(|e| e.task.as_ref().is_some_and(|t| wanted.contains(t)));
        if target.examples.is_empty() {
            return Err(js_error(format!("no target examples of task(s) `{tasks}`")));
        }
        let mut pool_part = self.pool.clone();
        pool_part.examples.truncate(pool.max(1));
        let pool = &pool_part;
        let budget = Budget::Count(budget).count(pool.len()).map_err(js_error)?;
        let clock = || now.call0(&JsValue::NULL).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let start = clock();
        let opts = FeatureOptions::default();
        let step = |p: Progress| {
            let _ = progress.call3(
                &JsValue::NULL,
                &JsValue::from_str(p.stage),
                &JsValue::from(p.done as u32),
                &JsValue::from(p.total as u32),
            );
            next_frame()
        };
        let sel =
            less_in_memory(&self.loaded, &self.compute, &opts, pool, &target, budget, step).await.map_err(js_error)?;
        let seconds = (clock() - start) / 1000.0;
        let task_of: Vec<String> =
            pool.examples.iter().map(|e| e.task.clone().unwrap_or_else(|| "(no task)".into())).collect();
        let is_target = |i: usize| wanted.contains(&task_of[i]);
        let share =
            |idx: &mut dyn Iterator<Item = usize>, n: usize| idx.filter(|&i| is_target(i)).count() as f64 / n as f64;
        let (prompts, completions) = pool
            .examples
            .iter()
            .map(|e| match &e.record {
                gradsift::data::Record::Instruction { prompt, completion } => (prompt.clone(), completion.clone()),
                // The demo pool holds instructions; any other record shows as its line.
                _ => (e.raw.clone(), String::new()),
            })
            .unzip();
        let report = RunReport {
            device: &self.compute.label,
            scorer: sel.scorer,
            target_tasks: wanted.clone(),
            budget,
            selected_share: share(&mut sel.selected.iter().copied(), sel.selected.len()),
            pool_share: share(&mut (0..pool.len()), pool.len()),
            selected: sel.selected,
            scores: sel.scores,
            tasks: task_of.clone(),
            prompts,
            completions,
            pca: gradsift::plot::pca2(&sel.pool.data, sel.pool.rows, sel.pool.dim)
                .into_iter()
                .map(|(x, y)| [x, y])
                .collect(),
            seconds,
        };
        serde_json::to_string(&report).map_err(js_error)
    }
}

/// A promise that resolves on the page's next turn of the event loop (`setTimeout(0)`): awaiting
/// it lets the page repaint its progress between batches, also on the CPU backend, whose reads
/// never suspend.
async fn next_frame() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        if let Ok(f) = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout")) {
            if let Ok(f) = f.dyn_into::<js_sys::Function>() {
                let _ = f.call2(&global, &resolve, &JsValue::from(0));
                return;
            }
        }
        let _ = resolve.call0(&JsValue::NULL);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
