//! A reduced demo (tiny sizes) end to end on the CPU backend: data, warmup, selection, evaluation
//! and figures. Every figure is decoded and looked at: the PNG has the SVG's size and is not
//! blank, the SVG parses as XML.

use std::path::Path;

use gradsift::demo::{self, DemoOptions};
use gradsift::device::Compute;
use gradsift::pipeline::Method;
use gradsift::suite::SuiteSpec;

use crate::common;

/// Checks one PNG/SVG pair and returns the PNG's size.
pub fn check_figure(png: &Path) -> (u32, u32) {
    let img = image::load_from_memory(&std::fs::read(png).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", png.display()))
        .to_rgb8();
    let (w, h) = img.dimensions();
    let svg_path = png.with_extension("svg");
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{}: not XML: {e}", svg_path.display()));
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let attr = |a: &str| root.attribute(a).and_then(|v| v.trim_end_matches("px").parse::<u32>().ok());
    assert_eq!((attr("width"), attr("height")), (Some(w), Some(h)), "{}: PNG and SVG sizes differ", png.display());
    assert!(doc.descendants().filter(|n| n.is_element()).count() > 20, "{}: almost empty SVG", svg_path.display());
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(w >= 300 && h >= 300, "{}: {w}×{h}", png.display());
    assert!(inked as f64 > 0.01 * (w * h) as f64, "{}: blank ({inked} non-white pixels)", png.display());
    assert!(colours.len() >= 3, "{}: {} colours", png.display(), colours.len());
    (w, h)
}

#[test]
fn reduced_demo_runs_end_to_end_and_draws_every_figure() {
    let out_tmp = common::tmp("demo", "end-to-end");
    let out = out_tmp.path();
    let assets = gradsift::assets::materialize().unwrap();
    let mut o = DemoOptions::classroom(assets.model_dir);
    o.suite = SuiteSpec { pool: 80, shots: 2, test: 6, val_shots: 2, base: 0, ..SuiteSpec::default() };
    o.methods = vec![Method::Less, Method::Prism, Method::Rds];
    o.warmup.epochs = 1;
    o.features.proj_dim = 256;
    o.eval.steps = 4;
    o.eval.batch_size = 4;
    o.eval.max_new_tokens = 4;
    o.dpo_eval.steps = 4;
    o.dpo_warmup_lrs = vec![3e-4, 3e-3];
    o.set_seeds(vec![1, 2, 3]);
    let t = std::time::Instant::now();
    let r = demo::run(&o, &Compute::cpu(), out).unwrap();
    eprintln!("reduced demo: {:.1} s", t.elapsed().as_secs_f64());

    let arms: Vec<&str> = r.instruction.summary.iter().map(|s| s.arm.as_str()).collect();
    assert_eq!(arms, ["less", "prism", "rds", "random"]);
    for s in &r.instruction.summary {
        let l = s.test_loss.unwrap();
        assert_eq!(l.n, 3, "{}: three seeds", s.arm);
        assert!(l.mean.is_finite() && l.mean > 0.0);
        assert!(s.accuracy.is_some());
        assert_eq!(s.size, 4, "5% of 80");
    }
    // Every selection is compared with random subsets of its size, paired over the three seeds.
    let compared: Vec<&str> = r.instruction.comparisons.iter().map(|c| c.arm.as_str()).collect();
    assert_eq!(compared, ["less", "prism", "rds"]);
    assert!(r.instruction.comparisons.iter().all(|c| c.n == 3 && c.reference == "random" && c.metric == "test loss"));
    assert!(!r.instruction.overlap.any(), "the generated suite leaks: {:?}", r.instruction.overlap);
    assert!(r.preference.summary.iter().all(|s| s.pref_accuracy.is_some()));
    // The preference half: the kept set against random subsets of the kept size.
    let kept = &r.preference.comparisons[0];
    assert_eq!((kept.arm.as_str(), kept.n), ("fusion (kept)", 3));
    assert!(kept.reference.starts_with("random"), "{}", kept.reference);
    let random = r.preference.summary.iter().find(|s| s.arm == kept.reference).unwrap();
    assert_eq!(random.size, r.fusion_kept);
    assert!(r.fusion_kept > 0 && r.fusion_kept < 80);
    // The DPO warmup's learning rate: the candidate with the lowest validation DPO loss.
    let lr = &r.dpo_warmup_lr;
    assert_eq!(lr.validation_loss.iter().map(|x| x.0).collect::<Vec<_>>(), [3e-4, 3e-3]);
    let best = lr.validation_loss.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(lr.chosen, best.0);
    assert!(lr.validation_loss.iter().all(|x| x.1.is_finite() && x.1 > 0.0));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in ["| arm | size | seeds |", "| random |", "fusion (kept)", "clean", "![plots/"] {
        assert!(report.contains(needle), "report.md lacks `{needle}`");
    }
    let _: demo::DemoReport = serde_json::from_str(&std::fs::read_to_string(out.join("demo.json")).unwrap()).unwrap();

    // Every figure kind is there, as PNG and SVG, and is looked at.
    for kind in [
        "less-scores",
        "less-pca",
        "fusion-tif-scatter",
        "overlap",
        "eval-test-loss",
        "eval-accuracy",
        "eval-dpo-pref-accuracy",
    ] {
        assert!(r.plots.iter().any(|p| p == &format!("plots/{kind}.png")), "no {kind} figure in {:?}", r.plots);
        assert!(r.plots.iter().any(|p| p == &format!("plots/{kind}.svg")), "no {kind} SVG");
    }
    for p in r.plots.iter().filter(|p| p.ends_with(".png")) {
        check_figure(&out.join(p));
    }
    // `gradsift plot` on a selection directory redraws its figures.
    let again = gradsift::plot::plot_dir(&out.join("select/less")).unwrap();
    assert!(again.iter().any(|p| p.ends_with("plots/scores.png")));
}
