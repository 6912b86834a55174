//! Small PDF documents (daily register, demo attachments) written with `pdf-writer`,
//! using the standard Helvetica font so no font files are needed.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// A line of text placed in columns: (x position in points, text, maximum characters).
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

/// Encodes text for a WinAnsi-encoded standard font: Latin-1 letters (all Italian accents)
/// map directly, a few typographic marks are translated, anything else becomes '?'.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        })
        .collect()
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

/// Renders a titled document: a heading, a column header and rows, paged as needed, with
/// "page N of M" at the foot of every page.
pub fn render(title: &str, subtitle: &str, header: &Row, rows: &[Row], layout: Layout) -> Vec<u8> {
    let margin = 40.0;
    let line = layout.font_size * 1.5;
    let first_row_y = layout.height - margin - 60.0;
    let per_page = (((first_row_y - margin - 20.0) / line).floor() as usize).max(1);
    let chunks: Vec<&[Row]> = if rows.is_empty() {
        vec![&[]]
    } else {
        rows.chunks(per_page).collect()
    };

    let mut pdf = Pdf::new();
    let catalog_id = Ref::new(1);
    let tree_id = Ref::new(2);
    let font_id = Ref::new(3);
    let bold_id = Ref::new(4);
    let info_id = Ref::new(5);
    let mut next = 6;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let pages: Vec<(Ref, Ref)> = chunks.iter().map(|_| (alloc(), alloc())).collect();

    pdf.catalog(catalog_id).pages(tree_id);
    pdf.pages(tree_id)
        .kids(pages.iter().map(|(p, _)| *p))
        .count(pages.len() as i32);
    pdf.type1_font(font_id)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold_id)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info_id)
        .title(TextStr(title))
        .producer(TextStr("Sportello"));

    let total = pages.len();
    for (index, ((page_id, content_id), chunk)) in pages.iter().zip(&chunks).enumerate() {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, layout.width, layout.height));
        page.parent(tree_id);
        page.contents(*content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), font_id);
        fonts.pair(Name(b"F2"), bold_id);
        fonts.finish();
        resources.finish();
        page.finish();

        let mut content = Content::new();
        let text = |content: &mut Content, font: &[u8], size: f32, x: f32, y: f32, s: &str| {
            content.begin_text();
            content.set_font(Name(font), size);
            content.next_line(x, y);
            content.show(Str(&win_ansi(s)));
            content.end_text();
        };
        text(
            &mut content,
            b"F2",
            14.0,
            margin,
            layout.height - margin - 14.0,
            title,
        );
        text(
            &mut content,
            b"F1",
            9.0,
            margin,
            layout.height - margin - 30.0,
            subtitle,
        );
        let header_y = layout.height - margin - 50.0;
        for (x, label, max) in header {
            text(
                &mut content,
                b"F2",
                layout.font_size,
                *x,
                header_y,
                &clip(label, *max),
            );
        }
        content.set_line_width(0.5);
        content.move_to(margin, header_y - 4.0);
        content.line_to(layout.width - margin, header_y - 4.0);
        content.stroke();
        let mut y = first_row_y;
        for row in chunk.iter() {
            for (x, value, max) in row {
                text(
                    &mut content,
                    b"F1",
                    layout.font_size,
                    *x,
                    y,
                    &clip(value, *max),
                );
            }
            y -= line;
        }
        let footer = format!("Pagina {} di {}", index + 1, total);
        text(
            &mut content,
            b"F1",
            8.0,
            layout.width - margin - 60.0,
            margin - 20.0,
            &footer,
        );
        pdf.stream(*content_id, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_pages_with_accents() {
        let header: Row = vec![(40.0, "Numero".into(), 20)];
        let rows: Vec<Row> = (0..200)
            .map(|i| vec![(40.0, format!("Città n. {i}"), 30)])
            .collect();
        let pdf = render("Registro", "giornaliero", &header, &rows, A4_LANDSCAPE);
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(
            text.contains("/Count 6"),
            "200 rows at 36 a page need 6 pages"
        );
        assert_eq!(win_ansi("à€x✓"), vec![0xe0, 0x80, b'x', b'?']);
        assert_eq!(clip("abcdef", 4), "abc…");
    }
}
