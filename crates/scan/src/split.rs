//! Splitting a scanned batch into the parts that belong to one case each.

/// A run of pages of a batch that belong together: the pages that followed one cover sheet,
/// or the pages before the first cover sheet, which belong to no known case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The case reference from the cover sheet that opened this part; `None` for the pages
    /// before the first cover sheet (or a whole batch without one), which an operator must
    /// assign by hand.
    pub reference: Option<String>,
    /// Zero-based page indices in the batch, in order; cover pages are never included.
    pub pages: Vec<usize>,
}

/// Splits a batch at its cover sheets, given for each page the reference its cover QR code
/// carries (or `None` for an ordinary page), as [`cover_reference`](crate::cover_reference)
/// returns it.
///
/// - Pages before the first cover (all pages, when there is no cover) form one part with
///   `reference: None`; it is left out when there are no such pages.
/// - Each cover page opens a new part for its reference holding the pages up to the next
///   cover; the cover pages themselves are in no part.
/// - A cover followed directly by another cover, or standing last, yields a part with **no
///   pages**. It is kept on purpose, so that the caller can record that an empty cover sheet
///   was scanned (a sheet put on the wrong pile, or a case whose papers were forgotten).
/// - Two consecutive parts may have the same reference (the sheet printed twice, or a case
///   scanned in two sittings); they are not merged, so that the caller sees what happened.
pub fn split_at_covers(covers: &[Option<String>]) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut current = Part {
        reference: None,
        pages: Vec::new(),
    };
    let mut opened_by_cover = false;
    for (index, cover) in covers.iter().enumerate() {
        match cover {
            Some(reference) => {
                if opened_by_cover || !current.pages.is_empty() {
                    parts.push(current);
                }
                current = Part {
                    reference: Some(reference.clone()),
                    pages: Vec::new(),
                };
                opened_by_cover = true;
            }
            None => current.pages.push(index),
        }
    }
    if opened_by_cover || !current.pages.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cover(r: &str) -> Option<String> {
        Some(r.to_owned())
    }

    fn part(r: Option<&str>, pages: &[usize]) -> Part {
        Part {
            reference: r.map(str::to_owned),
            pages: pages.to_vec(),
        }
    }

    #[test]
    fn empty_batch_has_no_parts() {
        assert!(split_at_covers(&[]).is_empty());
    }

    #[test]
    fn batch_without_covers_is_one_unassigned_part() {
        assert_eq!(
            split_at_covers(&[None, None, None]),
            vec![part(None, &[0, 1, 2])]
        );
    }

    #[test]
    fn pages_before_first_cover_are_unassigned() {
        let covers = [None, cover("A"), None, None, cover("B"), None];
        assert_eq!(
            split_at_covers(&covers),
            vec![
                part(None, &[0]),
                part(Some("A"), &[2, 3]),
                part(Some("B"), &[5])
            ]
        );
    }

    #[test]
    fn batch_starting_with_cover_has_no_unassigned_part() {
        let covers = [cover("A"), None];
        assert_eq!(split_at_covers(&covers), vec![part(Some("A"), &[1])]);
    }

    #[test]
    fn empty_covers_are_kept() {
        let covers = [cover("A"), cover("B"), None, cover("C")];
        assert_eq!(
            split_at_covers(&covers),
            vec![
                part(Some("A"), &[]),
                part(Some("B"), &[2]),
                part(Some("C"), &[])
            ]
        );
    }

    #[test]
    fn consecutive_covers_for_same_reference_are_fine() {
        let covers = [cover("A"), cover("A"), None];
        assert_eq!(
            split_at_covers(&covers),
            vec![part(Some("A"), &[]), part(Some("A"), &[2])]
        );
    }

    #[test]
    fn only_a_cover() {
        assert_eq!(split_at_covers(&[cover("A")]), vec![part(Some("A"), &[])]);
    }
}
