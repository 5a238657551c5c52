//! The benchmark's plot: the client write outage of every run, per scenario, primaryd against
//! ExaBGP, as a PNG (plotters' bitmap backend).
//!
//! plotters draws text with a system font (its `ttf` feature, through fontconfig) or a font
//! registered at run time; neither is wanted in a lab tool that must build and run anywhere. So
//! plotters is built without a font feature, and the drawing backend here renders text itself
//! with embedded-graphics' built-in bitmap fonts (X11's misc-fixed, compiled into the binary).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::Path;

use anyhow::{anyhow, Result};
use embedded_graphics::mono_font::{ascii, MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, Size};
use embedded_graphics::text::{Baseline, Text as EgText};
use embedded_graphics::{Drawable as _, Pixel};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

/// A drawing backend that delegates to `B` and draws text with a built-in bitmap font.
pub struct FixedFontBackend<B: DrawingBackend>(pub B);

/// The font for a requested size (pixels) and the integer scale to draw it at.
fn font_for(size: f64) -> (&'static MonoFont<'static>, i32) {
    match size {
        s if s < 13.0 => (&ascii::FONT_6X10, 1),
        s if s < 16.0 => (&ascii::FONT_7X13, 1),
        s if s < 19.0 => (&ascii::FONT_9X15, 1),
        s if s < 34.0 => (&ascii::FONT_10X20, 1),
        _ => (&ascii::FONT_10X20, 2),
    }
}

/// The lit pixels of a text at the origin (top left), and the text's size.
fn rasterize(text: &str, size: f64) -> (Vec<(i32, i32)>, (u32, u32), i32) {
    struct Collect(Vec<(i32, i32)>);
    impl OriginDimensions for Collect {
        fn size(&self) -> Size {
            Size::new(u16::MAX as u32, u16::MAX as u32)
        }
    }
    impl DrawTarget for Collect {
        type Color = BinaryColor;
        type Error = Infallible;
        fn draw_iter<I: IntoIterator<Item = Pixel<BinaryColor>>>(
            &mut self,
            pixels: I,
        ) -> Result<(), Infallible> {
            for Pixel(p, c) in pixels {
                if c == BinaryColor::On {
                    self.0.push((p.x, p.y));
                }
            }
            Ok(())
        }
    }
    let (font, scale) = font_for(size);
    let mut c = Collect(Vec::new());
    let style = MonoTextStyle::new(font, BinaryColor::On);
    let _ = EgText::with_baseline(text, Point::zero(), style, Baseline::Top).draw(&mut c);
    let n = text.chars().count() as u32;
    let w = if n == 0 {
        0
    } else {
        n * font.character_size.width + (n - 1) * font.character_spacing
    };
    let h = font.character_size.height;
    (c.0, (w * scale as u32, h * scale as u32), scale)
}

impl<B: DrawingBackend> DrawingBackend for FixedFontBackend<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.present()
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_pixel(point, color)
    }
    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: plotters_backend::BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: plotters_backend::BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let (pixels, (w, h), scale) = rasterize(text, style.size());
        let (w, h) = (w as i32, h as i32);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -w,
            HPos::Center => -w / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -h / 2,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let (cw, ch) = self.get_size();
        for (x, y) in pixels {
            for sx in 0..scale {
                for sy in 0..scale {
                    let (tx, ty) = trans.transform(x * scale + sx + dx, y * scale + sy + dy);
                    let (px, py) = (pos.0 + tx, pos.1 + ty);
                    if px >= 0 && py >= 0 && px < cw as i32 && py < ch as i32 {
                        self.0.draw_pixel((px, py), color)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        let (_, size, _) = rasterize(text, style.size());
        Ok(size)
    }
}

/// One group of the plot: a speaker's outages in one scenario, in ms.
pub struct Series<'a> {
    pub scenario: &'a str,
    pub speaker: &'a str,
    pub values: Vec<f64>,
}

/// A series' colour: blue for primaryd, orange and red for ExaBGP; darker for the `pool`
/// client than for `cli` (the retry writer's series are named by the speaker alone).
fn color_of(series: &str) -> RGBColor {
    match series {
        "primaryd" | "primaryd/cli" => RGBColor(31, 119, 180),
        "primaryd/pool" => RGBColor(20, 70, 120),
        "exabgp-fast" | "exabgp-fast/cli" => RGBColor(230, 126, 34),
        "exabgp-fast/pool" => RGBColor(160, 80, 10),
        "exabgp-default" | "exabgp-default/cli" => RGBColor(192, 57, 43),
        "exabgp-default/pool" => RGBColor(120, 30, 25),
        _ => RGBColor(110, 110, 110),
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    crate::stats::percentile(sorted, q).unwrap_or(f64::NAN)
}

fn ms_label(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} s", v / 1000.0)
    } else {
        format!("{v} ms")
    }
}

