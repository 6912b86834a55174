//! `[retention]` (CONTRACT §8.5): per case type, how long after closing a case its
//! documents and personal data are kept, e.g. `ztl_permit = "5y"`. A case type without an
//! entry is kept for ever (`sportello retention run` leaves it alone).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sportello_domain::privacy::RetentionPeriod;

use crate::ConfigError;

/// Case type id → period (`90d`, `18m`, `5y`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RetentionConfig(pub BTreeMap<String, String>);

impl RetentionConfig {
    /// The periods, read; an error names the key (`retention.ztl_permit`) and what is
    /// wrong, including a case type that does not exist.
    pub fn periods(
        &self,
        case_types: &[&str],
    ) -> Result<Vec<(String, RetentionPeriod)>, ConfigError> {
        self.0
            .iter()
            .map(|(case_type, value)| {
                let key = format!("retention.{case_type}");
                if !case_types.contains(&case_type.as_str()) {
                    return Err(ConfigError::new(
                        key,
                        format!("unknown case type '{case_type}'"),
                    ));
                }
                RetentionPeriod::parse(value)
                    .map(|p| (case_type.clone(), p))
                    .map_err(|e| ConfigError::new(key, e.to_string()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{Config, Sources};

    fn load(toml: &str) -> Result<Config, crate::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sportello.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(&Sources {
            file: Some(path),
            data_dir: None,
            env: vec![("SPORTELLO_RETENTION__CUDE".into(), "10y".into())],
        })
    }

    #[test]
    fn periods_per_case_type() {
        let c = load("[retention]\nztl_permit = \"5y\"\nseg = \"18m\"\n").unwrap();
        let periods = c.retention.periods(&["ztl_permit", "seg", "cude"]).unwrap();
        let shown: Vec<String> = periods.iter().map(|(t, p)| format!("{t}={p}")).collect();
        assert_eq!(shown, ["cude=10y", "seg=18m", "ztl_permit=5y"]);
    }

    #[test]
    fn a_bad_period_or_case_type_names_its_key() {
        let e = load("[retention]\nztl_permit = \"5 anni\"\n").unwrap_err();
        assert_eq!(e.key, "retention.ztl_permit");
        assert!(e.message.contains("5 anni"), "{}", e.message);
        let e = load("[retention]\nbiciclette = \"5y\"\n").unwrap_err();
        assert_eq!(e.key, "retention.biciclette");
        assert!(e.message.contains("unknown case type"), "{}", e.message);
        let e = load("[retention]\nztl_permit = 5\n").unwrap_err();
        assert!(e.to_string().contains("retention"), "{e}");
    }
}
