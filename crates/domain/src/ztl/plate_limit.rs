//! How many plates a permit authorises at once. A category's `max_vehicles` holds at every
//! instant, permanent and temporary plates together: a CUDE holder may communicate the
//! cars they travel in, but never more at the same time than the category allows. Plates
//! are checked as intervals, not one by one, so five overlapping temporary plates cannot
//! slip in against a maximum of two.

/// One plate a permit authorises over `[valid_from, valid_to)` (Unix ms, end exclusive).
/// Only active rows are given: suspended and revoked rows authorise nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorisedPlate {
    /// Normalised plate.
    pub plate: String,
    /// Its country.
    pub country: String,
    /// From (inclusive).
    pub valid_from: i64,
    /// To (exclusive).
    pub valid_to: i64,
}

/// The busiest instant found by [`peak_within`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peak {
    /// How many distinct plates are authorised then.
    pub count: usize,
    /// The first instant with that many (Unix ms).
    pub at: i64,
    /// Those plates, as `(plate, country)`, sorted.
    pub plates: Vec<(String, String)>,
}

/// Why a new plate is refused: with it, `count` plates would be authorised at `at`
/// against a maximum of `max`; `overlapping` are the other plates authorised then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyAtOnce {
    /// Plates at the busiest instant, the new one included.
    pub count: usize,
    /// The category's maximum.
    pub max: u32,
    /// The first instant over the limit (Unix ms).
    pub at: i64,
    /// The plates already authorised at that instant, as `(plate, country)`, sorted.
    pub overlapping: Vec<(String, String)>,
}

/// The most distinct plates authorised at one instant of `[from, to)`, by a sweep over
/// the rows' endpoints (ends before starts at the same instant: touching intervals do
/// not overlap). A plate with several rows at once counts once. `None` when no row
/// touches the interval.
pub fn peak_within(rows: &[AuthorisedPlate], from: i64, to: i64) -> Option<Peak> {
    // (instant, +1 start / -1 end, plate index); ends sort first at the same instant.
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut events: Vec<(i64, i8, usize)> = Vec::new();
    for row in rows {
        let (start, end) = (row.valid_from.max(from), row.valid_to.min(to));
        if start >= end {
            continue;
        }
        let key = (row.plate.as_str(), row.country.as_str());
        let index = keys.iter().position(|k| *k == key).unwrap_or_else(|| {
            keys.push(key);
            keys.len() - 1
        });
        events.push((start, 1, index));
        events.push((end, -1, index));
    }
    events.sort_unstable();
    let mut open = vec![0usize; keys.len()];
    let mut distinct = 0usize;
    let mut peak: Option<Peak> = None;
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            let (_, delta, index) = events[i];
            if delta > 0 {
                open[index] += 1;
                if open[index] == 1 {
                    distinct += 1;
                }
            } else {
                open[index] -= 1;
                if open[index] == 0 {
                    distinct -= 1;
                }
            }
            i += 1;
        }
        if distinct > peak.as_ref().map_or(0, |p| p.count) {
            let mut plates: Vec<(String, String)> = keys
                .iter()
                .zip(&open)
                .filter(|(_, n)| **n > 0)
                .map(|((plate, country), _)| ((*plate).to_owned(), (*country).to_owned()))
                .collect();
            plates.sort();
            peak = Some(Peak {
                count: distinct,
                at,
                plates,
            });
        }
    }
    peak
}

