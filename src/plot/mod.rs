//! `gradsift plot DIR`: figures from a `select` output, an `eval` output, or a whole demo report
//! directory, each written as PNG and SVG under `DIR/plots/`.

mod figures;
mod pca;
mod render;

use std::path::{Path, PathBuf};

pub(crate) use figures::{EvalBars, JaccardHeatmap, PcaMap, ScoreHistogram, TifScatter};
pub use pca::pca2;
pub(crate) use render::save;

use crate::data::load_files;
use crate::error::{Error, Result};
use crate::eval::{EvalReport, Stat};
use crate::features::Store;

/// The numeric columns of a `scores.csv`.
pub(crate) struct ScoresCsv {
    pub header: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

/// The columns of scores.csv that hold text (a row's pool file).
const TEXT_COLUMNS: &[&str] = &["file"];

impl ScoresCsv {
    /// Reads `scores.csv`; every field after the header, outside `TEXT_COLUMNS`, must be a number.
    pub fn read(path: &Path) -> Result<Self> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
        let all: Vec<String> = reader.headers().map_err(|e| csv_error(path, e))?.iter().map(String::from).collect();
        let numeric: Vec<bool> = all.iter().map(|h| !TEXT_COLUMNS.contains(&h.as_str())).collect();
        let header = all.iter().zip(&numeric).filter(|(_, &n)| n).map(|(h, _)| h.clone()).collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| csv_error(path, e))?;
            let line = record.position().map_or(0, |p| p.line() as usize);
            let row = record
                .iter()
                .zip(&numeric)
                .filter(|(_, &n)| n)
                .map(|(f, _)| f.parse::<f64>())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Record { path: path.into(), line, message: format!("not a number: {e}") })?;
            rows.push(row);
        }
        Ok(ScoresCsv { header, rows })
    }

    /// A column by name.
    pub fn column(&self, name: &str) -> Option<Vec<f64>> {
        let j = self.header.iter().position(|h| h == name)?;
        Some(self.rows.iter().map(|r| r[j]).collect())
    }
}

/// A CSV error with its file (and line, where the reader knows it).
fn csv_error(path: &Path, e: csv::Error) -> Error {
    match e.position() {
        Some(p) => Error::Record { path: path.into(), line: p.line() as usize, message: e.to_string() },
        None => Error::format(path, e.to_string()),
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(path, format!("invalid JSON: {e}")))
}

/// The first pool feature store under `sel/features/*/pool` (in name order), if any.
fn pool_store(sel: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(sel.join("features")).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    dirs.into_iter().map(|d| d.join("pool")).find(|p| p.join("manifest.json").exists())
}

/// Histogram, and (when the data is there) the PCA map and the TIF scatter, of one selection.
pub(crate) fn plot_selection(sel: &Path, plots: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let csv = ScoresCsv::read(&sel.join("scores.csv"))?;
    let manifest = read_json(&sel.join("manifest.json")).unwrap_or(serde_json::Value::Null);
    let method = manifest["method"].as_str().unwrap_or(prefix.trim_end_matches('-')).to_string();
    let missing = |c: &str| Error::format(sel.join("scores.csv"), format!("missing column `{c}`"));
    let scores = csv.column("score").ok_or_else(|| missing("score"))?;
    let selected: Vec<bool> =
        csv.column("selected").ok_or_else(|| missing("selected"))?.iter().map(|&t| t > 0.0).collect();
    let mut out = save(
        &ScoreHistogram { title: format!("{method}: scores of the pool"), scores, selected: selected.clone() },
        &plots.join(format!("{prefix}scores")),
    )?;
    if let (Some(lossdiff), Some(irm)) = (csv.column("lossdiff"), csv.column("irm")) {
        let band = |k: &str| {
            let t = &manifest["details"][k]["thresholds"];
            Some((t[0].as_f64()?, t[1].as_f64()?))
        };
        let fig = TifScatter {
            lossdiff,
            irm,
            kept: selected.clone(),
            lossdiff_band: band("lossdiff"),
            irm_band: band("irm"),
        };
        out.extend(save(&fig, &plots.join(format!("{prefix}tif-scatter")))?);
    }
    if let Some(store) = pool_store(sel) {
        let f = Store::new(&store).load()?;
        if f.rows == selected.len() && f.rows >= 3 {
            let files: Vec<PathBuf> = manifest["pool"]["files"]
                .as_array()
                .map(|fs| fs.iter().filter_map(|f| f["path"].as_str()).map(PathBuf::from).collect())
                .unwrap_or_default();
            let tasks = match (!files.is_empty()).then(|| load_files(&files)) {
                Some(Ok(pool)) if pool.len() == f.rows => {
                    pool.examples.iter().map(|e| e.task.clone().unwrap_or_else(|| "(no task)".into())).collect()
                }
                _ => vec!["pool".to_string(); f.rows],
            };
            let fig = PcaMap {
                title: format!("{method}: pool features (PCA), selected ringed"),
                points: pca2(&f.data, f.rows, f.dim),
                tasks,
                selected,
            };
            out.extend(save(&fig, &plots.join(format!("{prefix}pca")))?);
        }
    }
    Ok(out)
}

