//! `civicbus transform new` embeds the SDK's sources with `include_dir!`, which cannot
//! tell Cargo about new files: rebuild when the SDK or the WIT changes.

fn main() {
    println!("cargo:rerun-if-changed=../../transforms/sdk/src");
    println!("cargo:rerun-if-changed=../../transforms/sdk/Cargo.toml");
    println!("cargo:rerun-if-changed=../../transforms/wit");
}
