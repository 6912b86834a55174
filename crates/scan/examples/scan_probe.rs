//! Developer probe: `cover` writes a cover sheet PDF; `probe FILE DPI` reads every page of a
//! batch, timing the page decode and the cover search, and prints the split.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Instant;

use sportello_scan::{
    Batch, CoverSheet, Limits, cover_reference, cover_sheet_pdf, split_at_covers,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("cover") => {
            let pdf = cover_sheet_pdf(&CoverSheet {
                reference: args.get(3).map(String::as_str).unwrap_or("OSP-2025-000123"),
                case_type: "Occupazione di suolo pubblico",
                subject: "Dehors stagionale per il bar Caffè Città in via dell'Università, lato più lungo",
                printed_at: "29/11/2025 10:42",
            });
            std::fs::write(&args[2], pdf).unwrap();
        }
        Some("probe") => {
            let dpi: u32 = args.get(3).and_then(|d| d.parse().ok()).unwrap_or(150);
            let t = Instant::now();
            let mut batch = Batch::open(Path::new(&args[2]), Limits::default()).unwrap();
            println!(
                "open {:?}: {} pages in {:?}",
                batch.format(),
                batch.page_count(),
                t.elapsed()
            );
            let mut covers = Vec::new();
            for i in 0..batch.page_count() {
                let t = Instant::now();
                let page = batch.page(i, dpi).unwrap();
                let decode = t.elapsed();
                let t = Instant::now();
                let cover = cover_reference(&page);
                println!(
                    "page {i}: {}x{} decode {decode:?} qr {:?} -> {cover:?}",
                    page.width(),
                    page.height(),
                    t.elapsed()
                );
                covers.push(cover);
            }
            println!("{:?}", split_at_covers(&covers));
        }
        Some("page") => {
            let mut batch = Batch::open(Path::new(&args[2]), Limits::default()).unwrap();
            let dpi: u32 = args.get(4).and_then(|d| d.parse().ok()).unwrap_or(150);
            batch.page(0, dpi).unwrap().save(&args[3]).unwrap();
        }
        Some("qr") => {
            let img = image::open(&args[2]).unwrap().into_luma8();
            let t = Instant::now();
            let r = cover_reference(&img);
            println!(
                "{}x{} {:?} -> {r:?}",
                img.width(),
                img.height(),
                t.elapsed()
            );
        }
        _ => eprintln!(
            "usage: scan_probe cover OUT.pdf [REF] | probe FILE [DPI] | page FILE OUT.png [DPI] | qr IMAGE"
        ),
    }
}
