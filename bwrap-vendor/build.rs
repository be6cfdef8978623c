//! Builds the bundled bubblewrap from the sources vendored by `cageforge-bwrap`,
//! computes its SHA-256 and generates the constants in `$OUT_DIR/bundled.rs`.
//!
//! Failure policy: a C build that cannot happen stops the build with a message naming
//! what to install. The only way to build without a bundled bwrap is the explicit
//! opt-out `EXECUTOR_NO_BUNDLED_BWRAP=1`, which yields empty bytes and an all-zero
//! digest (a "development build" that the executor reports at run time).

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use sha2::{Digest, Sha256};

/// bubblewrap release vendored by cageforge-bwrap 0.7.1 (upstream tag v0.12.0,
/// commit 014a04330642e5c870418beb621532cb896e0002).
const BWRAP_VERSION: &str = "0.12.0";
const SOURCE_CRATE: &str = "cageforge-bwrap";
const SOURCE_CRATE_VERSION: &str = "0.7.1";
const OPT_OUT_VAR: &str = "EXECUTOR_NO_BUNDLED_BWRAP";

/// Every file that goes into the compiler, with the SHA-256 it had when it was reviewed.
/// Cargo.lock already pins the crate archive; this pins the extracted files too, so an
/// edited registry cache or a vendored copy that drifted cannot slip into the build.
const SOURCES: &[(&str, &str)] = &[
    ("bubblewrap.c", "3f17ee26057cae9d660801ca8d9ba84722f1bafdcd072d5151ee1c64eeeb15f4"),
    ("bind-mount.c", "b14a8adfe22a45fb2e02a81bccfd14500c42a07452fb94664ba5ec16ae7ba744"),
    ("network.c", "1cfe04fcc38d33d5197feb96fc503d3fd51d234fb9392699a00bf4780ed6e9f0"),
    ("utils.c", "b53c73465e0188259a8438396e25531f6b6ae7e2fb88d37bf13cee29acedd222"),
    ("chroot_realpath.c", "71c0f7fe88bada2393b63508a8a81c9d7942266468db7edb650a0d3076fd92b6"),
    ("safe_openat.c", "0338ec8e8fbc08caf20c6a3480506f60f510e7e43abacbd40d17cd6d562970d2"),
];
const HEADERS: &[(&str, &str)] = &[
    ("bind-mount.h", "3c46bfd19a6c2313791dd74e0cb0bc0963d4c2e06bae54f4a03f4b2114a733ea"),
    ("network.h", "10a8c88c647de85f4c60574355f9d530c06d568afbeb096611f4c8e85b9a5598"),
    ("utils.h", "a62180bf1cecc785e3cebc7957ea73f7e016395d6fce6bdc55fcec865396152d"),
];

fn main() -> ExitCode {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={OPT_OUT_VAR}");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_LIBDIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_SYSROOT_DIR");
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Cargo shows a build script's stderr when it fails; keep it readable.
            eprintln!("\nerror: bwrap-vendor could not build the bundled bubblewrap {BWRAP_VERSION}:\n  {message}\n");
            eprintln!(
                "To build without a bundled bwrap (development only; the executor will then \
                 report that it has none), set {OPT_OUT_VAR}=1."
            );
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let generated = out_dir.join("bundled.rs");

    if env::var(OPT_OUT_VAR).is_ok_and(|v| v == "1") {
        // Not silent: a warning at build time, and `BUNDLED == false` / zero digest that
        // the executor reports at run time.
        println!("cargo:warning={OPT_OUT_VAR}=1: building WITHOUT a bundled bubblewrap (development build)");
        let code = "pub const BUNDLED: bool = false;\n\
                    pub const BWRAP_SHA256: [u8; 32] = [0u8; 32];\n\
                    pub static BWRAP_BYTES: &[u8] = &[];\n\
                    pub const BWRAP_VERSION: &str = \"\";\n";
        return write(&generated, code);
    }

    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Err("bubblewrap only builds for Linux targets".into());
    }

    let source_dir = locate_sources(&out_dir)?;
    verify_sources(&source_dir)?;
    let binary = compile(&source_dir, &out_dir)?;

    let bytes = fs::read(&binary).map_err(|e| format!("reading {}: {e}", binary.display()))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(format!("{} is not an ELF executable", binary.display()));
    }
    let digest = Sha256::digest(&bytes);
    let mut digest_literal = String::new();
    for byte in digest.iter() {
        let _ = write!(digest_literal, "0x{byte:02x}, ");
    }
    let mut code = String::new();
    let _ = writeln!(code, "pub const BUNDLED: bool = true;");
    let _ = writeln!(code, "pub const BWRAP_SHA256: [u8; 32] = [{digest_literal}];");
    // include_bytes! of the exact file that was hashed above.
    let _ = writeln!(code, "pub static BWRAP_BYTES: &[u8] = include_bytes!({:?});", binary.display().to_string());
    let _ = writeln!(code, "pub const BWRAP_VERSION: &str = {BWRAP_VERSION:?};");
    write(&generated, &code)
}

