#!/usr/bin/env bash
# Checks publiccode.yml (standard 0.4, the Developers Italia catalogue's format) for the
# keys the standard requires, with valid values: the controlled vocabularies, lengths,
# dates, the screenshots it names (real PNG/JPEG files in the repository), the licence and
# version agreeing with Cargo.toml and LICENSE, and `it.piattaforme` declaring only the
# national platforms the product implements. Needs python3 with PyYAML. Exit 1 naming
# every problem.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec python3 - "$root" <<'PY'
import datetime, pathlib, re, subprocess, sys
import tomllib
import yaml

root = pathlib.Path(sys.argv[1])
problems = []
checks = 0

def check(ok, message):
    global checks
    checks += 1
    if not ok:
        problems.append(message)
    return ok

CATEGORIES = set("""
accounting agile-project-management applicant-tracking application-development
appointment-scheduling backup billing-and-invoicing blog budgeting business-intelligence
business-process-management cad call-center-management cloud-management collaboration
communications compliance-management contact-management content-management crm
customer-service-and-support data-analytics data-collection data-visualization design
design-system digital-asset-management digital-citizenship document-management
donor-management e-commerce e-signature educational-content email-management
email-marketing employee-management enterprise-project-management
enterprise-social-networking erp event-management facility-management
feedback-and-reviews-management financial-reporting fleet-management fundraising
gamification geographic-information-systems grant-management graphic-design help-desk hr
ide identity-management instant-messaging inventory-management it-asset-management
it-development it-management it-security it-service-management knowledge-management
learning-management-system marketing mind-mapping mobile-marketing mobile-payment
network-management office online-booking online-community payment-gateway payroll
predictive-analysis procurement productivity-suite project-collaboration
project-management property-management real-estate-management remote-support
resource-management sales-management seo service-desk social-media-management survey
talent-management task-management taxes-management test-management time-management
time-tracking translation video-conferencing video-editing visitor-management voip
warehouse-management web-collaboration web-conferencing website-builder whistleblowing
workflow-management""".split())
SCOPES = set("""agriculture culture defence education emergency-services employment energy
environment finance-and-economic-development foreign-affairs healthcare infrastructures
justice local-authorities manufacturing research science-and-technology security society
sport tourism transportation welfare""".split())
PLATFORMS = {"web", "windows", "mac", "linux", "ios", "android"}
STATUSES = {"concept", "development", "beta", "stable", "obsolete"}
TYPES = {"standalone/mobile", "standalone/iot", "standalone/desktop", "standalone/web",
         "standalone/backend", "standalone/other", "addon", "library", "configurationFiles"}
MAINTENANCE = {"internal", "contract", "community", "none"}
TOP_LEVEL = {"publiccodeYmlVersion", "name", "applicationSuite", "url", "landingURL",
             "isBasedOn", "softwareVersion", "releaseDate", "logo", "monochromeLogo",
             "inputTypes", "outputTypes", "platforms", "categories", "usedBy", "roadmap",
             "developmentStatus", "softwareType", "intendedAudience", "description", "legal",
             "maintenance", "localisation", "dependsOn", "it", "organisation"}

path = root / "publiccode.yml"
doc = yaml.safe_load(path.read_text(encoding="utf-8"))
check(isinstance(doc, dict), "publiccode.yml is not a mapping")
unknown = set(doc) - TOP_LEVEL
check(not unknown, f"unknown top-level keys: {sorted(unknown)}")

def text(value):
    return isinstance(value, str) and value.strip() != ""

def date(value):
    if isinstance(value, datetime.date):
        return False  # an unquoted date: the standard wants the string "YYYY-MM-DD"
    try:
        return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and bool(datetime.date.fromisoformat(value))
    except (TypeError, ValueError):
        return False

workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]["package"]

check(doc.get("publiccodeYmlVersion") == "0.4", "publiccodeYmlVersion must be the string \"0.4\"")
check(text(doc.get("name")), "name is required")
check(isinstance(doc.get("url"), str) and re.match(r"^https?://[^\s/]+\.[^\s/]+/\S+$", doc["url"]) is not None,
      "url must be the repository's http(s) URL")
check(doc.get("url") == workspace.get("repository"),
      f"url {doc.get('url')!r} differs from Cargo.toml's repository {workspace.get('repository')!r}")
check(doc.get("softwareVersion") == workspace["version"],
      f"softwareVersion {doc.get('softwareVersion')!r} differs from Cargo.toml's version {workspace['version']!r}")
check(date(doc.get("releaseDate")), "releaseDate must be a quoted YYYY-MM-DD date")
platforms = doc.get("platforms")
check(isinstance(platforms, list) and platforms and all(p in PLATFORMS for p in platforms),
      f"platforms must be a non-empty list of {sorted(PLATFORMS)}")
categories = doc.get("categories")
check(isinstance(categories, list) and categories, "categories is required")
for c in categories or []:
    check(c in CATEGORIES, f"category {c!r} is not in the standard's vocabulary")
check(doc.get("developmentStatus") in STATUSES, f"developmentStatus must be one of {sorted(STATUSES)}")
check(doc.get("softwareType") == "standalone/web", "softwareType must be standalone/web (a web application)")
for s in (doc.get("intendedAudience") or {}).get("scope", []):
    check(s in SCOPES, f"intendedAudience.scope {s!r} is not in the standard's vocabulary")

