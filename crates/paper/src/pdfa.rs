//! PDF/A documents with embedded fonts, for the papers the office keeps: the daily protocol
//! register first (letters, permits and cover sheets can move here from the Helvetica
//! writer, since they are drawn in the same [page model](crate::page)).
//!
//! A document is described as pages of [`Mark`]s (text runs, rules and rectangles, in
//! points from the top-left corner) and written by `krilla`, which embeds the glyphs used of DejaVu Sans
//! (subset, with a ToUnicode map so the text can be extracted), writes the XMP metadata with
//! the PDF/A identification, the document information consistent with it, the sRGB output
//! intent and the file ID, and checks the result against PDF/A-2b before handing it out.
//! The fonts are compiled in, so the server needs no font installed.

use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use krilla::Document;
use krilla::color::rgb;
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};

pub use crate::page::{Mark, Rect, Sheet, Weight};

/// DejaVu Sans 2.37 (Bitstream Vera licence; see `fonts/LICENSE-DejaVu.txt`).
static REGULAR_TTF: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
/// DejaVu Sans Bold 2.37.
static BOLD_TTF: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");

/// The DejaVu face of a weight.
fn font_bytes(weight: Weight) -> &'static [u8] {
    match weight {
        Weight::Regular => REGULAR_TTF,
        Weight::Bold => BOLD_TTF,
    }
}

/// What the document says about itself (document information and XMP metadata).
#[derive(Clone, Debug)]
pub struct DocumentInfo<'a> {
    /// The title.
    pub title: &'a str,
    /// The office that issues it, if any.
    pub author: Option<&'a str>,
    /// The language of the text (BCP 47, e.g. "it").
    pub language: &'a str,
    /// When the document was made. PDF/A requires it: with `None` the document is a plain
    /// PDF (fonts still embedded).
    pub created: Option<DateTime<FixedOffset>>,
}

/// Why a document could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// A page has a size PDF cannot have.
    #[error("a page of {0} x {1} points cannot be written")]
    PageSize(f32, f32),
    /// The compiled-in font could not be read (a build problem).
    #[error("the embedded font cannot be read")]
    Font,
    /// The writer refused the document (for PDF/A: a rule of the standard it would break).
    #[error("the PDF could not be written: {0}")]
    Writer(String),
}

