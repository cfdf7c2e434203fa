//! `cargo xtask new-plugin NAME --family F [--dir PATH]`: a plugin skeleton that passes
//! `cargo fmt --check`, `cargo clippy -D warnings` and its own tests as generated.
//!
//! Each family's skeleton (`xtask/templates/FAMILY/`) is a small but real estimator: the crate
//! (`src/lib.rs`, using the SDK's checked parameters, run context and result JSON), a test that
//! loads the built cdylib through the host and runs the conformance suite on it, and a built-in
//! example (`demo.txt` and its data) that the demo and the conformance suite run.
//!
//! * Inside the workspace (the default): `plugins/NAME`, added to the workspace members, the
//!   example in `examples/NAME/`.
//! * With `--dir PATH`: a standalone crate with its own `[workspace]`, path dependencies on this
//!   checkout written relative to PATH, this workspace's `Cargo.lock` and `rustfmt.toml`, and the
//!   example in `PATH/example/`.
//!
//! The templates (`lib.rs.tmpl`, `test.rs.tmpl`: data, not part of any crate) are valid Rust in
//! which `MyMethod`, `my-method` and `my_method` stand for the type, the method and the crate
//! names; format them with `rustfmt --edition 2021 --config-path rustfmt.toml FILE`.

use std::path::{Component, Path, PathBuf};

/// The families, with their template files: (family, lib.rs, test.rs, demo.txt, data files).
type Template = (&'static str, &'static str, &'static str, &'static str, &'static [(&'static str, &'static str)]);

macro_rules! template {
    ($family:literal, [$($data:literal),*]) => {
        (
            $family,
            include_str!(concat!("../templates/", $family, "/lib.rs.tmpl")),
            include_str!(concat!("../templates/", $family, "/test.rs.tmpl")),
            include_str!(concat!("../templates/", $family, "/demo.txt")),
            &[$(($data, include_str!(concat!("../templates/", $family, "/", $data)))),*],
        )
    };
}

const TEMPLATES: [Template; 6] = [
    template!("critic", ["transitions.csv"]),
    template!("quantile-aggregator", ["test.csv"]),
    template!("conformal-selector", ["calibration.csv", "test.csv"]),
    template!("shrinkage", ["data.csv"]),
    template!("batch-pi", ["calibration.csv"]),
    template!("evaluator", ["scores.csv"]),
];

/// The family names `--family` takes.
pub fn families() -> Vec<&'static str> {
    TEMPLATES.iter().map(|t| t.0).collect()
}

/// `new-plugin`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The method name, kebab-case (`my-method`): also the crate's name.
    name: String,
    /// The estimator family: critic, quantile-aggregator, conformal-selector, shrinkage, batch-pi,
    /// evaluator.
    #[arg(long)]
    family: String,
    /// Generate a standalone crate in this folder instead of `plugins/NAME`.
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Generate the skeleton `args` describes.
pub fn run(root: &Path, args: &Args) -> Result<(), String> {
    let name = args.name.as_str();
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        return Err(format!("plugin name '{name}' must be kebab-case: a-z first, then a-z, 0-9 and single dashes"));
    }
    let in_workspace = args.dir.is_none();
    let dir = match &args.dir {
        Some(d) => absolute(d)?,
        None => root.join("plugins").join(name),
    };
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let example_dir = if in_workspace { root.join("examples").join(name) } else { dir.join("example") };
    if example_dir.exists() {
        return Err(format!("{} already exists", example_dir.display()));
    }
    let files = render(name, &args.family, if in_workspace { None } else { Some(root) }, &dir)?;
    for (rel, text) in files {
        let path = if let Some(file) = rel.strip_prefix("example/") { example_dir.join(file) } else { dir.join(rel) };
        std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    format_sources(root, &dir);
    if in_workspace {
        add_member(root, &format!("plugins/{name}"))?;
        println!("created plugins/{name} and examples/{name} ({} plugin '{name}')", args.family);
        println!("next: edit plugins/{name}/src/lib.rs, then `cargo xtask test`");
    } else {
        // the workspace's lockfile, pruned to this crate's graph (same versions as the workspace)
        let lock = crate::cargo()
            .args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .output();
        if !lock.is_ok_and(|o| o.status.success()) {
            println!("note: `cargo metadata` did not run; Cargo.lock will be updated by the first build");
        }
        println!("created {} ({} plugin '{name}', standalone)", dir.display(), args.family);
        println!("next: `cargo test --manifest-path {}/Cargo.toml`", dir.display());
    }
    Ok(())
}