fn write(path: &Path, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Finds the extracted `cageforge-bwrap` package through `cargo metadata`, which
/// honours source replacement (`cargo vendor`, mirrors), unlike guessing a path under
/// `$CARGO_HOME`.
///
/// The metadata is taken of a throwaway manifest that depends on this one crate only:
/// metadata of the whole workspace would need every crate of the lock file downloaded
/// (dev-dependencies included), while `cargo build -p executor` on an empty registry
/// fetches only the build graph, which holds this crate and its dependencies.
fn locate_sources(out_dir: &Path) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    // Only this target's dependency graph: offline metadata of the whole graph would need
    // every other platform's crates (e.g. UEFI-only ones) downloaded too.
    let target = env::var("TARGET").map_err(|_| "TARGET is not set")?;
    let locator = write_locator(out_dir, &manifest_dir)?;
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &target])
        .arg("--manifest-path")
        .arg(locator.join("Cargo.toml"))
        // From the workspace root, so its .cargo/config.toml (source replacement) applies.
        .current_dir(workspace_root(&manifest_dir))
        .output()
        .map_err(|e| format!("running `cargo metadata` to find {SOURCE_CRATE}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo metadata` failed while looking for {SOURCE_CRATE}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    source_dir_from_metadata(&output.stdout)
}

/// Writes `<out>/locate/Cargo.toml` (its own empty workspace, one dependency) and copies
/// the workspace's Cargo.lock beside it, so the same locked versions are resolved.
fn write_locator(out_dir: &Path, manifest_dir: &Path) -> Result<PathBuf, String> {
    let dir = out_dir.join("locate");
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let manifest = format!(
        "[package]\nname = \"bwrap-vendor-locate\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         [lib]\npath = \"lib.rs\"\n\
         [dependencies]\n{SOURCE_CRATE} = {{ version = \"={SOURCE_CRATE_VERSION}\", default-features = false }}\n\
         [workspace]\n"
    );
    write(&dir.join("Cargo.toml"), &manifest)?;
    write(&dir.join("lib.rs"), "")?;
    let lock = workspace_root(manifest_dir).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    fs::copy(&lock, dir.join("Cargo.lock")).map_err(|e| format!("copying {}: {e}", lock.display()))?;
    Ok(dir)
}

/// The workspace this crate belongs to: the nearest ancestor holding a Cargo.lock.
fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir.ancestors().find(|dir| dir.join("Cargo.lock").is_file()).unwrap_or(manifest_dir).to_path_buf()
}

fn source_dir_from_metadata(json: &[u8]) -> Result<PathBuf, String> {
    let metadata: serde_json::Value = serde_json::from_slice(json).map_err(|e| format!("`cargo metadata` printed invalid JSON: {e}"))?;
    let packages = metadata["packages"].as_array().ok_or("`cargo metadata` has no packages")?;
    let manifest = packages
        .iter()
        .find(|p| p["name"] == SOURCE_CRATE && p["version"] == SOURCE_CRATE_VERSION)
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or_else(|| format!("{SOURCE_CRATE} {SOURCE_CRATE_VERSION} is not in the dependency graph"))?;
    let root = Path::new(manifest).parent().ok_or("manifest path has no parent")?;
    Ok(root.join("vendor").join("bubblewrap"))
}

