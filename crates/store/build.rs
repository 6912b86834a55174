//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! migration files at compile time, and cargo does not watch that folder by itself (a
//! reused build folder would otherwise ship a schema without its newest migration).

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