/// Writes `sheets` as one PDF: PDF/A-2b when `info.created` is given, else a plain PDF.
pub fn write_pdf(info: &DocumentInfo<'_>, sheets: &[Sheet]) -> Result<Vec<u8>, PdfError> {
    let mut settings = krilla::SerializeSettings {
        enable_tagging: false,
        ..Default::default()
    };
    if info.created.is_some() {
        settings.configuration = ConfigurationBuilder::new()
            .with_archival_validator(Archival::A2_B)
            .finish()
            .map_err(|e| PdfError::Writer(format!("{e:?}")))?;
    }
    let mut document = Document::new_with(settings);
    let regular = Font::new(REGULAR_TTF.into(), 0).ok_or(PdfError::Font)?;
    let bold = Font::new(BOLD_TTF.into(), 0).ok_or(PdfError::Font)?;
    let black = rgb::Color::black();

    for sheet in sheets {
        let size = PageSettings::from_wh(sheet.width, sheet.height)
            .ok_or(PdfError::PageSize(sheet.width, sheet.height))?;
        let mut page = document.start_page_with(size);
        let mut surface = page.surface();
        surface.set_fill(Some(Fill {
            paint: black.into(),
            ..Default::default()
        }));
        for mark in &sheet.marks {
            match mark {
                Mark::Text {
                    x,
                    baseline,
                    size,
                    weight,
                    text,
                } => {
                    let font = match weight {
                        Weight::Regular => regular.clone(),
                        Weight::Bold => bold.clone(),
                    };
                    let printable = printable(text, *weight);
                    surface.draw_text(
                        Point::from_xy(*x, *baseline),
                        font,
                        *size,
                        &printable,
                        false,
                        TextDirection::Auto,
                    );
                }
                Mark::Rule { from, to, width } => {
                    let mut path = PathBuilder::new();
                    path.move_to(from.0, from.1);
                    path.line_to(to.0, to.1);
                    stroke(&mut surface, path, *width);
                }
                Mark::Outline { rect, width } => {
                    let mut path = PathBuilder::new();
                    push_rect(&mut path, rect);
                    stroke(&mut surface, path, *width);
                }
                Mark::Filled { rects } => {
                    let mut path = PathBuilder::new();
                    for rect in rects {
                        push_rect(&mut path, rect);
                    }
                    if let Some(path) = path.finish() {
                        surface.draw_path(&path);
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }

    let mut metadata = Metadata::new()
        .title(info.title.to_owned())
        .language(info.language.to_owned())
        .producer("Sportello".to_owned())
        .creator("Sportello".to_owned());
    if let Some(author) = info.author {
        metadata = metadata.authors(vec![author.to_owned()]);
    }
    if let Some(created) = info.created {
        metadata = metadata.creation_date(pdf_date(created));
    }
    document.set_metadata(metadata);
    document
        .finish()
        .map_err(|e| PdfError::Writer(format!("{e:?}")))
}

/// Strokes `path` in black, `width` points wide, leaving the fill black for the marks after.
fn stroke(surface: &mut krilla::surface::Surface<'_>, path: PathBuilder, width: f32) {
    let black = rgb::Color::black();
    if let Some(path) = path.finish() {
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke {
            paint: black.into(),
            width,
            ..Default::default()
        }));
        surface.draw_path(&path);
        surface.set_stroke(None);
        surface.set_fill(Some(Fill {
            paint: black.into(),
            ..Default::default()
        }));
    }
}

/// Adds `rect` to `path` as a closed sub-path.
fn push_rect(path: &mut PathBuilder, rect: &Rect) {
    path.move_to(rect.x, rect.top);
    path.line_to(rect.x + rect.width, rect.top);
    path.line_to(rect.x + rect.width, rect.top + rect.height);
    path.line_to(rect.x, rect.top + rect.height);
    path.close();
}

fn pdf_date(t: DateTime<FixedOffset>) -> krilla::metadata::DateTime {
    let offset_minutes = t.offset().local_minus_utc() / 60;
    krilla::metadata::DateTime::new(u16::try_from(t.year()).unwrap_or(0))
        .month(t.month() as u8)
        .day(t.day() as u8)
        .hour(t.hour() as u8)
        .minute(t.minute() as u8)
        .second(t.second().min(59) as u8)
        .utc_offset_hour((offset_minutes / 60) as i8)
        .utc_offset_minute((offset_minutes % 60).unsigned_abs() as u8)
}

/// `text` with what cannot be printed replaced: characters the font has no glyph for (a
/// PDF/A file may not show the .notdef glyph) become '?', control characters a space.
fn printable(text: &str, weight: Weight) -> String {
    let Ok(font) = FontRef::new(font_bytes(weight)) else {
        return text.to_owned();
    };
    let charmap = font.charmap();
    text.chars()
        .map(|c| {
            if c.is_control() {
                ' '
            } else if charmap.map(c).is_some() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The width of `text` set in `weight` at `size` points (advance widths, no kerning).
pub fn text_width(text: &str, weight: Weight, size: f32) -> f32 {
    let Ok(font) = FontRef::new(font_bytes(weight)) else {
        return 0.0;
    };
    let charmap = font.charmap();
    let metrics = font.glyph_metrics(Size::new(size), LocationRef::default());
    let fallback = charmap.map('?');
    text.chars()
        .filter_map(|c| charmap.map(c).or(fallback))
        .filter_map(|g| metrics.advance_width(g))
        .sum()
}

/// `text` cut to fit in `max_width` points, ending with an ellipsis when it was cut.
pub fn fit_width(text: &str, weight: Weight, size: f32, max_width: f32) -> String {
    if text_width(text, weight, size) <= max_width {
        return text.to_owned();
    }
    let ellipsis = text_width("…", weight, size);
    let mut out = String::new();
    let mut width = 0.0;
    for c in text.chars() {
        let w = text_width(c.encode_utf8(&mut [0; 4]), weight, size);
        if width + w + ellipsis > max_width {
            break;
        }
        width += w;
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(text: &str) -> Sheet {
        Sheet {
            width: 595.0,
            height: 842.0,
            marks: vec![
                Mark::Text {
                    x: 40.0,
                    baseline: 60.0,
                    size: 12.0,
                    weight: Weight::Bold,
                    text: text.to_owned(),
                },
                Mark::Rule {
                    from: (40.0, 66.0),
                    to: (555.0, 66.0),
                    width: 0.5,
                },
            ],
        }
    }

    fn info(created: Option<DateTime<FixedOffset>>) -> DocumentInfo<'static> {
        DocumentInfo {
            title: "Registro",
            author: Some("Comune"),
            language: "it",
            created,
        }
    }

    #[test]
    fn an_archival_document_declares_pdfa_2b_and_embeds_a_subset_font() {
        let created = DateTime::parse_from_rfc3339("2026-11-27T08:30:00+01:00").unwrap();
        let pdf = write_pdf(&info(Some(created)), &[sheet("Città ✓ 日本")]).unwrap();
        let raw = String::from_utf8_lossy(&pdf);
        assert!(
            raw.contains("<pdfaid:part>2</pdfaid:part>"),
            "no pdfaid part"
        );
        assert!(raw.contains("<pdfaid:conformance>B</pdfaid:conformance>"));
        assert!(raw.contains("/OutputIntents"), "no output intent");
        assert!(raw.contains("/FontFile2"), "font not embedded");
        assert!(raw.contains("DejaVuSans-Bold"), "not the DejaVu font");
        // Subset: far smaller than the 700 KB font.
        assert!(pdf.len() < 100_000, "{} bytes", pdf.len());
        // A plain document has no PDF/A identification, but still its own font.
        let plain = write_pdf(&info(None), &[sheet("Città")]).unwrap();
        let raw = String::from_utf8_lossy(&plain);
        assert!(!raw.contains("pdfaid:part"));
        assert!(raw.contains("/FontFile2"));
    }

    #[test]
    fn text_is_measured_and_fitted() {
        let w = text_width("Registro", Weight::Regular, 10.0);
        assert!((30.0..60.0).contains(&w), "{w}");
        assert!(text_width("Registro", Weight::Bold, 10.0) > w);
        assert_eq!(
            fit_width("Registro", Weight::Regular, 10.0, 100.0),
            "Registro"
        );
        let cut = fit_width("Registro giornaliero", Weight::Regular, 10.0, 40.0);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(text_width(&cut, Weight::Regular, 10.0) <= 40.0, "{cut}");
        assert_eq!(printable("a\tb日", Weight::Regular), "a b?");
    }
}
