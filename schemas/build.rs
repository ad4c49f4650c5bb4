//! The catalogue files are embedded with `include_dir!`, which cannot tell Cargo about
//! them: rebuild whenever anything in this crate's directory changes.

fn main() {
    println!("cargo:rerun-if-changed=.");
}
