//! The whitelist file of CONTRACT §6.3, written from rows already read: the gate
//! cameras' supplier loads it, so its format lives here, once, apart from any storage.

use crate::ztl::policy::Policy;

/// A row of the whitelist (CONTRACT §6.3) before the policy adds zones and windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhitelistRow {
    /// Plate.
    pub plate: String,
    /// Country.
    pub country: String,
    /// Permit number.
    pub permit: String,
    /// Category id.
    pub category: String,
    /// Valid from (Unix ms).
    pub valid_from: i64,
    /// Valid to (Unix ms).
    pub valid_to: i64,
    /// In a delta export: `added` or `removed`.
    pub change: Option<&'static str>,
}

/// Writes the whitelist (CONTRACT §6.3) as `csv` or `json`: zones and windows from the
/// policy (joined with `;` in CSV), instants in the policy's time zone. A `delta` starts
/// every row with its `change` (`added` or `removed`).
pub fn write_whitelist<W: std::io::Write>(
    policy: &Policy,
    rows: &[WhitelistRow],
    json: bool,
    delta: bool,
    mut out: W,
) -> std::io::Result<()> {
    use chrono::TimeZone;
    let instant = |ms: i64| -> String {
        chrono::Utc
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.with_timezone(&policy.timezone).to_rfc3339())
            .unwrap_or_default()
    };
    let described = rows.iter().map(|r| {
        let (zones, windows) = policy.category(&r.category).map_or_else(
            || (Vec::new(), Vec::new()),
            |c| {
                (
                    c.zones.clone(),
                    c.windows
                        .iter()
                        .map(|w| w.as_str().to_owned())
                        .collect::<Vec<_>>(),
                )
            },
        );
        (r, zones, windows)
    });
    if json {
        let items: Vec<serde_json::Value> = described
            .map(|(r, zones, windows)| {
                let mut item = serde_json::json!({
                    "plate": r.plate, "country": r.country, "permit": r.permit, "category": r.category,
                    "zones": zones, "windows": windows,
                    "valid_from": instant(r.valid_from), "valid_to": instant(r.valid_to),
                });
                if let (Some(change), Some(map)) = (r.change, item.as_object_mut()) {
                    map.insert("change".into(), change.into());
                }
                item
            })
            .collect();
        serde_json::to_writer(&mut out, &items)?;
        writeln!(out)?;
        return Ok(());
    }
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(out);
    let header = [
        "plate",
        "country",
        "permit",
        "category",
        "zones",
        "windows",
        "valid_from",
        "valid_to",
    ];
    if delta {
        writer.write_field("change")?;
    }
    writer.write_record(header)?;
    for (r, zones, windows) in described {
        if delta {
            writer.write_field(r.change.unwrap_or_default())?;
        }
        writer.write_record([
            r.plate.as_str(),
            &r.country,
            &r.permit,
            &r.category,
            &zones.join(";"),
            &windows.join(";"),
            &instant(r.valid_from),
            &instant(r.valid_to),
        ])?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ztl::policy::EXAMPLE_POLICY;

    /// 2026-01-01T00:00:00Z and 2026-07-01T00:00:00Z: one instant in winter, one in summer time.
    const WINTER: i64 = 1_767_225_600_000;
    const SUMMER: i64 = 1_782_864_000_000;

    fn row(plate: &str, category: &str, change: Option<&'static str>) -> WhitelistRow {
        WhitelistRow {
            plate: plate.into(),
            country: "IT".into(),
            permit: "RES1".into(),
            category: category.into(),
            valid_from: WINTER,
            valid_to: SUMMER,
            change,
        }
    }

    fn written(rows: &[WhitelistRow], json: bool, delta: bool) -> String {
        let policy = Policy::parse(EXAMPLE_POLICY).unwrap();
        let mut out = Vec::new();
        write_whitelist(&policy, rows, json, delta, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn csv_joins_zones_and_windows_and_shows_instants_in_the_policy_zone() {
        let text = written(&[row("AB123CD", "carico_scarico", None)], false, false);
        assert_eq!(
            text,
            "plate,country,permit,category,zones,windows,valid_from,valid_to\n\
             AB123CD,IT,RES1,carico_scarico,A;B,mon-sat 10:00-12:00;mon-sat 14:30-16:30,\
             2026-01-01T01:00:00+01:00,2026-07-01T02:00:00+02:00\n"
        );
    }

    #[test]
    fn a_delta_starts_every_csv_row_with_its_change() {
        let rows = [
            row("AB123CD", "residenti", Some("added")),
            row("EF456GH", "residenti", Some("removed")),
        ];
        let text = written(&rows, false, true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "change,plate,country,permit,category,zones,windows,valid_from,valid_to"
        );
        assert!(lines[1].starts_with("added,AB123CD,IT,RES1,residenti,A,,"));
        assert!(lines[2].starts_with("removed,EF456GH,IT,RES1,residenti,A,,"));
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn json_lists_the_same_fields_and_the_change_only_when_there_is_one() {
        let rows = [
            row("AB123CD", "residenti", None),
            row("EF456GH", "unknown_category", Some("removed")),
        ];
        let text = written(&rows, true, true);
        assert!(text.ends_with('\n'));
        let items: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            items,
            serde_json::json!([
                {
                    "plate": "AB123CD", "country": "IT", "permit": "RES1", "category": "residenti",
                    "zones": ["A"], "windows": [],
                    "valid_from": "2026-01-01T01:00:00+01:00", "valid_to": "2026-07-01T02:00:00+02:00",
                },
                {
                    "plate": "EF456GH", "country": "IT", "permit": "RES1", "category": "unknown_category",
                    "zones": [], "windows": [], "change": "removed",
                    "valid_from": "2026-01-01T01:00:00+01:00", "valid_to": "2026-07-01T02:00:00+02:00",
                },
            ])
        );
    }

    #[test]
    fn a_field_with_a_comma_is_quoted() {
        let text = written(&[row("AB,123", "residenti", None)], false, false);
        assert!(text.lines().nth(1).unwrap().starts_with("\"AB,123\",IT,"));
    }
}
