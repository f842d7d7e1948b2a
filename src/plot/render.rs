//! One drawing, two files: every figure is drawn once onto a bitmap (saved as PNG through the
//! `image` crate) and once onto an SVG string. Text uses the embedded DejaVu Sans, so a plot looks
//! the same on every machine and needs no system fonts.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::util::write_atomic;

/// DejaVu Sans (Bitstream Vera licence, see assets/fonts/DejaVuSans-LICENSE).
#[cfg(not(target_family = "wasm"))]
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The font family figures name.
pub(crate) const FAMILY: &str = "sans-serif";

// The browser build draws its figures in the page: plotters has no embedded-font text there.
#[cfg(target_family = "wasm")]
fn register_font() {}

#[cfg(not(target_family = "wasm"))]
fn register_font() {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bytes are a valid TrueType file compiled into the binary.
            plotters::style::register_font(FAMILY, style, FONT).unwrap_or_else(|_| panic!("embedded font is valid"));
        }
    });
}

/// A figure that can draw itself onto any plotters backend.
pub(crate) trait Figure {
    /// Pixel size (width, height).
    fn size(&self) -> (u32, u32);
    /// Draws onto `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

/// Turns a plotters error into text.
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Writes `stem.png` and `stem.svg`; returns both paths.
pub(crate) fn save(fig: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let (w, h) = fig.size();
    let fail = |path: &Path, m: String| Error::format(path, format!("drawing failed: {m}"));
    let png = stem.with_extension("png");
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&png, err(e)))?;
        fig.draw(&root).map_err(|m| fail(&png, m))?;
        root.present().map_err(|e| fail(&png, err(e)))?;
    }
    let mut bytes = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut bytes),
        &buf,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| fail(&png, e.to_string()))?;
    write_atomic(&png, &bytes)?;

    let svg = stem.with_extension("svg");
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&svg, err(e)))?;
        fig.draw(&root).map_err(|m| fail(&svg, m))?;
        root.present().map_err(|e| fail(&svg, err(e)))?;
    }
    write_atomic(&svg, text.as_bytes())?;
    Ok(vec![png, svg])
}

/// A colour per category, stable across figures.
pub(crate) fn color(i: usize) -> RGBColor {
    const C: &[(u8, u8, u8)] = &[
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (0, 0, 128),
        (128, 128, 0),
    ];
    let (r, g, b) = C[i % C.len()];
    RGBColor(r, g, b)
}
