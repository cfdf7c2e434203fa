//! Loading the built plugin files: many plugins in one process (each its own module, not the
//! first one again), and bad files reported one by one while the good ones still load.

use quiver_host::{Host, LoadError};
use quiver_testing as testing;
use std::path::PathBuf;

fn built(stem: &str) -> PathBuf {
    let name = format!("{}{stem}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let p = testing::plugin_dir().join(name);
    assert!(p.is_file(), "{} missing: run `cargo xtask build`", p.display());
    p
}

#[test]
fn many_plugins_in_one_process_each_their_own() {
    let host = testing::host();
    let names: Vec<&str> = host.plugins().iter().map(|p| p.name()).collect();
    assert!(names.contains(&"conformal-selection") && names.contains(&"selective-risk"), "{names:?}");
    // each file gives its own manifest (abi_stable's load_from_file would give the first twice)
    for p in host.plugins() {
        let stem = p.path.file_stem().unwrap().to_string_lossy().trim_start_matches("lib").replace('_', "-");
        assert_eq!(stem, p.name());
    }
}

#[test]
fn bad_files_are_reported_and_the_rest_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let ext = quiver_host::library_extension();
    std::fs::copy(built("conformal_selection"), dir.path().join(format!("liba_conformal.{ext}"))).unwrap();
    std::fs::copy(built("selective_risk"), dir.path().join(format!("libb_selective.{ext}"))).unwrap();
    // a second copy of a plugin: duplicate method
    std::fs::copy(built("conformal_selection"), dir.path().join(format!("libc_again.{ext}"))).unwrap();
    // garbage with a library's name
    std::fs::write(dir.path().join(format!("libd_corrupt.{ext}")), b"\x7fELF but not really a library").unwrap();
    // a real shared library that is not a Quiver plugin (libm, where present)
    let libm = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if let Some(libm) = &libm {
        std::fs::copy(libm, dir.path().join(format!("libe_libm.{ext}"))).unwrap();
    }
    // files without the library extension are ignored
    std::fs::write(dir.path().join("README.txt"), "not a plugin").unwrap();

    let mut host = Host::new();
    host.load_dir(dir.path());
    let names: Vec<&str> = host.plugins().iter().map(|p| p.name()).collect();
    assert_eq!(names, vec!["conformal-selection", "selective-risk"]);

    let failures = host.failures();
    assert_eq!(failures.len(), 2 + libm.is_some() as usize, "{failures:?}");
    match &failures[0] {
        LoadError::Duplicate { method, first, path } => {
            assert_eq!(method, "conformal-selection");
            assert!(first.ends_with(format!("liba_conformal.{ext}")));
            assert!(path.ends_with(format!("libc_again.{ext}")));
        }
        other => panic!("expected a duplicate, got {other}"),
    }
    assert!(
        matches!(&failures[1], LoadError::NotALibrary { path, .. } if path.ends_with(format!("libd_corrupt.{ext}")))
    );
    assert!(failures[1].to_string().contains("libd_corrupt"), "{}", failures[1]);
    if libm.is_some() {
        // refused from its symbol table, before it is loaded
        assert!(matches!(&failures[2], LoadError::NotAPlugin { .. }));
        assert!(failures[2].to_string().contains("not a Quiver plugin (it has no `quiver_plugin_identity` symbol)"));
    }

    // a missing file is an error too
    let e = host.load_file(&dir.path().join("nope.so")).err().unwrap();
    assert!(matches!(e, LoadError::NotALibrary { .. }));
}

#[test]
fn discovery_prefers_the_explicit_folder() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::discover(Some(dir.path()));
    assert_eq!(host.searched(), &[dir.path().to_path_buf()]);
    assert!(host.plugins().is_empty());
    let e = host.get("conformal-selection").err().unwrap();
    assert!(e.to_string().contains("unknown method 'conformal-selection' (loaded: none"), "{e}");
}

/// A shared library in a plugin folder that is not a Quiver plugin is refused from its symbol
/// table: it is never loaded, so its initialisers never run.
#[test]
fn non_plugin_libraries_are_refused_without_running_their_initialisers() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("constructor-ran");
    let source = dir.path().join("ctor.c");
    std::fs::write(
        &source,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void touch(void) {{ FILE *f = fopen({:?}, \"w\"); if (f) fclose(f); }}\nint not_a_plugin(void) {{ return 1; }}\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let lib = plugins.join(format!("libctor.{}", std::env::consts::DLL_EXTENSION));
    let built = std::process::Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&source).status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("skipped: no C compiler to build the test library");
        return;
    }
    let mut host = Host::new();
    host.load_dir(&plugins);
    assert!(host.plugins().is_empty());
    assert!(matches!(host.failures(), [LoadError::NotAPlugin { .. }]), "{:?}", host.failures());
    assert!(!marker.exists(), "the library's constructor ran: it was loaded");
}
