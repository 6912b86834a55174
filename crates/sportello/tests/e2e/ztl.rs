//! The ZTL commands through the real binary, on the shared fixtures: the permit register
//! import (idempotent, refusals by line), the transit check reproducing the expected
//! violations byte for byte, the whitelist export, the policy check.

use std::path::PathBuf;

use crate::harness::Install;

fn fixture(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(format!(
        "{}/../../../shared/fixtures/ztl/{name}",
        env!("CARGO_MANIFEST_DIR")
    ));
    path.exists().then_some(path)
}

/// The shared fixtures of the ZTL commands.
struct Fixtures {
    policy: PathBuf,
    permits: PathBuf,
    transits: PathBuf,
    expected: PathBuf,
}

impl Fixtures {
    /// The fixtures, or `None` (and a notice) when they are not present.
    fn find() -> Option<Fixtures> {
        let (Some(policy), Some(permits), Some(transits), Some(expected)) = (
            fixture("policy.toml"),
            fixture("permits.csv"),
            fixture("transits.csv"),
            fixture("violations.expected.csv"),
        ) else {
            eprintln!("skipped: ../shared/fixtures not present");
            return None;
        };
        Some(Fixtures {
            policy,
            permits,
            transits,
            expected,
        })
    }

    /// An installation (not started) under the fixture policy.
    async fn install(&self) -> Install {
        Install::new(&format!("[policy]\nfile = \"{}\"\n", self.policy.display())).await
    }
}

/// Imports a register of seven rows of which only the first (X1, plate AB123CD, residents,
/// 2026) is good; the command's output.
fn import_broken_register(install: &Install) -> std::process::Output {
    let broken = install.dir.path().join("broken.csv");
    std::fs::write(
        &broken,
        "permit,category,holder_fiscal_code,holder_name,plate,country,valid_from,valid_to,status\n\
         X1,residenti,RSSMRA85T10A562S,Mario Rossi,AB123CD,IT,2026-01-01,2026-12-31,active\n\
         X2,nessuna,RSSMRA85T10A562S,Mario Rossi,AB123CE,IT,2026-01-01,2026-12-31,active\n\
         X3,residenti,RSSMRA85T10A562X,Mario Rossi,AB123CF,IT,2026-01-01,2026-12-31,active\n\
         X4,residenti,RSSMRA85T10A562S,Mario Rossi,AB<1>,IT,2026-01-01,2026-12-31,active\n\
         X5,residenti,RSSMRA85T10A562S,Mario Rossi,AB123CG,IT,2026-12-31,2026-01-01,active\n\
         X6,residenti,RSSMRA85T10A562S,Mario Rossi,AB123CH,IT,2026-01-01,2026-12-31,sospeso\n\
         X7,residenti\n",
    )
    .unwrap();
    install.cli(&["permits", "import", broken.to_str().unwrap()])
}

