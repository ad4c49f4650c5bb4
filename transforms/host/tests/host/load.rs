//! Loading: the allowlist, init, digests, the compile cache, broken files.

use civicbus_transform_host::{HostConfig, LoadError, TransformHost, digest};

use crate::common::{config, guest, host, load, test_limits};

#[test]
fn a_custom_forbidden_import_is_refused_by_name() {
    let host = host();
    match host.load("evil", &guest("forbidden-import"), "{}") {
        Err(LoadError::ForbiddenImport { name, import }) => {
            assert_eq!(name, "evil");
            assert_eq!(import, "evil:net/socket");
        }
        other => panic!("expected ForbiddenImport, got {other:?}"),
    }
}

#[test]
fn wasi_sockets_are_refused_by_name() {
    let host = host();
    let error = match host.load("net", &guest("wasi-sockets"), "{}") {
        Err(error) => error,
        Ok(_) => panic!("a plugin importing wasi:sockets must be refused"),
    };
    match &error {
        LoadError::ForbiddenImport { import, .. } => {
            assert!(import.starts_with("wasi:sockets/"), "{import}");
            assert!(error.to_string().contains(import.as_str()), "{error}");
        }
        other => panic!("expected ForbiddenImport, got {other:?}"),
    }
}

#[test]
fn a_refused_configuration_fails_the_load() {
    let host = host();
    match host.load("echo", &guest("echo"), r#"{"fail": true}"#) {
        Err(LoadError::Init { name, message }) => {
            assert_eq!(name, "echo");
            assert!(message.contains("asks init to fail"), "{message}");
        }
        other => panic!("expected Init, got {other:?}"),
    }
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let host = host();
    let cases: [&[u8]; 3] = [b"", b"not wasm at all", b"\0asm\x01\0\0\0"];
    for bytes in cases {
        match host.load_bytes("junk", bytes, "{}") {
            Err(LoadError::Compile { name, .. }) => assert_eq!(name, "junk"),
            other => panic!("{bytes:?}: expected Compile, got {other:?}"),
        }
    }
}

#[test]
fn a_missing_file_names_the_path() {
    let host = host();
    let error = host
        .load("ghost", "/nonexistent/ghost.wasm".as_ref(), "{}")
        .err();
    assert!(matches!(&error, Some(LoadError::Read { .. })), "{error:?}");
    assert!(error.is_some_and(|e| e.to_string().contains("/nonexistent/ghost.wasm")));
}

#[test]
fn the_digest_is_the_sha256_of_the_file() {
    let host = host();
    let echo = load(&host, "echo");
    let bytes = std::fs::read(guest("echo")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(echo.digest(), digest(&bytes));
    assert!(echo.digest().starts_with("sha256:") && echo.digest().len() == 7 + 64);
    assert_eq!(echo.name(), "echo");
    assert_eq!(echo.path(), Some(guest("echo").as_path()));
}

#[test]
fn compiled_code_is_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cached = HostConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..config(test_limits())
    };
    let first = TransformHost::new(cached.clone()).unwrap_or_else(|e| panic!("{e}"));
    let cold = load(&first, "split");
    assert!(!cold.compiled_from_cache());
    assert!(
        !walk(&dir.path().join("cache")).is_empty(),
        "the cache directory holds the compiled component"
    );
    let cold_time = cold.compile_time();
    drop(cold);
    drop(first);

    let second = TransformHost::new(cached).unwrap_or_else(|e| panic!("{e}"));
    let warm = load(&second, "split");
    assert!(warm.compiled_from_cache());
    assert!(
        warm.compile_time() < cold_time,
        "cache hit {:?} vs compile {cold_time:?}",
        warm.compile_time()
    );
    eprintln!(
        "compile: cold {cold_time:?}, from the disk cache {:?}",
        warm.compile_time()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn an_invalid_host_config_is_refused() {
    let bad = HostConfig {
        max_calls_per_instance: 0,
        ..HostConfig::default()
    };
    let error = TransformHost::new(bad).err().map(|e| e.to_string());
    assert!(error.is_some_and(|e| e.contains("max_calls_per_instance")));
}
