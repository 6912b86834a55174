//! Tabular PDF documents (the daily protocol register, demo attachments): a heading, a
//! column header and rows, paged as needed. They are set with the engine of [`pdfa`], in
//! DejaVu Sans embedded in the file; the register is PDF/A-2b.

use chrono::{DateTime, FixedOffset};

use crate::pdfa::{self, DocumentInfo, Mark, PdfError, Sheet, Weight};

/// A line of text placed in columns: (x position in points, text, maximum characters).
/// A cell is also cut to the room before the next column.
pub type Row = Vec<(f32, String, usize)>;

/// A page layout.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Page width in points.
    pub width: f32,
    /// Page height in points.
    pub height: f32,
    /// Font size of rows.
    pub font_size: f32,
}

/// A4 landscape, for tables.
pub const A4_LANDSCAPE: Layout = Layout {
    width: 842.0,
    height: 595.0,
    font_size: 8.0,
};
/// A4 portrait, for letters and forms.
pub const A4_PORTRAIT: Layout = Layout {
    width: 595.0,
    height: 842.0,
    font_size: 11.0,
};

const MARGIN: f32 = 40.0;
const TITLE_SIZE: f32 = 14.0;
const SUBTITLE_SIZE: f32 = 9.0;
const FOOTER_SIZE: f32 = 8.0;
/// Space between a column's text and the next column.
const COLUMN_GAP: f32 = 4.0;
/// DejaVu Sans rises 0.93 em above the baseline and falls 0.24 em below it.
const ASCENT: f32 = 0.93;
const DESCENT: f32 = 0.24;

/// Where the parts of a page go, from the top of the page (baselines, in points).
#[derive(Debug, Clone, PartialEq)]
struct Frame {
    title: f32,
    subtitles: Vec<f32>,
    header: f32,
    rule: f32,
    first_row: f32,
    line: f32,
    rows_per_page: usize,
    footer: f32,
}

impl Frame {
    /// Stacks title, subtitle lines, column header and its rule, each below the lowest point
    /// of the one above, so that nothing overlaps; rows start one line below the rule.
    fn new(layout: Layout, subtitle_lines: usize) -> Frame {
        let line = layout.font_size * 1.5;
        let title = MARGIN + TITLE_SIZE * ASCENT;
        let mut y = title + TITLE_SIZE * DESCENT;
        let subtitles = (0..subtitle_lines)
            .map(|_| {
                y += SUBTITLE_SIZE * 1.3;
                y
            })
            .collect();
        let header = y + SUBTITLE_SIZE * DESCENT + layout.font_size * 2.0;
        let rule = header + layout.font_size * DESCENT + 2.0;
        let first_row = rule + 3.0 + layout.font_size * ASCENT;
        let footer = layout.height - MARGIN / 2.0;
        // The last row must stay clear of the footer.
        let last_allowed = footer - FOOTER_SIZE * 2.0;
        let rows_per_page = (((last_allowed - first_row) / line).floor() as usize + 1).max(1);
        Frame {
            title,
            subtitles,
            header,
            rule,
            first_row,
            line,
            rows_per_page,
            footer,
        }
    }
}

fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The cells of `row` as text marks at `baseline`, each cut to `max` characters and to the
/// room before the next column (or the right margin).
fn cells(row: &Row, baseline: f32, size: f32, weight: Weight, layout: Layout) -> Vec<Mark> {
    let mut starts: Vec<f32> = row.iter().map(|(x, _, _)| *x).collect();
    starts.sort_by(f32::total_cmp);
    row.iter()
        .filter(|(_, text, _)| !text.is_empty())
        .map(|(x, text, max)| {
            let end = starts
                .iter()
                .copied()
                .find(|s| s > x)
                .map_or(layout.width - MARGIN, |next| next - COLUMN_GAP);
            Mark::Text {
                x: *x,
                baseline,
                size,
                weight,
                text: pdfa::fit_width(&clip(text, *max), weight, size, end - x),
            }
        })
        .collect()
}

/// The pages of a titled table; `subtitle` may have several lines (separated by '\n').
fn sheets(title: &str, subtitle: &str, header: &Row, rows: &[Row], layout: Layout) -> Vec<Sheet> {
    let subtitle_lines: Vec<&str> = subtitle.lines().collect();
    let frame = Frame::new(layout, subtitle_lines.len());
    let text_width = layout.width - 2.0 * MARGIN;
    let chunks: Vec<&[Row]> = if rows.is_empty() {
        vec![&[]]
    } else {
        rows.chunks(frame.rows_per_page).collect()
    };
    let total = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(index, chunk)| {
            let mut marks = vec![Mark::Text {
                x: MARGIN,
                baseline: frame.title,
                size: TITLE_SIZE,
                weight: Weight::Bold,
                text: pdfa::fit_width(title, Weight::Bold, TITLE_SIZE, text_width),
            }];
            for (line, baseline) in subtitle_lines.iter().zip(&frame.subtitles) {
                marks.push(Mark::Text {
                    x: MARGIN,
                    baseline: *baseline,
                    size: SUBTITLE_SIZE,
                    weight: Weight::Regular,
                    text: pdfa::fit_width(line, Weight::Regular, SUBTITLE_SIZE, text_width),
                });
            }
            marks.extend(cells(
                header,
                frame.header,
                layout.font_size,
                Weight::Bold,
                layout,
            ));
            marks.push(Mark::Rule {
                from: (MARGIN, frame.rule),
                to: (layout.width - MARGIN, frame.rule),
                width: 0.5,
            });
            for (k, row) in chunk.iter().enumerate() {
                let baseline = frame.first_row + k as f32 * frame.line;
                marks.extend(cells(
                    row,
                    baseline,
                    layout.font_size,
                    Weight::Regular,
                    layout,
                ));
            }
            let footer = format!("Pagina {} di {total}", index + 1);
            let footer_width = pdfa::text_width(&footer, Weight::Regular, FOOTER_SIZE);
            marks.push(Mark::Text {
                x: layout.width - MARGIN - footer_width,
                baseline: frame.footer,
                size: FOOTER_SIZE,
                weight: Weight::Regular,
                text: footer,
            });
            Sheet {
                width: layout.width,
                height: layout.height,
                marks,
            }
        })
        .collect()
}