description = doc.get("description") or {}
for lang in ("it", "en"):
    d = description.get(lang)
    if not check(isinstance(d, dict), f"description.{lang} is required"):
        continue
    short = d.get("shortDescription")
    check(text(short) and len(short) <= 150, f"description.{lang}.shortDescription: required, at most 150 characters")
    long_ = d.get("longDescription")
    check(text(long_) and 150 <= len(long_) <= 10000,
          f"description.{lang}.longDescription: required, 150 to 10000 characters")
    features = d.get("features")
    check(isinstance(features, list) and features and all(text(f) for f in features),
          f"description.{lang}.features: a non-empty list of texts")
    shots = d.get("screenshots")
    if check(isinstance(shots, list) and shots, f"description.{lang}.screenshots: at least one"):
        for shot in shots:
            file = root / shot
            ok = file.is_file()
            check(ok, f"screenshot {shot} does not exist")
            if ok:
                head = file.read_bytes()[:8]
                check(head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff"),
                      f"screenshot {shot} is not a PNG or JPEG image")

legal = doc.get("legal") or {}
check(legal.get("license") == "EUPL-1.2", "legal.license must be EUPL-1.2")
check(legal.get("license") == workspace.get("license"), "legal.license differs from Cargo.toml's license")
licence = root / "LICENSE"
check(licence.is_file() and licence.read_text(encoding="utf-8").startswith("EUROPEAN UNION PUBLIC LICENCE v. 1.2"),
      "LICENSE must hold the EUPL-1.2 text")

maintenance = doc.get("maintenance") or {}
mtype = maintenance.get("type")
check(mtype in MAINTENANCE, f"maintenance.type must be one of {sorted(MAINTENANCE)}")
if mtype in ("internal", "community"):
    contacts = maintenance.get("contacts")
    check(isinstance(contacts, list) and contacts and all(isinstance(c, dict) and text(c.get("name")) for c in contacts),
          "maintenance.contacts: each with a name (required for internal or community maintenance)")
if mtype == "contract":
    contractors = maintenance.get("contractors")
    check(isinstance(contractors, list) and contractors
          and all(text(c.get("name")) and date(c.get("until")) for c in contractors),
          "maintenance.contractors: each with name and until")

loc = doc.get("localisation") or {}
check(isinstance(loc.get("localisationReady"), bool), "localisation.localisationReady must be true or false")
check(isinstance(loc.get("availableLanguages"), list) and {"it", "en"} <= set(loc.get("availableLanguages") or []),
      "localisation.availableLanguages must list it and en")
# The languages declared are the ones the pages are translated into.
for lang in loc.get("availableLanguages") or []:
    check((root / "crates/web/locales" / f"{lang}.toml").is_file(), f"no crates/web/locales/{lang}.toml for language {lang}")

for kind, deps in (doc.get("dependsOn") or {}).items():
    check(kind in ("open", "proprietary", "hardware"), f"dependsOn.{kind} is not a valid kind")
    for dep in deps or []:
        check(isinstance(dep, dict) and text(dep.get("name")), f"dependsOn.{kind}: every dependency needs a name")
        for key in ("version", "versionMin", "versionMax"):
            if key in dep:
                check(isinstance(dep[key], str), f"dependsOn {dep.get('name')}.{key} must be a string")
names = {d.get("name", "").lower() for deps in (doc.get("dependsOn") or {}).values() for d in deps or []}
check(any("postgresql" in n for n in names), "dependsOn must name PostgreSQL")
check(any("tesseract" in n for n in names), "dependsOn must name Tesseract")

it = doc.get("it") or {}
check(it.get("countryExtensionVersion") == "1.0", "it.countryExtensionVersion must be \"1.0\"")
for section in ("conforme", "piattaforme"):
    values = it.get(section)
    check(isinstance(values, dict) and values and all(isinstance(v, bool) for v in values.values()),
          f"it.{section} must map keys to true/false")
check(set(it.get("conforme") or {}) <= {"lineeGuidaDesign", "modelloInteroperabilita", "misureMinimeSicurezza", "gdpr"},
      "it.conforme has an unknown key")
piattaforme = it.get("piattaforme") or {}
check(set(piattaforme) <= {"spid", "cie", "anpr", "pagopa", "io"}, "it.piattaforme has an unknown key")
# A platform may be declared only when the product has its configuration section
# (`sportello config example`, crates/config/sportello.example.toml).
config_text = (root / "crates/config/sportello.example.toml").read_text(encoding="utf-8")
needs = {"spid": "[citizen_login]", "cie": "[citizen_login]", "pagopa": "[pagopa]", "io": "[outbound.io]", "anpr": "[anpr]"}
for platform, declared in piattaforme.items():
    if declared:
        check(needs[platform] in config_text,
              f"it.piattaforme.{platform} is true but the configuration has no {needs[platform]} section")

for p in problems:
    print(f"publiccode.yml: {p}", file=sys.stderr)
print(f"publiccode: {checks - len(problems)} passed, {len(problems)} failed")
sys.exit(1 if problems else 0)
PY