type Backend<'a> = FixedFontBackend<BitMapBackend<'a>>;
type Chart<'a, 'b> = ChartContext<'a, Backend<'b>, Cartesian2d<RangedCoordf64, LogCoord<f64>>>;

fn drawing_error(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing {}: {e}", path.display())
}

/// The y range: decades around every positive value.
fn y_range(series: &[Series]) -> (f64, f64) {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(0.0, f64::max);
    let (mut y0, mut y1) = (10.0f64, 100.0f64);
    while y0 > 1.0 && y0 > lo {
        y0 /= 10.0;
    }
    while y0 * 10.0 < lo {
        y0 *= 10.0;
    }
    while y1 < hi {
        y1 *= 10.0;
    }
    (y0, y1)
}

/// The title, the key to the marks and the legend, in the band above the chart.
fn draw_title(
    area: &DrawingArea<Backend, plotters::coord::Shift>,
    width: u32,
    title: &str,
    speakers: &[&str],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let font = |size: i32, c: RGBColor| ("sans-serif", size).into_font().color(&c);
    area.draw(&Text::new(title.to_string(), (20, 14), font(20, BLACK)))
        .map_err(e)?;
    let key = "dots: runs; box: p25 to p75; thick bar: median (ms beside it); whiskers: min to max";
    area.draw(&Text::new(
        key.to_string(),
        (20, 36),
        font(13, RGBColor(90, 90, 90)),
    ))
    .map_err(e)?;
    let mut x = width as i32 - 20 - speakers.len() as i32 * 170;
    for sp in speakers {
        let c = color_of(sp);
        area.draw(&Rectangle::new([(x, 36), (x + 14, 48)], c.filled()))
            .map_err(e)?;
        area.draw(&Text::new(sp.to_string(), (x + 20, 35), font(15, BLACK)))
            .map_err(e)?;
        x += 170;
    }
    Ok(())
}

/// One series' box, whiskers, dots and median label, centred at `center`.
fn draw_box(chart: &mut Chart, s: &Series, center: f64, half: f64) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let mut v: Vec<f64> = s.values.iter().copied().filter(|v| *v > 0.0).collect();
    if v.is_empty() {
        return Ok(());
    }
    v.sort_by(f64::total_cmp);
    let c = color_of(s.speaker);
    let (q1, med, q3) = (quantile(&v, 0.25), quantile(&v, 0.5), quantile(&v, 0.75));
    let (min, max) = (v[0], v[v.len() - 1]);
    let corners = [(center - half, q1), (center + half, q3)];
    chart
        .draw_series([
            Rectangle::new(corners, c.mix(0.18).filled()),
            Rectangle::new(corners, c.stroke_width(1)),
        ])
        .map_err(e)?;
    chart
        .draw_series([
            PathElement::new(vec![(center, min), (center, q1)], c.stroke_width(1)),
            PathElement::new(vec![(center, q3), (center, max)], c.stroke_width(1)),
            PathElement::new(
                vec![(center - half, med), (center + half, med)],
                c.stroke_width(3),
            ),
        ])
        .map_err(e)?;
    // The runs, spread across the slot in a fixed pattern.
    let m = v.len().max(1);
    let dots = s
        .values
        .iter()
        .filter(|x| **x > 0.0)
        .enumerate()
        .map(|(r, x)| {
            let off = ((r * 7) % m) as f64 / m as f64 - 0.5;
            Circle::new((center + off * half * 1.6, *x), 3, c.filled())
        });
    chart.draw_series(dots).map_err(e)?;
    // The median's value beside the box.
    let pos = plotters::style::text_anchor::Pos::new(HPos::Left, VPos::Bottom);
    let label = Text::new(
        format!("{med:.0}"),
        (center + half, med),
        ("sans-serif", 12).into_font().color(&BLACK).pos(pos),
    );
    chart.draw_series(std::iter::once(label)).map_err(e)?;
    Ok(())
}