/// Run rustfmt (with the workspace's settings) over the generated sources: the templates are
/// formatted for `MyMethod`, and a longer name can move a line past the width.
fn format_sources(root: &Path, dir: &Path) {
    let files: Vec<PathBuf> = ["src", "tests"]
        .iter()
        .flat_map(|d| std::fs::read_dir(dir.join(d)).into_iter().flatten().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    let status = std::process::Command::new("rustfmt")
        .args(["--edition", "2021", "--config-path"])
        .arg(root.join("rustfmt.toml"))
        .args(&files)
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("note: rustfmt did not run; format the new sources with `cargo fmt`");
    }
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    let p = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().map_err(|e| e.to_string())?.join(p) };
    // resolve `..` and `.` lexically (the folder does not exist yet)
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// `to` relative to the folder `from` (both absolute), with `/` separators.
pub fn relative(from: &Path, to: &Path) -> String {
    let (f, t): (Vec<_>, Vec<_>) = (from.components().collect(), to.components().collect());
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); f.len() - common];
    parts.extend(t[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Add `member` to the workspace's members, after the last `plugins/` entry (or at the end).
fn add_member(root: &Path, member: &str) -> Result<(), String> {
    let path = root.join("Cargo.toml");
    let toml = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let start = toml.find("members = [").ok_or("Cargo.toml has no `members = [` list")?;
    let end = start + toml[start..].find(']').ok_or("Cargo.toml: unterminated members list")?;
    let list = &toml[start..end];
    let entry = format!("    \"{member}\",\n");
    let at = match list.rfind("\"plugins/") {
        Some(i) => start + i + list[i..].find('\n').map_or(list.len() - i, |n| n + 1),
        None => end,
    };
    let toml = format!("{}{entry}{}", &toml[..at], &toml[at..]);
    std::fs::write(&path, toml).map_err(|e| e.to_string())
}

fn camel(name: &str) -> String {
    name.split('-').filter(|w| !w.is_empty()).map(|w| w[..1].to_uppercase() + &w[1..]).collect()
}

/// The files of a skeleton, (path, contents); paths under `example/` are the built-in example.
/// `standalone_root` gives a standalone crate in `dir` depending on that checkout; `None` a
/// workspace member.
pub fn render(
    name: &str,
    family: &str,
    standalone_root: Option<&Path>,
    dir: &Path,
) -> Result<Vec<(String, String)>, String> {
    let (_, lib, test, demo, data) = TEMPLATES
        .iter()
        .find(|t| t.0 == family)
        .ok_or_else(|| format!("unknown family '{family}': one of {}", families().join(", ")))?;
    let crate_name = name.replace('-', "_");
    let fill =
        |t: &str| t.replace("MyMethod", &camel(name)).replace("my-method", name).replace("my_method", &crate_name);
    let example_dir = if standalone_root.is_some() { "example".to_string() } else { format!("../../examples/{name}") };
    let cargo = match standalone_root {
        None => format!(
            "[package]\nname = \"{name}\"\nversion.workspace = true\nedition.workspace = true\nlicense.workspace = true\n\
             rust-version.workspace = true\ndescription = \"TODO: one line on what {name} estimates.\"\n\n\
             [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
             [dependencies]\nquiver-sdk.workspace = true\n# named by abi_stable's export macro; never `use`d\n\
             abi_stable.workspace = true\n\n[dev-dependencies]\nquiver-testing.workspace = true\n\n\
             [lints]\nworkspace = true\n"
        ),
        Some(root) => {
            let rel = relative(dir, root);
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\
                 description = \"TODO: one line on what {name} estimates.\"\n\n\
                 [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
                 [dependencies]\nquiver-sdk = {{ path = \"{rel}/crates/quiver-sdk\" }}\n\
                 # named by abi_stable's export macro; never `use`d\nabi_stable = \"0.11.3\"\n\n\
                 [dev-dependencies]\nquiver-testing = {{ path = \"{rel}/crates/quiver-testing\" }}\n\n\
                 # its own workspace: built and tested on its own, against the Quiver checkout above\n[workspace]\n"
            )
        }
    };
    let mut files = vec![
        ("Cargo.toml".to_string(), cargo),
        ("src/lib.rs".to_string(), fill(lib)),
        (format!("tests/{crate_name}.rs"), fill(test).replace("EXAMPLE_DIR", &example_dir)),
        ("example/demo.txt".to_string(), demo.to_string()),
    ];
    files.extend(data.iter().map(|(file, text)| (format!("example/{file}"), text.to_string())));
    if let Some(root) = standalone_root {
        for shared in ["Cargo.lock", "rustfmt.toml"] {
            let text = std::fs::read_to_string(root.join(shared)).map_err(|e| format!("{shared}: {e}"))?;
            files.push((shared.to_string(), text));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_renders_without_placeholders() {
        let root = crate::root();
        for f in families() {
            let files = render("my-method-2", f, None, &root.join("plugins/my-method-2")).unwrap();
            let lib = &files[1].1;
            assert!(lib.contains("pub struct MyMethod2Plugin;"), "{f}");
            assert!(lib.contains("quiver_sdk::export_plugin!(MyMethod2Plugin);"), "{f}");
            assert!(lib.contains("ManifestBuilder::new(\"my-method-2\""), "{f}");
            let test = &files[2];
            assert_eq!(test.0, "tests/my_method_2.rs");
            assert!(
                test.1.contains("own_plugin(\"my_method_2\")") && test.1.contains("\"../../examples/my-method-2\"")
            );
            assert!(files[0].1.contains("quiver-sdk.workspace = true"));
            assert!(files.iter().any(|(p, _)| p == "example/demo.txt"));
            let dir = root.join("../elsewhere/my-method-2");
            let standalone = render("my-method-2", f, Some(&root), &absolute(&dir).unwrap()).unwrap();
            let cargo = &standalone[0].1;
            let base = root.file_name().unwrap().to_string_lossy();
            assert!(cargo.contains(&format!("path = \"../../{base}/crates/quiver-sdk\"")), "{cargo}");
            assert!(
                standalone.iter().any(|(p, _)| p == "Cargo.lock")
                    && standalone.iter().any(|(p, _)| p == "rustfmt.toml")
            );
        }
        assert!(render("x", "regression", None, Path::new("/x")).is_err());
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative(Path::new("/a/b/c"), Path::new("/a/d")), "../../d");
        assert_eq!(relative(Path::new("/a"), Path::new("/a/b")), "b");
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), ".");
    }

    #[test]
    fn members_are_added_after_the_plugins() {
        let dir = std::env::temp_dir().join(format!("xtask-members-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = "[workspace]\nmembers = [\n    \"crates/a\",\n    \"plugins/x\",\n    \"benches\",\n]\n";
        std::fs::write(dir.join("Cargo.toml"), toml).unwrap();
        add_member(&dir, "plugins/y").unwrap();
        let got = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert_eq!(got, "[workspace]\nmembers = [\n    \"crates/a\",\n    \"plugins/x\",\n    \"plugins/y\",\n    \"benches\",\n]\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
