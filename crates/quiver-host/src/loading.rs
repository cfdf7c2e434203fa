//! Finding and loading plugin files: the search path, the object-file check before any code of
//! the file runs, the identity symbol, abi_stable's layout checks; the registry's lookups.

use super::*;

/// Whether the CUDA driver library and NVRTC can be loaded: `(driver, nvrtc)`.
pub fn cuda_libraries() -> (bool, bool) {
    let found = |names: &[&str]| {
        names.iter().any(|n| {
            // SAFETY: opening the CUDA driver / NVRTC only to test presence; dropped at once.
            unsafe { libloading::Library::new(n) }.is_ok()
        })
    };
    (
        found(&["libcuda.so.1", "libcuda.so", "nvcuda.dll"]),
        found(&["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "nvrtc64_130_0.dll", "nvrtc64_120_0.dll"]),
    )
}

/// The file-name extension of shared libraries on this platform.
pub fn library_extension() -> &'static str {
    std::env::consts::DLL_EXTENSION
}

/// The folders searched for plugins: `explicit` if given; else the folders in
/// `QUIVER_PLUGIN_PATH` if set; else the first of `plugins/` next to the running binary,
/// `../plugins` from it (so `target/release/quiver` finds `target/plugins`), and
/// `target/plugins` under the current directory, that exists.
pub fn plugin_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    if let Some(paths) = std::env::var_os(PLUGIN_PATH_ENV) {
        let dirs: Vec<PathBuf> = std::env::split_paths(&paths).filter(|p| !p.as_os_str().is_empty()).collect();
        if !dirs.is_empty() {
            return dirs;
        }
    }
    let mut candidates = Vec::new();
    if let Some(exe_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        candidates.push(exe_dir.join("plugins"));
        if let Some(up) = exe_dir.parent() {
            candidates.push(up.join("plugins"));
            if let Some(up2) = up.parent() {
                candidates.push(up2.join("plugins"));
            }
        }
    }
    candidates.push(PathBuf::from("target/plugins"));
    candidates.into_iter().find(|d| d.is_dir()).into_iter().collect()
}

pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Check an object file before the dynamic loader maps it: it parses as an ELF, Mach-O or PE file,
/// and every segment (and section) it would map lies inside the file. The loader maps segments
/// past the end of a truncated file and the first touch of those pages kills the process with
/// SIGBUS, so a corrupt file must be refused here.
pub fn check_object_file(path: &Path) -> Result<(), LoadError> {
    inspect_object_file(path).map(|_| ())
}

/// [`check_object_file`], and whether the file's dynamic symbol table exports the plugin identity
/// symbol (`None` when the format's exports cannot be listed: then `dlsym` decides after
/// loading). Read before any loading, so a shared library that is not a Quiver plugin (a system
/// library in a plugin folder) is refused without running its initialisers.
pub(crate) fn inspect_object_file(path: &Path) -> Result<Option<bool>, LoadError> {
    use object::{Object, ObjectSection, ObjectSegment};
    let corrupt = |reason: String| LoadError::NotALibrary { path: path.into(), reason };
    let data = std::fs::read(path).map_err(|e| corrupt(e.to_string()))?;
    let len = data.len() as u64;
    let file = object::File::parse(&*data).map_err(|e| corrupt(format!("not a valid object file ({e})")))?;
    let past_end = |what: &str, name: &str, (offset, size): (u64, u64)| {
        (offset.checked_add(size).is_none_or(|end| end > len)).then(|| {
            corrupt(format!(
                "{what} {name} spans bytes {offset}..{} but the file has {len}: truncated or corrupt",
                offset.saturating_add(size)
            ))
        })
    };
    for seg in file.segments() {
        let name = seg.name().ok().flatten().unwrap_or("").to_string();
        if let Some(e) = past_end("segment", &name, seg.file_range()) {
            return Err(e);
        }
    }
    for sec in file.sections() {
        if let Some(range) = sec.file_range() {
            if let Some(e) = past_end("section", sec.name().unwrap_or(""), range) {
                return Err(e);
            }
        }
    }
    Ok(file.exports().ok().map(|exports| {
        exports.iter().any(|e| {
            let name = e.name();
            // Mach-O prefixes C symbols with an underscore
            name == quiver_abi::IDENTITY_SYMBOL.as_bytes()
                || name.strip_prefix(b"_") == Some(quiver_abi::IDENTITY_SYMBOL.as_bytes())
        })
    }))
}

