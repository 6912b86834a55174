//! The page model every document is drawn in, whichever back end writes it: a sheet of paper
//! and the marks on it, in points from the top-left corner. A document module lays its
//! text out (measuring it with the metrics of the back end's fonts) and hands the sheets to
//! [`pdfa::write_pdf`](crate::pdfa::write_pdf) or to the Helvetica writer.

/// The two faces documents are set in (regular and bold of the back end's family).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weight {
    /// The regular face.
    Regular,
    /// The bold face.
    Bold,
}

/// Something drawn on a page. Coordinates are in points, from the top-left corner.
#[derive(Clone, Debug, PartialEq)]
pub enum Mark {
    /// A line of text starting at `x`, sitting on the baseline `baseline`.
    Text {
        /// Left edge.
        x: f32,
        /// Baseline, from the top of the page.
        baseline: f32,
        /// Font size in points.
        size: f32,
        /// Face.
        weight: Weight,
        /// The text; characters the font lacks are printed as '?'.
        text: String,
    },
    /// A straight black rule.
    Rule {
        /// Start (x, y).
        from: (f32, f32),
        /// End (x, y).
        to: (f32, f32),
        /// Line width in points.
        width: f32,
    },
    /// Black rectangles filled as one shape (a QR code's modules: no seams between them).
    Filled {
        /// The rectangles.
        rects: Vec<Rect>,
    },
    /// The outline of a rectangle, in black.
    Outline {
        /// The rectangle.
        rect: Rect,
        /// Line width in points.
        width: f32,
    },
}

/// A rectangle on the page: its top-left corner and its size, in points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    /// Left edge.
    pub x: f32,
    /// Top edge, from the top of the page.
    pub top: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

/// One page: its size in points and what is on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sheet {
    /// Width in points.
    pub width: f32,
    /// Height in points.
    pub height: f32,
    /// What is drawn, in order.
    pub marks: Vec<Mark>,
}
