//! Training curves as PNG files: a model's `metric_values` drawn with plotters into a pixel
//! buffer and encoded by `image`, so no system font or graphics library is needed (the font,
//! DejaVu Sans, is compiled in).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use vigil_core::{Error, Result};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse; if it did not, labels would be missing
        // but the curve still drawn.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_error(e: impl std::fmt::Display) -> Error {
    Error::io("drawing a plot", std::io::Error::other(e.to_string()))
}

/// Draws curves (name, one value per validation) on one chart and writes it as a PNG of
/// `width` x `height` pixels.
pub fn curves(
    title: &str,
    x_label: &str,
    series: &[(&str, &[f64])],
    path: &Path,
    (width, height): (u32, u32),
) -> Result<()> {
    register_font();
    let points = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    if points == 0 {
        return Err(plot_error(format!("nothing to plot for {title}")));
    }
    let values = series.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let mut buffer = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(1f64..(points.max(2) as f64), (lo - pad)..(hi + pad))
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc("value")
            .draw()
            .map_err(plot_error)?;
        let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (i, (name, values)) in series.iter().enumerate() {
            let color = palette[i % palette.len()];
            chart
                .draw_series(LineSeries::new(
                    values.iter().enumerate().map(|(x, y)| (x as f64 + 1.0, *y)),
                    color.stroke_width(2),
                ))
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .map(|(x, y)| Circle::new((x as f64 + 1.0, *y), 3, color.filled())),
                )
                .map_err(plot_error)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    let image = image::RgbImage::from_raw(width, height, buffer)
        .ok_or_else(|| plot_error("the pixel buffer has the wrong size"))?;
    image
        .save(path)
        .map_err(|e| plot_error(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_curve_is_drawn_into_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acc.png");
        super::curves(
            "my_valid/acc",
            "validation",
            &[("acc", &[0.2, 0.8, 0.9, 0.95])],
            &path,
            (640, 400),
        )
        .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (640, 400));
        // The curve is blue; white background and black axes are not.
        let blue = img.pixels().filter(|p| p.0 == [0, 0, 255]).count();
        assert!(blue > 200, "{blue} blue pixels");
        assert!(super::curves("t", "x", &[("none", &[])], &path, (64, 64)).is_err());
    }
}