#[tokio::test]
async fn the_fixture_register_imports_once_and_its_transits_give_the_expected_violations() {
    let Some(fixtures) = Fixtures::find() else {
        return;
    };
    let install = fixtures.install().await;
    let Fixtures {
        permits,
        transits,
        expected,
        ..
    } = fixtures;
    let out = install.cli(&["permits", "import", permits.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("82 rows added, 0 already present"));
    let again = install.cli(&["permits", "import", permits.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("0 rows added, 82 already present"));

    let violations = install.dir.path().join("violations.csv");
    let out = install.cli(&[
        "transits",
        "check",
        transits.to_str().unwrap(),
        "-o",
        violations.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&violations).unwrap(),
        std::fs::read(&expected).unwrap()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(policy version 1)"), "{stderr}");
    if let (Some(bad), Some(bad_expected)) = (
        fixture("transits-bad.csv"),
        fixture("transits-bad.violations.expected.csv"),
    ) {
        let out = install.cli(&["transits", "check", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, std::fs::read(&bad_expected).unwrap());
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in [3, 4, 5, 6, 8, 9] {
            assert!(stderr.contains(&format!("line {line}:")), "{stderr}");
        }
    }
}

#[tokio::test]
async fn a_register_with_broken_rows_imports_the_good_ones_and_names_the_bad() {
    let Some(fixtures) = Fixtures::find() else {
        return;
    };
    let install = fixtures.install().await;
    // A register with broken rows: the good ones go in, the bad ones are named.
    let out = import_broken_register(&install);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in 3..=8 {
        assert!(stderr.contains(&format!("line {line}:")), "{stderr}");
    }
    assert!(!stderr.contains("line 2:"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("1 rows added"));
}

#[tokio::test]
async fn the_whitelist_export_gives_the_plates_at_an_instant_and_the_changes_since() {
    let Some(fixtures) = Fixtures::find() else {
        return;
    };
    let install = fixtures.install().await;
    assert_eq!(import_broken_register(&install).status.code(), Some(3));
    // The whitelist at an instant: the imported plate is in, as CSV and JSON.
    let out = install.cli(&["whitelist", "export", "--at", "2026-06-01T12:00:00+02:00"]);
    assert!(out.status.success());
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("plate,country,permit,category,zones,windows,valid_from,valid_to\n"));
    assert!(
        csv.contains(
            "AB123CD,IT,X1,residenti,A,,2026-01-01T00:00:00+01:00,2027-01-01T00:00:00+01:00"
        ),
        "{csv}"
    );
    let out = install.cli(&[
        "whitelist",
        "export",
        "--at",
        "2026-06-01",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|r| r["plate"] == "AB123CD" && r["zones"][0] == "A")
    );
    // The delta for the cameras: X1 starts on 2026-01-01.
    let out = install.cli(&[
        "whitelist",
        "export",
        "--since",
        "2025-12-31",
        "--at",
        "2026-01-02",
    ]);
    let delta = String::from_utf8_lossy(&out.stdout);
    assert!(delta.starts_with("change,plate,country,permit,"), "{delta}");
    assert!(delta.contains("added,AB123CD,IT,X1,residenti"), "{delta}");
    assert!(!delta.contains("removed,AB123CD"), "{delta}");
    let out = install.cli(&[
        "whitelist",
        "export",
        "--since",
        "2026-12-31",
        "--at",
        "2027-01-02",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed,AB123CD,IT,X1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = install.cli(&["whitelist", "export", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn a_policy_draft_is_checked_against_the_transits_already_checked() {
    let Some(fixtures) = Fixtures::find() else {
        return;
    };
    let install = fixtures.install().await;
    let Fixtures {
        policy,
        permits,
        transits,
        ..
    } = fixtures;
    assert!(
        install
            .cli(&["permits", "import", permits.to_str().unwrap()])
            .status
            .success()
    );
    // The transits checked: the fixture file and the bad one.
    let checked = install.cli(&["transits", "check", transits.to_str().unwrap()]);
    assert!(checked.status.success());
    let bad = fixture("transits-bad.csv").unwrap();
    assert_eq!(
        install
            .cli(&["transits", "check", bad.to_str().unwrap()])
            .status
            .code(),
        Some(3)
    );
    // A draft policy with a mistake is refused naming the line and the field.
    let draft = install.dir.path().join("draft.toml");
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("zones = [\"A\", \"B\", \"N\"]", "zones = [\"A\", \"Q\"]");
    std::fs::write(&draft, &text).unwrap();
    let out = install.cli(&["policy", "check", draft.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line ") && stderr.contains("zones[1]") && stderr.contains("unknown zone"),
        "{stderr}"
    );
    // The policy in force, as a draft, changes nothing for the transits already checked
    // (the fixture file, twice, and the bad one: two distinct files).
    let out = install.cli(&["policy", "check", policy.to_str().unwrap()]);
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(report.contains("in 2 file(s)"), "{report}");
    for line in [
        "would no longer be violations: 0",
        "would become violations: 0",
        "would change reason: 0",
    ] {
        assert!(report.contains(line), "{report}");
    }
    // A draft enforcing zone A around the clock: more violations, none cleared — exactly
    // those the transit check finds under that draft.
    let always = install.dir.path().join("always.toml");
    let text = std::fs::read_to_string(&policy).unwrap().replacen(
        "active = [\"mon-fri 07:30-20:00\", \"sat 10:00-20:00\"]",
        "active = []",
        1,
    );
    std::fs::write(&always, &text).unwrap();
    let out = install.cli(&["policy", "check", always.to_str().unwrap()]);
    assert!(out.status.success());
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let figures = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("violations: "))
        .unwrap_or_else(|| panic!("{report}"));
    let numbers: Vec<u64> = figures
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let violations_under = |policy_file: &str| -> u64 {
        [&transits, &fixture("transits-bad.csv").unwrap()]
            .iter()
            .map(|file| {
                let out = install.cli_with_env(
                    &["transits", "check", file.to_str().unwrap()],
                    &[("SPORTELLO_POLICY__FILE", policy_file)],
                );
                String::from_utf8_lossy(&out.stdout).lines().count() as u64 - 1
            })
            .sum()
    };
    let (now, draft) = (
        violations_under(policy.to_str().unwrap()),
        violations_under(always.to_str().unwrap()),
    );
    assert_eq!(&numbers[..2], [now, draft], "{report}");
    assert!(draft > now, "{report}");
    assert!(
        report.contains("would no longer be violations: 0"),
        "{report}"
    );
    assert!(
        report.contains(&format!("would become violations: {}", draft - now)),
        "{report}"
    );
}

#[tokio::test]
async fn the_police_check_plates_read_the_whitelist_and_reconcile_over_http() {
    let (Some(policy), Some(permits), Some(transits), Some(expected)) = (
        fixture("policy.toml"),
        fixture("permits.csv"),
        fixture("transits.csv"),
        fixture("violations.expected.csv"),
    ) else {
        eprintln!("skipped: ../shared/fixtures not present");
        return;
    };
    let mut install = Install::new(&format!("[policy]\nfile = \"{}\"\n", policy.display())).await;
    assert!(
        install
            .cli(&["permits", "import", permits.to_str().unwrap()])
            .status
            .success()
    );
    let police = install.user("vigile", "police");
    install.start(&[]).await;
    // P0000000: residenti (zone A), SR483YN, 2026-08-06 to the end of 2026-09-04.
    let verify = |q: &str| {
        let install = &install;
        let police = police.clone();
        let q = q.to_owned();
        async move {
            install
                .call(
                    "GET",
                    &format!("/api/v1/permits/verify?{q}"),
                    Some(&police),
                    None,
                )
                .await
        }
    };
    let (status, _, ok) =
        verify("plate=sr%20483%20yn&gate=V01&at=2026-08-10T09:00:00%2B02:00").await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        (
            ok["authorized"].as_bool(),
            ok["reason"].as_str(),
            ok["permit"].as_str()
        ),
        (Some(true), Some("permit"), Some("P0000000"))
    );
    let (_, _, zone) = verify("plate=SR483YN&gate=V04&at=2026-08-10T09:00:00%2B02:00").await;
    assert_eq!(
        (zone["authorized"].as_bool(), zone["reason"].as_str()),
        (Some(false), Some("wrong_zone")),
        "{zone}"
    );
    let (_, _, late) = verify("plate=SR483YN&gate=V01&at=2026-09-07T09:00:00%2B02:00").await;
    assert_eq!(late["reason"], "not_valid_at_time", "{late}");
    let (_, _, night) = verify("plate=ZZ999ZZ&gate=V01&at=2026-08-10T23:00:00%2B02:00").await;
    assert_eq!(
        (night["authorized"].as_bool(), night["reason"].as_str()),
        (Some(true), Some("zone_not_active")),
        "{night}"
    );
    let (_, _, nobody) = verify("plate=ZZ999ZZ&gate=V01&at=2026-08-10T09:00:00%2B02:00").await;
    assert_eq!(nobody["reason"], "no_permit");
    for bad in [
        "plate=&gate=V01",
        "plate=AB1&gate=V99",
        "plate=AB1&gate=V01&at=ieri",
    ] {
        let (status, _, body) = verify(bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    // The whitelist, as the CLI writes it.
    let resp = install
        .client
        .get(format!("{}/api/v1/whitelist?at=2026-08-10", install.base()))
        .bearer_auth(&police)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    assert!(csv.starts_with("plate,country,permit,category,zones,windows,valid_from,valid_to\n"));
    assert!(csv.contains("SR483YN,IT,P0000000,residenti,A,,"), "{csv}");
    // The reconciliation over HTTP gives the same bytes as the command line.
    let resp = install
        .client
        .post(format!("{}/api/v1/transits/check", install.base()))
        .bearer_auth(&police)
        .header("content-type", "text/csv")
        .body(std::fs::read(&transits).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.bytes().await.unwrap().as_ref(),
        std::fs::read(&expected).unwrap().as_slice()
    );
    if let Some(bad) = fixture("transits-bad.csv") {
        let resp = install
            .client
            .post(format!("{}/api/v1/transits/check", install.base()))
            .bearer_auth(&police)
            .body(std::fs::read(&bad).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 422);
        let problem: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(problem["errors"].as_array().unwrap().len(), 6, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "line 3");
    }
    // The police see the files they checked, with the outcome and the policy version.
    let (status, _, checks) = install
        .call("GET", "/api/v1/transits/checks", Some(&police), None)
        .await;
    assert_eq!(status, 200, "{checks}");
    // Newest first: the good file was checked before the bad one.
    let good = checks.as_array().unwrap().last().unwrap();
    assert_eq!(good["actor"], "vigile", "{checks}");
    assert_eq!(good["transits"], 600, "{checks}");
    assert_eq!(good["violations"], 295, "{checks}");
    assert!(good["policy_version"].is_i64(), "{checks}");
}

/// A disabled citizen communicates the car they used: the plate joins their CUDE permit
/// for that time, within the category's limits (48 h back, 24 h forward).
/// An installation under the fixture policy whose register holds Mario Rossi's permits
/// CUD1 (CUDE, plate AA111AA) and RES1 (residents, plate BB222BB), with an operator and a
/// police user; `None` (and a notice) without the shared fixtures.
struct CudeRegister {
    install: Install,
    op: String,
    police: String,
    now: chrono::DateTime<chrono::Utc>,
}

impl CudeRegister {
    async fn new() -> Option<CudeRegister> {
        let Some(policy) = fixture("policy.toml") else {
            eprintln!("skipped: ../shared/fixtures not present");
            return None;
        };
        let mut install =
            Install::new(&format!("[policy]\nfile = \"{}\"\n", policy.display())).await;
        install.import_register(
            "CUD1,cude,RSSMRA85T10A562S,Mario Rossi,AA111AA,IT,2020-01-01,2099-12-31,active\n\
             RES1,residenti,RSSMRA85T10A562S,Mario Rossi,BB222BB,IT,2020-01-01,2099-12-31,active\n",
        );
        let op = install.user("op", "operator");
        let police = install.user("vigile", "police");
        install.start(&[]).await;
        let now = sportello_domain::clock::Clock::now(&sportello_domain::clock::SystemClock);
        Some(CudeRegister {
            install,
            op,
            police,
            now,
        })
    }

    /// `hours` from now, RFC 3339.
    fn at(&self, hours: i64) -> String {
        (self.now + chrono::Duration::hours(hours)).to_rfc3339()
    }

    /// The operator records a temporary plate on a permit.
    async fn post(
        &self,
        number: &str,
        body: serde_json::Value,
    ) -> (u16, String, serde_json::Value) {
        let path = format!("/api/v1/permits/{number}/temporary-plates");
        self.install
            .call("POST", &path, Some(&self.op), Some(body))
            .await
    }

    /// The temporary plate CC333CC on CUD1, from two hours ago for five hours: the permit.
    async fn with_cc333cc(&self) -> serde_json::Value {
        let (status, _, permit) = self
            .post(
                "CUD1",
                serde_json::json!({"plate": "cc 333 cc", "from": self.at(-2), "to": self.at(3)}),
            )
            .await;
        assert_eq!(status, 201, "{permit}");
        permit
    }
}

#[tokio::test]
async fn a_cude_temporary_plate_is_recorded_under_the_policy_and_lets_the_car_through() {
    let Some(office) = CudeRegister::new().await else {
        return;
    };
    let (install, police) = (&office.install, &office.police);
    let at = |hours| office.at(hours);
    let permit = office.with_cc333cc().await;
    let temporary = permit["plates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["source"] == "temporary")
        .unwrap();
    assert_eq!(temporary["plate"], "CC333CC");
    assert_eq!(temporary["recorded_by"], "op");
    // Every row says which policy it was recorded under (the import and the server load
    // the same file: one version).
    let versions: Vec<&serde_json::Value> = permit["plates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["policy_version"])
        .collect();
    assert!(
        versions.iter().all(|v| v.is_i64() && *v == versions[0]),
        "{permit}"
    );
    // The police see the car as authorised in an always-active zone, under the CUDE permit.
    let (_, _, verdict) = install
        .call(
            "GET",
            &format!(
                "/api/v1/permits/verify?plate=CC333CC&gate=V04&at={}",
                at(0).replace('+', "%2B")
            ),
            Some(police),
            None,
        )
        .await;
    assert_eq!(
        (verdict["authorized"].as_bool(), verdict["permit"].as_str()),
        (Some(true), Some("CUD1")),
        "{verdict}"
    );
}

#[tokio::test]
async fn cude_temporary_plates_outside_the_category_rules_are_refused() {
    let Some(office) = CudeRegister::new().await else {
        return;
    };
    let (install, police) = (&office.install, &office.police);
    let at = |hours| office.at(hours);
    let post = |number, body| office.post(number, body);
    office.with_cc333cc().await;
    // Outside the rules: clear refusals.
    let (status, _, body) = post(
        "CUD1",
        serde_json::json!({"plate": "DD444DD", "from": at(-49), "to": at(-47)}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "from");
    let (status, _, body) = post(
        "CUD1",
        serde_json::json!({"plate": "DD444DD", "from": at(0), "to": at(25)}),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("to")),
        "{body}"
    );
    let (status, _, _) = post(
        "CUD1",
        serde_json::json!({"plate": "D<D", "from": at(0), "to": at(1)}),
    )
    .await;
    assert_eq!(status, 422);
    // At no instant more plates than the category's maximum (2 for CUDE), permanent and
    // temporary together: with AA111AA and CC333CC authorised, every further overlapping
    // plate is refused, naming the plates it overlaps; one from when CC333CC ends passes.
    for plate in ["DD444DD", "EE555EE", "FF666FF"] {
        let (status, _, body) = post(
            "CUD1",
            serde_json::json!({"plate": plate, "from": at(-1), "to": at(1)}),
        )
        .await;
        assert_eq!(status, 409, "{body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!(
                "with {plate}, permit CUD1 would authorise 3 plates at once"
            )) && detail.contains("allows at most 2: it overlaps AA111AA, CC333CC"),
            "{body}"
        );
    }
    let (status, _, body) = post(
        "CUD1",
        serde_json::json!({"plate": "DD444DD", "from": at(3), "to": at(5)}),
    )
    .await;
    assert_eq!(status, 201, "touching is not overlapping: {body}");
    let (status, _, body) = post(
        "RES1",
        serde_json::json!({"plate": "DD444DD", "from": at(0), "to": at(1)}),
    )
    .await;
    assert_eq!(status, 409, "not person-bound: {body}");
    let (status, _, _) = post(
        "NOPE",
        serde_json::json!({"plate": "DD444DD", "from": at(0), "to": at(1)}),
    )
    .await;
    assert_eq!(status, 404);
    // The police may read permits but not register plates.
    let (status, _, _) = install
        .call("GET", "/api/v1/permits/CUD1", Some(police), None)
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = install
        .call(
            "POST",
            "/api/v1/permits/CUD1/temporary-plates",
            Some(police),
            Some(serde_json::json!({"plate": "EE555EE", "from": at(0), "to": at(1)})),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_cude_request_is_urgent_with_its_category_standard_and_an_unknown_category_is_refused() {
    let Some(office) = CudeRegister::new().await else {
        return;
    };
    let (install, op) = (&office.install, &office.op);
    // A CUDE request: high priority, and the CUDE category's short service standard
    // (5 days in the fixture policy) instead of the case type's default; an unknown
    // category is refused.
    let request = serde_json::json!({"case_type": "cude", "subject": "Contrassegno", "channel": "web",
        "citizen": crate::harness::citizen()});
    let (status, _, case) = install
        .call("POST", "/api/v1/cases", Some(op), Some(request))
        .await;
    assert_eq!(status, 201, "{case}");
    assert_eq!(case["priority"], "high");
    let received =
        chrono::NaiveDate::parse_from_str(&case["received_at"].as_str().unwrap()[..10], "%Y-%m-%d")
            .unwrap();
    let service = chrono::NaiveDate::parse_from_str(
        case["sla"]["service_due_at"].as_str().unwrap(),
        "%Y-%m-%d",
    )
    .unwrap();
    assert_eq!((service - received).num_days(), 5, "{case}");
    let request = serde_json::json!({"case_type": "ztl_permit", "subject": "Permesso", "channel": "web",
        "citizen": crate::harness::citizen(), "fields": {"category": "astronauti"}});
    let (status, _, problem) = install
        .call("POST", "/api/v1/cases", Some(op), Some(request))
        .await;
    assert_eq!(status, 422);
    assert_eq!(
        problem["errors"][0]["field"], "fields.category",
        "{problem}"
    );
}

#[tokio::test]
async fn a_contested_transit_shows_what_covered_it_and_the_permits_history() {
    let Some(office) = CudeRegister::new().await else {
        return;
    };
    let (install, op, police) = (&office.install, &office.op, &office.police);
    let at = |hours| office.at(hours);
    office.with_cc333cc().await;
    // The citizen is fined anyway and contests it: the SEG case shows, for each transit,
    // what covered it, and every permit of the plate with its history.
    let seg = serde_json::json!({"case_type": "seg", "subject": "Contestazione multa ZTL", "channel": "counter",
        "citizen": crate::harness::citizen(),
        "fields": {"plate": "CC333CC", "transits": [
            {"transit_id": "T1", "gate": "V04", "timestamp": at(-1)},
            {"transit_id": "T2", "gate": "V04", "timestamp": at(-5)},
            {"transit_id": "T3", "gate": "V99", "timestamp": at(-1)}]}});
    let (status, _, case) = install
        .call("POST", "/api/v1/cases", Some(op), Some(seg))
        .await;
    assert_eq!(status, 201, "{case}");
    let reference = case["reference"].as_str().unwrap();
    let (status, _, evidence) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/evidence"),
            Some(op),
            None,
        )
        .await;
    assert_eq!(status, 200, "{evidence}");
    let verdicts: Vec<(&str, &str)> = evidence["transits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["transit_id"].as_str().unwrap(),
                t["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("T1", "permit"),
            ("T2", "not_valid_at_time"),
            ("T3", "unreadable")
        ],
        "{evidence}"
    );
    assert_eq!(evidence["transits"][0]["permit"], "CUD1");
    assert_eq!(evidence["permits"][0]["number"], "CUD1");
    assert!(
        evidence["permits"][0]["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "temporary_plate"),
        "{evidence}"
    );
    let (status, _, _) = install
        .call(
            "GET",
            &format!("/api/v1/cases/{reference}/evidence"),
            Some(police),
            None,
        )
        .await;
    assert_eq!(status, 403, "the police do not read case files");
}

/// A started installation with an operator and a police user, for issuing permits.
struct IssuingOffice {
    install: Install,
    op: String,
    police: String,
}

impl IssuingOffice {
    async fn new() -> IssuingOffice {
        let mut install = Install::new("").await;
        let op = install.user("op", "operator");
        let police = install.user("vigile", "police");
        install.start(&[]).await;
        IssuingOffice {
            install,
            op,
            police,
        }
    }

    /// A residents' permit case of Mario Rossi with these fields: its reference.
    async fn create(&self, fields: serde_json::Value) -> String {
        let body = serde_json::json!({"case_type": "ztl_permit", "subject": "Permesso residenti", "channel": "counter",
            "citizen": crate::harness::citizen(), "fields": fields});
        let (status, _, case) = self
            .install
            .call("POST", "/api/v1/cases", Some(&self.op), Some(body))
            .await;
        assert_eq!(status, 201, "{case}");
        case["reference"].as_str().unwrap().to_owned()
    }

    async fn act(
        &self,
        reference: String,
        action: &'static str,
    ) -> (u16, String, serde_json::Value) {
        self.install
            .call(
                "POST",
                &format!("/api/v1/cases/{reference}/actions"),
                Some(&self.op),
                Some(serde_json::json!({"action": action})),
            )
            .await
    }

    /// A new office with one permit issued ([`IssuingOffice::issued`]): the office, the
    /// case as the issue answered it and the permit's number.
    async fn with_permit() -> (IssuingOffice, serde_json::Value, String) {
        let office = IssuingOffice::new().await;
        let case = office.issued().await;
        let number = permit_number(&case);
        (office, case, number)
    }

    /// A request of the operator.
    async fn call(
        &self,
        method: &'static str,
        path: String,
        body: Option<serde_json::Value>,
    ) -> (u16, String, serde_json::Value) {
        self.install.call(method, &path, Some(&self.op), body).await
    }

    /// A complete case for plate AB 123 CD, reviewed, approved and issued: the case as the
    /// issue answered it.
    async fn issued(&self) -> serde_json::Value {
        let good = self.create(serde_json::json!({"category": "residenti", "plates": ["ab 123 cd"], "documents": ["documento_identita", "carta_circolazione"]})).await;
        for action in ["start_review", "approve"] {
            let (status, _, body) = self.act(good.clone(), action).await;
            assert_eq!(status, 200, "{action}: {body}");
        }
        let (status, _, case) = self.act(good.clone(), "issue").await;
        assert_eq!(status, 200, "{case}");
        assert_eq!(case["status"], "issued");
        case
    }
}

/// The number of the permit an issued case's journal names.
fn permit_number(case: &serde_json::Value) -> String {
    let issued = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "permit_issued")
        .expect("journaled");
    issued["detail"]["permit"].as_str().unwrap().to_owned()
}

/// From the request to the car passing the gate: a ZTL case issued under the policy gets
/// its permit number, its whitelist rows, its printed PDF with a QR code, and a public
/// verification page; the category's rules are enforced before the case changes state.
#[tokio::test]
async fn issuing_a_case_creates_the_permit_its_pdf_and_its_verification_page() {
    let office = IssuingOffice::new().await;
    let (install, police) = (&office.install, &office.police);
    let case = office.issued().await;
    let number = permit_number(&case);
    // CONTRACT §1: {CATEGORY_PREFIX}{YYYY}{NNNNN}, never the shape of a case reference.
    let year = &case["received_at"].as_str().unwrap()[..4];
    assert_eq!(number, format!("RES{year}00001"));
    let pdf = case["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["filename"] == format!("permesso-{number}.pdf"))
        .expect("the printed permit");
    assert_eq!(pdf["media_type"], "application/pdf");
    // The police see it at once.
    let (_, _, verdict) = install
        .call(
            "GET",
            "/api/v1/permits/verify?plate=AB123CD&gate=V04",
            Some(police),
            None,
        )
        .await;
    assert_eq!(
        verdict["reason"], "wrong_zone",
        "residenti cover zone A only: {verdict}"
    );
    let (_, _, permit) = install
        .call(
            "GET",
            &format!("/api/v1/permits/{number}"),
            Some(police),
            None,
        )
        .await;
    assert_eq!(permit["plates"][0]["plate"], "AB123CD");
    assert_eq!(permit["plates"][0]["source"], "issued");
    // The verification page behind the QR code: valid, the plate, nothing personal.
    let token = permit["verify_token"]
        .as_str()
        .expect("a verification token")
        .to_owned();
    let page = install
        .client
        .get(format!("{}/permits/v/{token}", install.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("VALIDO") && !html.contains("NON VALIDO") && html.contains("AB123CD"),
        "{html}"
    );
    assert!(
        !html.contains("Rossi") && !html.contains("RSSMRA"),
        "no personal data: {html}"
    );
    let resp = install
        .client
        .get(format!("{}/permits/v/{}", install.base(), "0".repeat(32)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn refusals_to_issue_a_permit_leave_the_case_as_it_was() {
    let office = IssuingOffice::new().await;
    let (install, op) = (&office.install, &office.op);
    let create = |fields| office.create(fields);
    let act = |reference, action| office.act(reference, action);
    // AB123CD has its permit already.
    office.issued().await;
    // Refusals leave the case as it was.
    let too_many = create(serde_json::json!({"category": "residenti", "plates": ["AA111AA", "BB222BB", "CC333CC"], "documents": ["documento_identita", "carta_circolazione"]})).await;
    let missing_docs = create(serde_json::json!({"category": "residenti", "plates": ["DD444DD"], "documents": ["documento_identita"]})).await;
    let duplicate = create(serde_json::json!({"category": "residenti", "plates": ["AB-123-CD"], "documents": ["documento_identita", "carta_circolazione"]})).await;
    for (reference, why) in [
        (too_many, "at most 2"),
        (missing_docs, "carta_circolazione"),
        (duplicate, "already has permit"),
    ] {
        for action in ["start_review", "approve"] {
            act(reference.clone(), action).await;
        }
        let (status, _, problem) = act(reference.clone(), "issue").await;
        assert_eq!(status, 409, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
        let (_, _, case) = install
            .call("GET", &format!("/api/v1/cases/{reference}"), Some(op), None)
            .await;
        assert_eq!(case["status"], "approved");
    }
}

#[tokio::test]
async fn a_suspended_permit_shows_at_once_and_a_revoked_one_is_not_reinstated() {
    let office = IssuingOffice::new().await;
    let (install, op, police) = (&office.install, &office.op, &office.police);
    let number = permit_number(&office.issued().await);
    let (_, _, permit) = install
        .call(
            "GET",
            &format!("/api/v1/permits/{number}"),
            Some(police),
            None,
        )
        .await;
    let token = permit["verify_token"].as_str().unwrap().to_owned();
    // Suspended: the patrol's check and the public page say so at once; the history says
    // who and why; a revoked permit is not reinstated.
    let status = |value: &'static str, reason: &'static str| {
        let install = &install;
        let number = number.clone();
        async move {
            install
                .call(
                    "POST",
                    &format!("/api/v1/permits/{number}/status"),
                    Some(op),
                    Some(serde_json::json!({"status": value, "reason": reason})),
                )
                .await
        }
    };
    let (code, _, suspended) = status("suspended", "veicolo venduto, in verifica").await;
    assert_eq!(code, 200, "{suspended}");
    let kinds: Vec<&str> = suspended["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["issued", "suspended"]);
    assert_eq!(suspended["history"][1]["actor"], "op");
    // An instant inside the permit's validity when zone A is enforced (a weekday morning).
    let (_, _, permit) = install
        .call(
            "GET",
            &format!("/api/v1/permits/{number}"),
            Some(police),
            None,
        )
        .await;
    let at = enforced_weekday_morning(permit["plates"][0]["valid_from"].as_str().unwrap());
    let (_, _, verdict) = install
        .call(
            "GET",
            &format!("/api/v1/permits/verify?plate=AB123CD&gate=V01&at={at}"),
            Some(police),
            None,
        )
        .await;
    assert_eq!(verdict["reason"], "suspended_or_revoked", "{verdict}");
    let html = install
        .client
        .get(format!("{}/permits/v/{token}", install.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("NON VALIDO"), "{html}");
    assert_eq!(status("active", "verifica conclusa").await.0, 200);
    assert_eq!(status("sospeso", "x").await.0, 422);
    assert_eq!(status("suspended", " ").await.0, 422);
    assert_eq!(status("revoked", "richiesta del titolare").await.0, 200);
    assert_eq!(status("active", "ripensamento").await.0, 409);
}

/// A renewal is a new case prefilled from the old permit; once issued, the new permit
/// starts when the old one ends and both histories say so.
#[tokio::test]
async fn renewing_a_permit_opens_a_prefilled_case_and_continues_the_validity() {
    let (office, _, old) = IssuingOffice::with_permit().await;
    let (install, police) = (&office.install, &office.police);
    let call = |method, path, body| office.call(method, path, body);
    let act = |reference, action| office.act(reference, action);

    let renew = format!("/api/v1/permits/{old}/renew");
    let (status, _, _) = install
        .call("POST", &renew, Some(police), Some(serde_json::json!({})))
        .await;
    assert_eq!(status, 403, "the police do not open cases");
    let (status, _, renewal) = call("POST", renew.clone(), Some(serde_json::json!({}))).await;
    assert_eq!(status, 201, "{renewal}");
    assert_eq!(renewal["case_type"], "ztl_permit");
    assert_eq!(
        renewal["citizen"]["fiscal_code"],
        crate::harness::citizen()["fiscal_code"]
    );
    assert_eq!(
        renewal["fields"],
        serde_json::json!({"category": "residenti", "plates": [{"plate": "AB123CD", "country": "IT"}],
            "renews": old, "documents": []})
    );
    let reference = renewal["reference"].as_str().unwrap().to_owned();
    for action in ["start_review", "approve"] {
        act(reference.clone(), action).await;
    }
    let (status, _, problem) = act(reference.clone(), "issue").await;
    assert_eq!(status, 409, "the documents are asked again: {problem}");
    // The operator ticks the documents received: a journaled change of the fields.
    let fields = format!("/api/v1/cases/{reference}/fields");
    let (status, _, problem) = call(
        "PATCH",
        fields.clone(),
        Some(serde_json::json!({"bad key": 1})),
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    let (status, _, case) = call(
        "PATCH",
        fields.clone(),
        Some(serde_json::json!({"documents": ["documento_identita", "carta_circolazione"]})),
    )
    .await;
    assert_eq!(status, 200, "{case}");
    let change = case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "fields_changed")
        .expect("journaled");
    assert_eq!(
        change["detail"]["changes"]["documents"]["from"],
        serde_json::json!([])
    );
    assert_eq!(change["actor"], "op");
    let (status, _, case) = act(reference.clone(), "issue").await;
    assert_eq!(status, 200, "{case}");
    let issued = &case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "permit_issued")
        .unwrap()["detail"];
    assert_eq!(issued["renews"], old.as_str());
    let new = issued["permit"].as_str().unwrap();
    assert_ne!(new, old);
    let (_, _, old_permit) = call("GET", format!("/api/v1/permits/{old}"), None).await;
    let (_, _, new_permit) = call("GET", format!("/api/v1/permits/{new}"), None).await;
    assert_eq!(
        new_permit["plates"][0]["valid_from"], old_permit["plates"][0]["valid_to"],
        "the renewal starts when the old permit ends"
    );
    assert_eq!(old_permit["state"], "active");
    assert_eq!(new_permit["state"], "not_yet_valid");
    let renewed = old_permit["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "renewed")
        .expect("the old permit's history says it was renewed");
    assert_eq!(renewed["detail"]["by"], new);
}

#[tokio::test]
async fn changing_a_permits_plate_amends_it_from_now_on_and_prints_it_again() {
    let (office, _, old) = IssuingOffice::with_permit().await;
    let call = |method, path, body| office.call(method, path, body);
    let act = |reference, action| office.act(reference, action);
    // The holder sells the car: a case amending the old permit changes its plate from
    // now on (no documents asked), and prints the permit again.
    let body = serde_json::json!({"case_type": "ztl_permit", "subject": "Cambio targa", "channel": "counter",
        "citizen": crate::harness::citizen(), "fields": {"amends": old, "plates": ["ZZ 999 ZZ"]}});
    let (_, _, change) = call("POST", "/api/v1/cases".into(), Some(body)).await;
    let change = change["reference"].as_str().unwrap().to_owned();
    for action in ["start_review", "approve", "issue"] {
        let (status, _, body) = act(change.clone(), action).await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    let (_, _, changed) = call("GET", format!("/api/v1/permits/{old}"), None).await;
    let rows: Vec<(&str, &str)> = changed["plates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["plate"].as_str().unwrap(), r["source"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [("AB123CD", "issued"), ("ZZ999ZZ", "changed")],
        "{changed}"
    );
    assert_eq!(
        changed["plates"][0]["valid_to"], changed["plates"][1]["valid_from"],
        "the old plate ends when the new one starts"
    );
    let (_, _, case) = call("GET", format!("/api/v1/cases/{change}"), None).await;
    let printed = case["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["filename"] == format!("permesso-{old}.pdf"))
        .expect("the permit printed again");
    let (_, _, info) = call(
        "GET",
        format!("/api/v1/documents/{}/info", printed["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(info["protocol"][0]["direction"], "out", "{info}");
}

#[tokio::test]
async fn a_closed_cases_fields_stay_as_they_were_and_a_revoked_permit_is_not_renewed() {
    let (office, first_case, old) = IssuingOffice::with_permit().await;
    let call = |method, path, body| office.call(method, path, body);
    let act = |reference, action| office.act(reference, action);
    let first = first_case["reference"].as_str().unwrap().to_owned();
    let fields = format!("/api/v1/cases/{first}/fields");
    // A closed case's fields stay as they were; a revoked permit is not renewed.
    act(first.clone(), "close").await;
    let (status, _, _) = call("PATCH", fields, Some(serde_json::json!({"documents": []}))).await;
    assert_eq!(status, 409);
    let (status, _, _) = call(
        "POST",
        format!("/api/v1/permits/{old}/status"),
        Some(serde_json::json!({"status": "revoked", "reason": "trasferimento di residenza"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, problem) = call(
        "POST",
        format!("/api/v1/permits/{old}/renew"),
        Some(serde_json::json!({})),
    )
    .await;
    assert_eq!(status, 409, "{problem}");
}

/// 10:00 in Rome on the first weekday after `valid_from` (an RFC 3339 instant), when the
/// example policy's zone A is enforced; percent-encoded for a query string.
fn enforced_weekday_morning(valid_from: &str) -> String {
    use chrono::{Datelike, TimeZone, Weekday};
    let start = chrono::DateTime::parse_from_rfc3339(valid_from)
        .unwrap()
        .with_timezone(&sportello_domain::calendar::ROME);
    let mut day = start.date_naive().succ_opt().unwrap();
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        day = day.succ_opt().unwrap();
    }
    sportello_domain::calendar::ROME
        .from_local_datetime(&day.and_hms_opt(10, 0, 0).unwrap())
        .single()
        .unwrap()
        .to_rfc3339()
        .replace('+', "%2B")
}

/// Citizen A's CUDE case and citizen B's CUDE permit used to share the text
/// `CUD-YYYY-000001`, and a stranger's e-mail quoting B's permit was filed in A's case.
/// Now the permit has a number of its own shape; an e-mail quoting it reaches B's case
/// only when B sends it, and anyone else's opens a case flagged for a look, the rule saying
/// why.
#[tokio::test]
async fn a_permit_number_in_an_email_reaches_the_holders_case_only() {
    let mut install = Install::new("").await;
    let op = install.user("op", "operator");
    let mta = install.user("mta", "integration");
    install.start(&[]).await;
    let create = |citizen: serde_json::Value, fields: serde_json::Value| {
        let install = &install;
        let op = op.clone();
        async move {
            let body = serde_json::json!({"case_type": "cude", "subject": "Contrassegno", "channel": "counter",
                "citizen": citizen, "fields": fields});
            let (status, _, case) = install
                .call("POST", "/api/v1/cases", Some(&op), Some(body))
                .await;
            assert_eq!(status, 201, "{case}");
            case["reference"].as_str().unwrap().to_owned()
        }
    };
    let a = create(
        serde_json::json!({"fiscal_code": "RSSMRA85T10A562S", "name": "Anna Neri", "email": "anna.neri@example.it"}),
        serde_json::json!({}),
    )
    .await;
    assert!(a.starts_with("CUD-") && a.ends_with("-000001"), "{a}");
    let b = create(
        crate::harness::citizen(),
        serde_json::json!({"plates": ["AB123CD"], "documents": ["contrassegno_cude", "documento_identita"]}),
    )
    .await;
    for action in ["start_review", "approve", "issue"] {
        let (status, _, body) = install
            .call(
                "POST",
                &format!("/api/v1/cases/{b}/actions"),
                Some(&op),
                Some(serde_json::json!({"action": action})),
            )
            .await;
        assert_eq!(status, 200, "{action}: {body}");
    }
    let (_, _, permit) = install
        .call("GET", &format!("/api/v1/cases/{b}"), Some(&op), None)
        .await;
    let number = permit["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "permit_issued")
        .unwrap()["detail"]["permit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(number, format!("CUD{}00001", &a[4..8]), "{number} vs {a}");
    let email = |from: &str, id: &str| {
        let install = &install;
        let mta = mta.clone();
        let raw = format!(
            "From: {from}\r\nTo: protocollo@comune.example.it\r\nSubject: Contrassegno {number}\r\n\
             Message-ID: <{id}@example.org>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n\r\n\
             Scrivo per il permesso {number}.\r\n"
        );
        async move {
            let response = install
                .client
                .post(format!("{}/api/v1/inbound/email", install.base()))
                .bearer_auth(&mta)
                .header("content-type", "message/rfc822")
                .body(raw)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()
        }
    };
    let rule_of = |reference: String| {
        let install = &install;
        let op = op.clone();
        async move {
            let (status, _, messages) = install
                .call(
                    "GET",
                    &format!("/api/v1/cases/{reference}/messages"),
                    Some(&op),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{messages}");
            messages
                .as_array()
                .or_else(|| messages["items"].as_array())
                .and_then(|m| m.last())
                .map(|m| m["rule"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
        }
    };
    let stranger = email("Sconosciuto <x@example.org>", "s1").await;
    assert_eq!(stranger["outcome"], "new_case", "{stranger}");
    let own = stranger["case"].as_str().unwrap().to_owned();
    assert!(own != a && own != b, "{stranger}");
    assert!(
        stranger["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "permit_reference_unverified"),
        "{stranger}"
    );
    assert_eq!(rule_of(own).await, "permit_reference_unverified");
    let holder = email("Mario Rossi <Mario.Rossi@example.it>", "b1").await;
    assert_eq!(
        (holder["outcome"].as_str(), holder["case"].as_str()),
        (Some("attached"), Some(b.as_str())),
        "{holder}"
    );
    assert_eq!(rule_of(b).await, "permit_reference");
    // A's case got neither.
    assert_eq!(rule_of(a).await, "");
}