/// A scenario's name under its column, and the line between columns.
fn draw_column(
    chart: &mut Chart,
    i: usize,
    name: &str,
    (y0, y1): (f64, f64),
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    let pos = plotters::style::text_anchor::Pos::new(HPos::Center, VPos::Top);
    let font = ("sans-serif", 16).into_font().color(&BLACK).pos(pos);
    let text = Text::new(name.to_string(), (i as f64 + 0.5, y0), font);
    chart.draw_series(std::iter::once(text)).map_err(e)?;
    if i > 0 {
        let line = PathElement::new(
            vec![(i as f64, y0), (i as f64, y1)],
            RGBColor(200, 200, 200),
        );
        chart.draw_series(std::iter::once(line)).map_err(e)?;
    }
    Ok(())
}

/// Draws every value (an outage, a wait) as a dot, with a box from p25 to p75, a bar at the
/// median and a whisker to the extremes, on a log scale named `y_desc`; scenarios left to
/// right, series side by side.
pub fn values_png(
    path: &Path,
    title: &str,
    y_desc: &str,
    scenarios: &[&str],
    speakers: &[&str],
    series: &[Series],
) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| drawing_error(path, e);
    let (w, h) = (1200u32, 680u32);
    let root = FixedFontBackend(BitMapBackend::new(path, (w, h))).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (y0, y1) = y_range(series);
    let (title_area, rest) = root.split_vertically(56);
    draw_title(&title_area, w, title, speakers).map_err(|e| err(&e))?;
    let n = scenarios.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&rest)
        .margin_left(20)
        .margin_right(30)
        .margin_bottom(10)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..n, (y0..y1).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(format!("{y_desc} (log scale)"))
        .y_label_formatter(&|v| ms_label(*v))
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 15))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(|e| err(&e))?;
    let slot = 0.8 / speakers.len().max(1) as f64;
    for (i, sc) in scenarios.iter().enumerate() {
        draw_column(&mut chart, i, sc, (y0, y1)).map_err(|e| err(&e))?;
        for (j, sp) in speakers.iter().enumerate() {
            if let Some(s) = series
                .iter()
                .find(|s| s.scenario == *sc && s.speaker == *sp)
            {
                let center = i as f64 + 0.1 + slot * (j as f64 + 0.5);
                draw_box(&mut chart, s, center, slot * 0.35).map_err(|e| err(&e))?;
            }
        }
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

/// Series from samples: (scenario, speaker) -> outages.
pub fn outage_series<'a>(
    samples: impl Iterator<Item = (&'a str, &'a str, Option<f64>)>,
) -> BTreeMap<(String, String), Vec<f64>> {
    let mut m: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for (sc, sp, v) in samples {
        if let Some(v) = v {
            m.entry((sc.to_string(), sp.to_string()))
                .or_default()
                .push(v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_without_system_fonts() {
        let (px, (w, h), scale) = rasterize("kill 12 ms", 15.0);
        assert_eq!((w, h, scale), (10 * 7, 13, 1));
        assert!(px.len() > 40, "{px:?}");
        assert!(px
            .iter()
            .all(|(x, y)| *x >= 0 && *y >= 0 && *x < w as i32 && *y < h as i32));
    }

    #[test]
    fn a_plot_is_written() {
        let dir = std::env::temp_dir().join(format!("plab-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("p.png");
        let series = vec![
            Series {
                scenario: "kill",
                speaker: "primaryd",
                values: vec![300.0, 320.0, 350.0],
            },
            Series {
                scenario: "kill",
                speaker: "exabgp-fast",
                values: vec![2500.0, 3100.0],
            },
        ];
        values_png(
            &png,
            "test",
            "client write outage",
            &["kill", "hang"],
            &["primaryd", "exabgp-fast"],
            &series,
        )
        .unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
