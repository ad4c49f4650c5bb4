//! The integrator's path with the real tools: `civicbus transform new` scaffolds a crate
//! that builds as is, `transform build` makes the component (adding the wasm target if
//! missing) and prints its digest, `transform test` runs it in the production sandbox,
//! validates the outputs against the schemas and compares them with the expected ones —
//! exit 0 when they match, 1 with a diff when not; the example plugins' golden files pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn civicbus(args: &[&str], dir: &Path) -> Output {
    // Plugin builds share one target directory across runs (CI sets its own).
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join("target"))
        .join("transform-scaffold");
    Command::new(env!("CARGO_BIN_EXE_civicbus"))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("civicbus runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn new_build_and_test_a_plugin() {
    let dir = tempfile::tempdir().expect("tmp");
    let o = civicbus(&["transform", "new", "Bad_Name"], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a plugin name"), "{}", text(&o));

    let o = civicbus(&["transform", "new", "parcel-tagger"], dir.path());
    assert!(o.status.success(), "{}", text(&o));
    let crate_dir = dir.path().join("parcel-tagger");
    let o = civicbus(&["transform", "build"], &crate_dir);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    let wasm = out
        .lines()
        .find_map(|l| l.strip_prefix("plugin: "))
        .expect("the component's path is printed")
        .to_string();
    assert!(out.contains("digest: sha256:"), "{out}");

    // Run it on the sample input; its output validates against the catalogue.
    let input = crate_dir.join("tests/input.json");
    let input = input.to_string_lossy();
    let o = civicbus(&["transform", "test", &wasm, "--input", &input], &crate_dir);
    assert!(o.status.success(), "{}", text(&o));
    let actual: serde_json::Value = serde_json::from_slice(&o.stdout).expect("outputs as JSON");
    assert_eq!(actual[0]["type"], "ca.haliburton.gis.parcel.updated");
    assert_eq!(actual[0]["causationid"], "dys-9003");

    // As expected: exit 0. A different expectation: exit 1 with a diff.
    let expect = crate_dir.join("tests/expected.json");
    std::fs::write(
        &expect,
        serde_json::to_string_pretty(&actual).expect("json"),
    )
    .expect("write");
    let e = expect.to_string_lossy().into_owned();
    let o = civicbus(
        &[
            "transform",
            "test",
            &wasm,
            "--input",
            &input,
            "--expect",
            &e,
        ],
        &crate_dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 output(s) as expected"), "{}", text(&o));
    let mut wrong = actual.clone();
    wrong[0]["subject"] = "4624010001023999999".into();
    std::fs::write(&expect, serde_json::to_string_pretty(&wrong).expect("json")).expect("write");
    let o = civicbus(
        &[
            "transform",
            "test",
            &wasm,
            "--input",
            &input,
            "--expect",
            &e,
        ],
        &crate_dir,
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("-    \"subject\": \"4624010001023999999\"")
            && out.contains("+    \"subject\": \"4624010001023000000\""),
        "{out}"
    );

    // An input the plugin refuses for good: exit 1, saying it would be dead-lettered.
    let county = crate_dir.join("tests/county.json");
    let mut ev: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(crate_dir.join("tests/input.json")).expect("read"),
    )
    .expect("json");
    ev["data"]["Jurisdiction"] = "county".into();
    std::fs::write(&county, ev.to_string()).expect("write");
    let c = county.to_string_lossy().into_owned();
    let o = civicbus(&["transform", "test", &wasm, "--input", &c], &crate_dir);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("terminal"), "{}", text(&o));
}

#[test]
fn the_example_plugins_pass_their_golden_files() {
    let status = Command::new("bash")
        .arg(repo().join("transforms/examples/build.sh"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("build.sh runs");
    assert!(status.success(), "transforms/examples/build.sh failed");
    let golden = repo().join("transforms/examples/tests/golden/permit-to-record");
    let wasm = repo().join("transforms/examples/target/plugins/permit-to-record.wasm");
    let config = format!("@{}", golden.join("config.json").display());
    let o = civicbus(
        &[
            "transform",
            "test",
            &wasm.to_string_lossy(),
            "--input",
            &golden.join("input-dysart-cottage.json").to_string_lossy(),
            "--expect",
            &golden
                .join("expected-dysart-cottage.json")
                .to_string_lossy(),
            "--plugin-config",
            &config,
        ],
        &repo(),
    );
    assert!(o.status.success(), "{}", text(&o));
}
