//! Rebuilds when a migration changes: `sqlx::migrate!` embeds the files,
//! and cargo cannot see them otherwise.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