fn verify_sources(dir: &Path) -> Result<(), String> {
    for (name, expected) in SOURCES.iter().chain(HEADERS) {
        let path = dir.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let actual = hex(&Sha256::digest(&bytes));
        if actual != *expected {
            return Err(format!("{} does not match the reviewed source: expected sha256:{expected}, got sha256:{actual}", path.display()));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn compile(source_dir: &Path, out_dir: &Path) -> Result<PathBuf, String> {
    let libcap = pkg_config::Config::new().cargo_metadata(false).probe("libcap").map_err(|e| {
        format!(
            "libcap development files were not found ({e}).\n  \
                 Install them: `apt-get install libcap-dev pkg-config` (Debian/Ubuntu), \
                 `dnf install libcap-devel pkgconf` (Fedora), `apk add libcap-dev pkgconf` (Alpine)."
        )
    })?;

    // upstream's meson build generates config.h; bubblewrap only reads PACKAGE_STRING.
    let config_h = out_dir.join("config.h");
    write(&config_h, &format!("#pragma once\n#define PACKAGE_STRING \"bubblewrap {BWRAP_VERSION}\"\n"))?;

    let compiler = cc::Build::new()
        .opt_level(2)
        .debug(false)
        .try_get_compiler()
        .map_err(|e| format!("no C compiler for the target ({e}).\n  Install one: `apt-get install gcc` (Debian/Ubuntu)."))?;
    let binary = out_dir.join("bwrap");
    let mut cmd = compiler.to_command();
    cmd.arg("-std=gnu99")
        .arg("-D_GNU_SOURCE")
        // Hardening comparable to distribution builds of bwrap (it may run setuid there).
        .arg("-D_FORTIFY_SOURCE=2")
        .arg("-fstack-protector-strong")
        .arg("-fPIE")
        .arg("-pie")
        .arg("-Wl,-z,relro")
        .arg("-Wl,-z,now")
        .arg("-Wl,-z,noexecstack")
        .arg("-s")
        // Keep the registry path out of the binary so the digest does not depend on
        // where cargo extracted the sources.
        .arg(format!("-ffile-prefix-map={}=bubblewrap", source_dir.display()))
        .arg(format!("-I{}", out_dir.display()))
        .arg(format!("-I{}", source_dir.display()));
    for include in &libcap.include_paths {
        cmd.arg(format!("-idirafter{}", include.display()));
    }
    for (source, _) in SOURCES {
        cmd.arg(source_dir.join(source));
    }
    // Link libcap statically when its archive is there, so the bundled bwrap needs only
    // libc on the target host (single-file deploys, minimal containers).
    let static_libcap = pkg_config::get_variable("libcap", "libdir")
        .ok()
        .map(PathBuf::from)
        .into_iter()
        .chain(libcap.link_paths.iter().cloned())
        .map(|dir| dir.join("libcap.a"))
        .find(|archive| archive.is_file());
    match static_libcap {
        Some(archive) => {
            cmd.arg(archive);
        }
        None => {
            for link in &libcap.link_paths {
                cmd.arg(format!("-L{}", link.display()));
            }
            for lib in &libcap.libs {
                cmd.arg(format!("-l{lib}"));
            }
        }
    }
    cmd.arg("-o").arg(&binary);
    let output = cmd.output().map_err(|e| format!("running the C compiler {}: {e}", compiler.path().display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("sys/capability.h") || stderr.contains("-lcap") {
            "\n  libcap headers or library are missing: `apt-get install libcap-dev`."
        } else {
            ""
        };
        return Err(format!("compiling bubblewrap failed:\n{}{hint}", stderr.trim()));
    }
    Ok(binary)
}