/// Renders a titled document: a heading, a column header and rows, paged as needed, with
/// "Pagina N di M" at the foot of every page. A plain PDF with the font embedded.
pub fn render(
    title: &str,
    subtitle: &str,
    header: &Row,
    rows: &[Row],
    layout: Layout,
) -> Result<Vec<u8>, PdfError> {
    let info = DocumentInfo {
        title,
        author: None,
        language: "it",
        created: None,
    };
    pdfa::write_pdf(&info, &sheets(title, subtitle, header, rows, layout))
}

/// Like [`render`], as a PDF/A-2b document for conservation, made at `created` by `author`.
pub fn render_archival(
    title: &str,
    subtitle: &str,
    header: &Row,
    rows: &[Row],
    layout: Layout,
    author: &str,
    created: DateTime<FixedOffset>,
) -> Result<Vec<u8>, PdfError> {
    let info = DocumentInfo {
        title,
        author: Some(author),
        language: "it",
        created: Some(created),
    };
    pdfa::write_pdf(&info, &sheets(title, subtitle, header, rows, layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vertical extent (top, bottom) of a text mark, from its size and baseline.
    fn extent(mark: &Mark) -> Option<(f32, f32)> {
        match mark {
            Mark::Text { baseline, size, .. } => {
                Some((baseline - size * ASCENT, baseline + size * DESCENT))
            }
            Mark::Rule { .. } | Mark::Filled { .. } | Mark::Outline { .. } => None,
        }
    }

    #[test]
    fn the_header_block_and_the_first_row_do_not_overlap() {
        for layout in [A4_LANDSCAPE, A4_PORTRAIT] {
            let header: Row = vec![(40.0, "Numero".into(), 20), (100.0, "Oggetto".into(), 60)];
            let rows: Vec<Row> = (0..3)
                .map(|i| vec![(40.0, format!("Città n. {i}"), 30), (100.0, "x".into(), 5)])
                .collect();
            let pages = sheets(
                "Registro",
                "giornaliero\nseconda riga",
                &header,
                &rows,
                layout,
            );
            let marks = &pages[0].marks;
            // Title, two subtitle lines, the column header, the rule, then the rows.
            let bands: Vec<(f32, f32)> = marks.iter().filter_map(extent).collect();
            let rule = marks
                .iter()
                .find_map(|m| match m {
                    Mark::Rule { from, .. } => Some(from.1),
                    _ => None,
                })
                .unwrap();
            let (title, sub1, sub2, header_band) = (bands[0], bands[1], bands[2], bands[3]);
            let first_row = bands[5];
            assert!(title.1 <= sub1.0 && sub1.1 <= sub2.0, "{bands:?}");
            assert!(sub2.1 <= header_band.0, "{bands:?}");
            assert!(
                header_band.1 < rule && rule < first_row.0,
                "{bands:?} rule {rule}"
            );
            // Rows do not overlap each other, and the last one clears the footer.
            let frame = Frame::new(layout, 2);
            assert!(frame.line >= layout.font_size * (ASCENT + DESCENT));
            let last = frame.first_row + (frame.rows_per_page - 1) as f32 * frame.line;
            assert!(last + layout.font_size * DESCENT < frame.footer - FOOTER_SIZE * ASCENT);
        }
    }

    #[test]
    fn rows_are_paged_and_cut_to_their_columns() {
        let header: Row = vec![(40.0, "Numero".into(), 20), (100.0, "Oggetto".into(), 90)];
        let rows: Vec<Row> = (0..200)
            .map(|i| {
                vec![
                    (40.0, format!("{i:07}/2026 numero lunghissimo"), 40),
                    (100.0, "Città".into(), 30),
                ]
            })
            .collect();
        let pages = sheets("Registro", "giornaliero", &header, &rows, A4_LANDSCAPE);
        let per_page = Frame::new(A4_LANDSCAPE, 1).rows_per_page;
        assert_eq!(pages.len(), 200usize.div_ceil(per_page));
        let Some(Mark::Text { text, .. }) = pages[0]
            .marks
            .iter()
            .find(|m| matches!(m, Mark::Text { text, .. } if text.starts_with("0000000")))
        else {
            panic!("no first row");
        };
        assert!(text.ends_with('…'), "{text}");
        assert!(pdfa::text_width(text, Weight::Regular, 8.0) <= 100.0 - 40.0 - COLUMN_GAP);
        assert_eq!(clip("abcdef", 4), "abc…");
        assert!(
            pages
                .last()
                .unwrap()
                .marks
                .iter()
                .any(|m| matches!(m, Mark::Text { text, .. } if text == &format!("Pagina {} di {}", pages.len(), pages.len())))
        );
    }
}