/// Whether `new` may join the permit's `rows` without the permit authorising more than
/// `max` plates at any instant of the new plate's validity (the instants outside it do
/// not change). Refused with the first instant over the limit and the plates then.
pub fn check_plate_limit(
    rows: &[AuthorisedPlate],
    new: &AuthorisedPlate,
    max: u32,
) -> Result<(), TooManyAtOnce> {
    let mut all = rows.to_vec();
    all.push(new.clone());
    let Some(peak) = peak_within(&all, new.valid_from, new.valid_to) else {
        return Ok(());
    };
    if peak.count <= max as usize {
        return Ok(());
    }
    let overlapping = peak
        .plates
        .into_iter()
        .filter(|(plate, country)| *plate != new.plate || *country != new.country)
        .collect();
    Err(TooManyAtOnce {
        count: peak.count,
        max,
        at: peak.at,
        overlapping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plate(plate: &str, valid_from: i64, valid_to: i64) -> AuthorisedPlate {
        AuthorisedPlate {
            plate: plate.into(),
            country: "IT".into(),
            valid_from,
            valid_to,
        }
    }

    fn names(plates: &[(String, String)]) -> Vec<&str> {
        plates.iter().map(|(p, _)| p.as_str()).collect()
    }

    #[test]
    fn the_peak_counts_plates_valid_at_the_same_instant() {
        let rows = [
            plate("AA", 0, 100),
            plate("BB", 10, 20),
            plate("CC", 15, 30),
            plate("DD", 50, 60),
        ];
        let peak = peak_within(&rows, 0, 100).unwrap();
        assert_eq!((peak.count, peak.at), (3, 15));
        assert_eq!(names(&peak.plates), ["AA", "BB", "CC"]);
        // Only the instants asked about count.
        assert_eq!(peak_within(&rows, 40, 100).unwrap().count, 2);
        assert_eq!(peak_within(&rows, 100, 200), None);
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        // BB ends when CC starts: never two at once besides AA.
        let rows = [
            plate("AA", 0, 100),
            plate("BB", 10, 20),
            plate("CC", 20, 30),
        ];
        assert_eq!(peak_within(&rows, 0, 100).unwrap().count, 2);
        assert_eq!(check_plate_limit(&rows[..2], &rows[2], 2), Ok(()));
        // A plate ending at the new one's start, or starting at its end, is not counted.
        let new = plate("EE", 30, 40);
        let rows = [
            plate("AA", 0, 100),
            plate("BB", 20, 30),
            plate("CC", 40, 50),
        ];
        assert_eq!(check_plate_limit(&rows, &new, 2), Ok(()));
    }

    #[test]
    fn the_same_plate_twice_counts_once() {
        let rows = [plate("AA", 0, 100), plate("BB", 0, 100)];
        // The permanent plate communicated again as a temporary one adds no vehicle.
        assert_eq!(check_plate_limit(&rows, &plate("AA", 10, 20), 2), Ok(()));
        let mut foreign = plate("AA", 10, 20);
        foreign.country = "FR".into();
        assert!(check_plate_limit(&rows, &foreign, 2).is_err());
    }

    #[test]
    fn five_plates_at_once_against_two_are_refused_naming_the_overlap() {
        // One permanent plate; temporary plates added one by one, each refused as soon
        // as it would be the third at some instant.
        let mut rows = vec![plate("AA111AA", 0, 1_000)];
        let wanted = [
            plate("BB222BB", 100, 200),
            plate("CC333CC", 150, 250),
            plate("DD444DD", 180, 190),
            plate("EE555EE", 200, 300),
            plate("FF666FF", 120, 130),
        ];
        let mut refused = Vec::new();
        for new in wanted {
            match check_plate_limit(&rows, &new, 2) {
                Ok(()) => rows.push(new),
                Err(e) => refused.push((new.plate, e)),
            }
        }
        let added: Vec<&str> = rows.iter().map(|r| r.plate.as_str()).collect();
        assert_eq!(added, ["AA111AA", "BB222BB", "EE555EE"]);
        let (plate, why) = &refused[0];
        assert_eq!(plate, "CC333CC");
        assert_eq!((why.count, why.max, why.at), (3, 2, 150));
        assert_eq!(names(&why.overlapping), ["AA111AA", "BB222BB"]);
        let refused: Vec<&str> = refused.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(refused, ["CC333CC", "DD444DD", "FF666FF"]);
        // At no instant more than two.
        assert_eq!(peak_within(&rows, i64::MIN, i64::MAX).unwrap().count, 2);
    }

    #[test]
    fn an_existing_excess_outside_the_new_interval_is_not_the_new_plates_fault() {
        let rows = [
            plate("AA", 0, 10),
            plate("BB", 0, 10),
            plate("CC", 0, 10),
            plate("DD", 20, 30),
        ];
        assert_eq!(check_plate_limit(&rows, &plate("EE", 20, 30), 2), Ok(()));
        let refused = check_plate_limit(&rows, &plate("EE", 5, 30), 2).unwrap_err();
        assert_eq!((refused.count, refused.at), (4, 5));
        assert_eq!(names(&refused.overlapping), ["AA", "BB", "CC"]);
    }
}