/// How a figure reads its metric from an arm's summary.
type MetricOf = fn(&crate::eval::Summary) -> Option<Stat>;

/// Bars with error bars for every metric an evaluation measured.
pub(crate) fn plot_eval(report: &EvalReport, plots: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let reference = report.summary.iter().map(|s| s.arm.as_str()).find(|a| *a == "random" || *a == "whole pool");
    let mut out = Vec::new();
    let metrics: [(&str, &str, MetricOf); 3] = [
        ("test-loss", "test loss (lower is better)", |s| s.test_loss),
        ("accuracy", "exact-match accuracy", |s| s.accuracy),
        ("pref-accuracy", "preference accuracy", |s| s.pref_accuracy),
    ];
    for (file, label, get) in metrics {
        let rows: Vec<(String, Stat)> =
            report.summary.iter().filter_map(|s| get(s).map(|v| (s.arm.clone(), v))).collect();
        if rows.is_empty() {
            continue;
        }
        let fig = EvalBars {
            title: format!("{label}, mean ± std over seeds"),
            metric: label.to_string(),
            arms: rows.iter().map(|r| r.0.clone()).collect(),
            mean: rows.iter().map(|r| r.1.mean).collect(),
            std: rows.iter().map(|r| r.1.std).collect(),
            reference: reference.map(String::from),
        };
        out.extend(save(&fig, &plots.join(format!("{prefix}{file}")))?);
    }
    Ok(out)
}

/// Jaccard overlap of several selections (`selected.json` of each directory).
pub(crate) fn plot_overlap(dirs: &[(String, PathBuf)], plots: &Path) -> Result<Vec<PathBuf>> {
    let sets = dirs
        .iter()
        .map(|(_, d)| {
            crate::eval::read_selection(d).map(|s| s.indices.into_iter().collect::<std::collections::HashSet<_>>())
        })
        .collect::<Result<Vec<_>>>()?;
    let n = sets.len();
    let mut values = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let inter = sets[i].intersection(&sets[j]).count() as f64;
            let union = sets[i].union(&sets[j]).count() as f64;
            values[i * n + j] = if union > 0.0 { inter / union } else { 1.0 };
        }
    }
    save(&JaccardHeatmap { names: dirs.iter().map(|d| d.0.clone()).collect(), values }, &plots.join("overlap"))
}

/// Draws everything `dir` holds: a `select` output (scores.csv), an `eval` output (eval.json),
/// or a demo report (select/*, eval/, eval-dpo/). Returns the files written under `dir/plots`.
pub fn plot_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let plots = dir.join("plots");
    let mut out = Vec::new();
    if dir.join("scores.csv").exists() {
        out.extend(plot_selection(dir, &plots, "")?);
    }
    if dir.join("eval.json").exists() {
        out.extend(plot_eval(&EvalReport::read(dir)?, &plots, "eval-")?);
    }
    let select = dir.join("select");
    if select.is_dir() {
        let mut subs: Vec<(String, PathBuf)> = std::fs::read_dir(&select)
            .map_err(|e| Error::io(&select, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("scores.csv").exists())
            .map(|p| (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), p))
            .collect();
        subs.sort();
        for (name, sub) in &subs {
            out.extend(plot_selection(sub, &plots, &format!("{name}-"))?);
        }
        // Overlap among the selections from the pool most of them share (the demo's preference
        // pool is a different pool).
        let pool_of =
            |p: &Path| read_json(&p.join("manifest.json")).map(|m| m["pool"]["files"].to_string()).unwrap_or_default();
        let pools: Vec<String> = subs.iter().map(|(_, p)| pool_of(p)).collect();
        let common = pools.iter().max_by_key(|p| pools.iter().filter(|q| q == p).count()).cloned().unwrap_or_default();
        let same_pool: Vec<(String, PathBuf)> =
            subs.into_iter().zip(&pools).filter(|(_, p)| **p == common).map(|(s, _)| s).collect();
        if same_pool.len() >= 2 {
            out.extend(plot_overlap(&same_pool, &plots)?);
        }
    }
    for (sub, prefix) in [("eval", "eval-"), ("eval-dpo", "eval-dpo-")] {
        if dir.join(sub).join("eval.json").exists() {
            out.extend(plot_eval(&EvalReport::read(&dir.join(sub))?, &plots, prefix)?);
        }
    }
    if out.is_empty() {
        return Err(Error::format(
            dir,
            "nothing to plot: expected scores.csv (select), eval.json (eval) or a demo report",
        ));
    }
    Ok(out)
}
