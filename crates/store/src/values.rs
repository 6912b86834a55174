//! `VALUES` lists for multi-row INSERTs: one row written once as a template, numbered for
//! every row of a statement, and the cap on rows per statement that keeps a statement
//! under both engines' limits of bind parameters (SQLite 32,766, PostgreSQL 65,535).

/// Most bind parameters one statement may carry on either engine (SQLite's is the lower).
pub(crate) const MAX_PARAMETERS: usize = 32_766;

/// How many rows of `per_row` parameters to write per statement: `wanted`, fewer when the
/// statement would carry more than [`MAX_PARAMETERS`], never zero.
pub(crate) fn rows_per_statement(per_row: usize, wanted: usize) -> usize {
    wanted.min(MAX_PARAMETERS / per_row.max(1)).max(1)
}

/// The `VALUES` list of `rows` rows shaped like `row`, whose parameters are numbered from
/// `$1` within the row (a parameter may appear twice, literals stay as written): `"($1,
/// 'case', $2)"` for two rows gives `"($1, 'case', $2), ($3, 'case', $4)"`. Rows are bound
/// in order, each with its parameters in their numbered order.
pub(crate) fn values(row: &str, rows: usize) -> String {
    let per_row = parameters_in(row);
    let mut out = String::with_capacity((row.len() + 8) * rows);
    for i in 0..rows {
        if i > 0 {
            out.push_str(", ");
        }
        let mut chars = row.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            let digits = row[at + c.len_utf8()..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if c == '$' && digits > 0 {
                let k: usize = row[at + 1..at + 1 + digits].parse().unwrap_or(0);
                out.push('$');
                out.push_str(&(i * per_row + k).to_string());
                for _ in 0..digits {
                    chars.next();
                }
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// The highest `$N` of a row template: how many parameters one row binds.
fn parameters_in(row: &str) -> usize {
    row.split('$')
        .skip(1)
        .filter_map(|s| {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0)
}

/// A `LIKE … ESCAPE '\\'` pattern matching text that contains `q`, lower-cased, with the
/// pattern's own characters (`%`, `_`, `\\`) taken literally.
pub(crate) fn like_contains(q: &str) -> String {
    format!(
        "%{}%",
        q.to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_numbered_on_from_the_template() {
        assert_eq!(values("($1, $2)", 1), "($1, $2)");
        assert_eq!(
            values("($1, 'case', $2, $3)", 2),
            "($1, 'case', $2, $3), ($4, 'case', $5, $6)"
        );
        assert_eq!(values("($1, $2)", 0), "");
    }

    #[test]
    fn a_parameter_named_twice_stays_the_same_parameter() {
        assert_eq!(
            values("($1, NULL, $2, 1, $2)", 2),
            "($1, NULL, $2, 1, $2), ($3, NULL, $4, 1, $4)"
        );
    }

    #[test]
    fn numbers_of_two_digits_are_renumbered_whole() {
        let row = "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
        let two = values(row, 2);
        assert!(two.ends_with("($12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)"));
        assert!(two.starts_with("($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11), "));
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        assert_eq!(rows_per_statement(4, 100), 100);
        assert_eq!(rows_per_statement(13, 10_000), 32_766 / 13);
        assert!(rows_per_statement(13, 10_000) * 13 <= MAX_PARAMETERS);
        assert_eq!(rows_per_statement(40_000, 10), 1);
        assert_eq!(rows_per_statement(0, 5), 5);
    }
}
