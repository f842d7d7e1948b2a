//! The figures: score histogram with the cut-off, Jaccard heatmap, PCA map of the pool, evaluation
//! bars with error bars, and the TIF LossDiff-vs-IRM scatter with its bands.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::render::{color, err, Figure, FAMILY};

type R = std::result::Result<(), String>;

fn range(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        xs.filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.5 };
    (lo - pad, hi + pad)
}

/// Scores of the whole pool, selected candidates in a second colour, and the cut-off (the lowest
/// selected score) when the selection is a top-k.
pub(crate) struct ScoreHistogram {
    pub title: String,
    pub scores: Vec<f64>,
    pub selected: Vec<bool>,
}

impl ScoreHistogram {
    /// The lowest selected score, if every selected score is at least every unselected one.
    pub fn cutoff(&self) -> Option<f64> {
        let sel = self.scores.iter().zip(&self.selected).filter(|(_, s)| **s).map(|(x, _)| *x);
        let min_sel = sel.fold(f64::INFINITY, f64::min);
        let max_rest = self
            .scores
            .iter()
            .zip(&self.selected)
            .filter(|(_, s)| !**s)
            .map(|(x, _)| *x)
            .fold(f64::NEG_INFINITY, f64::max);
        (min_sel.is_finite() && min_sel >= max_rest).then_some(min_sel)
    }
}

impl Figure for ScoreHistogram {
    fn size(&self) -> (u32, u32) {
        (720, 420)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> R {
        const BINS: usize = 30;
        let (lo, hi) = range(self.scores.iter().copied());
        let width = (hi - lo) / BINS as f64;
        let mut all = [0usize; BINS];
        let mut sel = [0usize; BINS];
        for (x, s) in self.scores.iter().zip(&self.selected) {
            if !x.is_finite() {
                continue;
            }
            let b = (((x - lo) / width) as usize).min(BINS - 1);
            all[b] += 1;
            sel[b] += usize::from(*s);
        }
        let top = *all.iter().max().unwrap_or(&1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0f64..top.max(1.0))
            .map_err(err)?;
        chart.configure_mesh().x_desc("score").y_desc("candidates").label_style((FAMILY, 13)).draw().map_err(err)?;
        let bar = |counts: &[usize; BINS], style: ShapeStyle| {
            counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(move |(b, c)| {
                    let x0 = lo + b as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width, *c as f64)], style)
                })
                .collect::<Vec<_>>()
        };
        chart
            .draw_series(bar(&all, color(0).mix(0.45).filled()))
            .map_err(err)?
            .label("pool")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color(0).mix(0.45).filled()));
        chart
            .draw_series(bar(&sel, color(1).filled()))
            .map_err(err)?
            .label("selected")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color(1).filled()));
        if let Some(c) = self.cutoff() {
            chart
                .draw_series(LineSeries::new(vec![(c, 0.0), (c, top)], RED.stroke_width(2)))
                .map_err(err)?
                .label(format!("cut-off {c:.3}"))
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], RED.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 13))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)
    }
}

/// Pairwise Jaccard overlap of the methods' selections.
pub(crate) struct JaccardHeatmap {
    pub names: Vec<String>,
    /// Row-major `n × n`.
    pub values: Vec<f64>,
}

impl Figure for JaccardHeatmap {
    fn size(&self) -> (u32, u32) {
        let n = self.names.len() as u32;
        (260 + 64 * n, 150 + 64 * n)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> R {
        let n = self.names.len();
        let mut chart = ChartBuilder::on(root)
            .caption("Overlap of selections (Jaccard)", (FAMILY, 20))
            .margin(12)
            .x_label_area_size(80)
            .y_label_area_size(90)
            // An i32 range includes its end: 0..=n-1 gives the n cells.
            .build_cartesian_2d((0..n as i32 - 1).into_segmented(), (0..n as i32 - 1).into_segmented())
            .map_err(err)?;
        let (cols, rows) = (self.names.clone(), self.names.clone());
        // Row i is drawn at height n-1-i, so the first method is on top.
        let x_label = move |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(i) => cols.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        let y_label = move |v: &SegmentValue<i32>| match v {
            SegmentValue::CenterOf(y) => rows.get(n - 1 - *y as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .label_style((FAMILY, 13))
            .draw()
            .map_err(err)?;
        for i in 0..n {
            for j in 0..n {
                let v = self.values[i * n + j].clamp(0.0, 1.0);
                let shade = (255.0 * (1.0 - v)) as u8;
                let (x, y) = (j as i32, (n - 1 - i) as i32);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [
                            (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                            (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                        ],
                        RGBColor(shade, shade, 255).filled(),
                    )))
                    .map_err(err)?;
                let ink = if v > 0.55 { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{v:.2}"),
                        (SegmentValue::CenterOf(x), SegmentValue::CenterOf(y)),
                        (FAMILY, 13).into_font().color(&ink).pos(text_center()),
                    )))
                    .map_err(err)?;
            }
        }
        Ok(())
    }
}

fn text_center() -> plotters::style::text_anchor::Pos {
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    Pos::new(HPos::Center, VPos::Center)
}