pub(crate) fn read_identity(path: &Path) -> Result<PluginIdentity, LoadError> {
    if inspect_object_file(path)? == Some(false) {
        return Err(LoadError::NotAPlugin { path: path.into(), symbol: quiver_abi::IDENTITY_SYMBOL });
    }
    // SAFETY: loading a library runs its initialisers; plugin folders are trusted code, as with
    // any plugin system. The library is kept loaded for the life of the process.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| LoadError::NotALibrary { path: path.into(), reason: e.to_string() })?;
    let identity = {
        // SAFETY: the symbol, when present, is the SDK's `extern "C" fn() -> PluginIdentity`.
        let sym: Result<libloading::Symbol<extern "C" fn() -> PluginIdentity>, _> =
            unsafe { lib.get(quiver_abi::IDENTITY_SYMBOL.as_bytes()) };
        match sym {
            Ok(f) => f(),
            Err(_) => return Err(LoadError::NotAPlugin { path: path.into(), symbol: quiver_abi::IDENTITY_SYMBOL }),
        }
    };
    std::mem::forget(lib);
    if identity.magic != quiver_abi::IDENTITY_MAGIC {
        return Err(LoadError::NotAPlugin { path: path.into(), symbol: quiver_abi::IDENTITY_SYMBOL });
    }
    Ok(identity)
}

pub(crate) fn sdk_version(identity: &PluginIdentity) -> String {
    if identity.sdk_version.is_null() {
        return "unknown".into();
    }
    // SAFETY: the SDK points this at a NUL-terminated 'static string in the plugin's image,
    // which stays loaded.
    unsafe { std::ffi::CStr::from_ptr(identity.sdk_version) }.to_string_lossy().into_owned()
}

impl Host {
    /// An empty registry.
    pub fn new() -> Self {
        Host::default()
    }

    /// Load every plugin in [`plugin_dirs`]`(explicit)`.
    pub fn discover(explicit: Option<&Path>) -> Self {
        let mut host = Host::new();
        for dir in plugin_dirs(explicit) {
            host.load_dir(&dir);
        }
        host
    }

    /// Load every shared library in `dir` (sorted by file name). Failures are recorded.
    pub fn load_dir(&mut self, dir: &Path) {
        self.searched.push(dir.to_path_buf());
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == library_extension()))
            .collect();
        files.sort();
        for f in files {
            let _ = self.load_file(&f);
        }
    }

    /// Load one plugin file. On failure the error is returned and also recorded.
    pub fn load_file(&mut self, path: &Path) -> Result<&LoadedPlugin, LoadError> {
        match self.try_load(path) {
            Ok(p) => {
                self.plugins.push(p);
                Ok(self.plugins.last().expect("just pushed"))
            }
            Err(e) => {
                self.failures.push(e.clone());
                Err(e)
            }
        }
    }

    fn try_load(&self, path: &Path) -> Result<LoadedPlugin, LoadError> {
        let identity = read_identity(path)?;
        if !ABI_VERSION.compatible_with(&identity.abi) {
            return Err(LoadError::AbiVersion {
                path: path.into(),
                expected: ABI_VERSION.to_string(),
                found: identity.abi.to_string(),
                sdk: sdk_version(&identity),
            });
        }
        let module = quiver_abi::loader::load_root_module(path).map_err(|e| match e {
            quiver_abi::loader::LoadFailure::Incompatible(msg) => LoadError::Incompatible {
                path: path.into(),
                expected: ABI_VERSION.to_string(),
                tail: tail_lines(&msg, 12),
            },
            quiver_abi::loader::LoadFailure::Other(msg) => {
                LoadError::RootModule { path: path.into(), reason: tail_lines(&msg, 12) }
            }
        })?;
        let manifest = (module.manifest())();
        if manifest.name.is_empty() {
            return Err(LoadError::BadManifest { path: path.into(), reason: "empty method name".into() });
        }
        if let Some(first) = self.plugins.iter().find(|p| p.name() == manifest.name.as_str()) {
            return Err(LoadError::Duplicate {
                path: path.into(),
                method: manifest.name.to_string(),
                first: first.path.clone(),
            });
        }
        Ok(LoadedPlugin { path: path.into(), manifest, sdk_version: sdk_version(&identity), module })
    }

    /// Loaded plugins, in load order.
    pub fn plugins(&self) -> &[LoadedPlugin] {
        &self.plugins
    }

    /// Files that failed to load.
    pub fn failures(&self) -> &[LoadError] {
        &self.failures
    }

    /// Folders that were searched.
    pub fn searched(&self) -> &[PathBuf] {
        &self.searched
    }

    /// The plugin providing `method`.
    pub fn get(&self, method: &str) -> Result<&LoadedPlugin, HostError> {
        self.plugins.iter().find(|p| p.name() == method).ok_or_else(|| HostError::UnknownMethod {
            name: method.into(),
            known: if self.plugins.is_empty() {
                "none: build them with `cargo xtask build` or point --plugins / QUIVER_PLUGIN_PATH at them".into()
            } else {
                self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            },
        })
    }
}