/// The pool on its first two principal components, coloured by task, selected points ringed.
pub(crate) struct PcaMap {
    pub title: String,
    pub points: Vec<(f64, f64)>,
    pub tasks: Vec<String>,
    pub selected: Vec<bool>,
}

impl Figure for PcaMap {
    fn size(&self) -> (u32, u32) {
        (760, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> R {
        let (x0, x1) = range(self.points.iter().map(|p| p.0));
        let (y0, y1) = range(self.points.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart.configure_mesh().x_desc("PC 1").y_desc("PC 2").label_style((FAMILY, 13)).draw().map_err(err)?;
        let mut kinds: Vec<&str> = self.tasks.iter().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds.dedup();
        for (k, kind) in kinds.iter().enumerate() {
            let pts: Vec<(f64, f64)> =
                self.points.iter().zip(&self.tasks).filter(|(_, t)| t.as_str() == *kind).map(|(p, _)| *p).collect();
            let c = color(k);
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(err)?
                .label(*kind)
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
        }
        let sel: Vec<(f64, f64)> =
            self.points.iter().zip(&self.selected).filter(|(_, s)| **s).map(|(p, _)| *p).collect();
        chart
            .draw_series(sel.into_iter().map(|p| Circle::new(p, 6, BLACK.stroke_width(2))))
            .map_err(err)?
            .label("selected")
            .legend(|(x, y)| Circle::new((x + 6, y), 5, BLACK.stroke_width(2)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)
    }
}

/// One bar per arm (mean over seeds) with ± one standard deviation.
pub(crate) struct EvalBars {
    pub title: String,
    pub metric: String,
    pub arms: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// The bar drawn in the reference colour (random, or the whole pool).
    pub reference: Option<String>,
}

impl Figure for EvalBars {
    fn size(&self) -> (u32, u32) {
        (160 + 90 * self.arms.len() as u32, 440)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> R {
        let n = self.arms.len();
        let hi = self.mean.iter().zip(&self.std).map(|(m, s)| m + s).fold(0f64, f64::max) * 1.15;
        let lo = self.mean.iter().zip(&self.std).map(|(m, s)| m - s).fold(0f64, f64::min);
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n as i32 - 1).into_segmented(), lo..hi.max(1e-9))
            .map_err(err)?;
        let names = self.arms.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&move |v| match v {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_desc(self.metric.as_str())
            .label_style((FAMILY, 13))
            .draw()
            .map_err(err)?;
        for i in 0..n {
            let c = if self.reference.as_deref() == Some(self.arms[i].as_str()) { color(7) } else { color(0) };
            let mut bar = Rectangle::new(
                [(SegmentValue::Exact(i as i32), 0.0), (SegmentValue::Exact(i as i32 + 1), self.mean[i])],
                c.mix(0.8).filled(),
            );
            bar.set_margin(0, 0, 12, 12);
            chart.draw_series(std::iter::once(bar)).map_err(err)?;
            chart
                .draw_series(std::iter::once(ErrorBar::new_vertical(
                    SegmentValue::CenterOf(i as i32),
                    self.mean[i] - self.std[i],
                    self.mean[i],
                    self.mean[i] + self.std[i],
                    BLACK.stroke_width(2),
                    14,
                )))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// TIF's two proxies per pair, the bands of each, and the pairs the fusion kept.
pub(crate) struct TifScatter {
    pub lossdiff: Vec<f64>,
    pub irm: Vec<f64>,
    pub kept: Vec<bool>,
    pub lossdiff_band: Option<(f64, f64)>,
    pub irm_band: Option<(f64, f64)>,
}

impl Figure for TifScatter {
    fn size(&self) -> (u32, u32) {
        (720, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> R {
        let (x0, x1) = range(self.lossdiff.iter().copied());
        let (y0, y1) = range(self.irm.iter().copied());
        let mut chart = ChartBuilder::on(root)
            .caption("TIF proxies: LossDiff vs IRM", (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("LossDiff  ℓ(θ) − ℓ(θ_val)")
            .y_desc("IRM (implicit reward margin)")
            .label_style((FAMILY, 13))
            .draw()
            .map_err(err)?;
        for (keep, c, name) in [(false, color(7), "dropped"), (true, color(2), "kept by fusion")] {
            let pts: Vec<(f64, f64)> = (0..self.lossdiff.len())
                .filter(|&i| self.kept[i] == keep)
                .map(|i| (self.lossdiff[i], self.irm[i]))
                .collect();
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
                .map_err(err)?
                .label(name)
                .legend(move |(x, y)| Circle::new((x + 6, y), 4, c.filled()));
        }
        let band_style = RED.mix(0.8).stroke_width(1);
        if let Some((a, b)) = self.lossdiff_band {
            for v in [a, b] {
                chart.draw_series(LineSeries::new(vec![(v, y0), (v, y1)], band_style)).map_err(err)?;
            }
        }
        if let Some((a, b)) = self.irm_band {
            for v in [a, b] {
                chart.draw_series(LineSeries::new(vec![(x0, v), (x1, v)], band_style)).map_err(err)?;
            }
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)
    }
}
