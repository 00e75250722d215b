//! `hubspoke package`: the zip the Azure Functions host runs.
//!
//! At the root of the zip, as the host expects (and nothing else): `host.json`, the handler
//! binary under the name `host.json` gives it (`customHandler.description.defaultExecutablePath`)
//! with its execute bit set in the zip's Unix attributes — Flex Consumption mounts the package
//! read-only and cannot set it — and one folder per function with its `function.json`.
//!
//! The binary is built for Linux x86-64 without the developer's commands (`--no-default-features`:
//! no simulator, no local host, no demo, nothing that writes but `serve`). The target is
//! `x86_64-unknown-linux-musl` when this machine can build it (the target installed with rustup
//! and a C compiler for musl, which the TLS libraries need): a static binary runs on whatever
//! glibc the host image ships. Otherwise — a fresh machine, where `rustup target add` needs the
//! internet — it builds against glibc (`x86_64-unknown-linux-gnu`) and prints the oldest glibc
//! the binary needs. `--target` chooses either explicitly. `--binary` packages a binary built
//! elsewhere; it must be a Linux x86-64 executable.
//!
//! The zip is written to a temporary file beside `--out` and renamed when complete: a failed
//! run never leaves half a package.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

/// The preferred build target: a static binary.
pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";
/// The fallback: a binary linked against glibc.
pub const GNU_TARGET: &str = "x86_64-unknown-linux-gnu";

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Where to write the zip.
    #[arg(long, default_value = "hubspoke.zip")]
    out: PathBuf,
    /// The Rust target to build for: x86_64-unknown-linux-musl (static) or
    /// x86_64-unknown-linux-gnu (needs the glibc version printed at the end). Default: musl when
    /// this machine can build it, else glibc.
    #[arg(long)]
    target: Option<String>,
    /// Package this binary instead of building one (a Linux x86-64 executable).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The app's root: the folder holding host.json and function-definitions/.
    #[arg(long, default_value = ".")]
    app_root: PathBuf,
}

/// What a binary is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryKind {
    /// No program interpreter: it needs no dynamic loader and no glibc.
    pub is_static: bool,
    /// The highest `GLIBC_x.y` version it references, if any.
    pub glibc: Option<(u32, u32)>,
}

pub fn run(args: PackageArgs) -> anyhow::Result<()> {
    let root = args
        .app_root
        .canonicalize()
        .with_context(|| format!("the app root {} does not exist", args.app_root.display()))?;
    let host_json_path = root.join("host.json");
    let host_json_text = std::fs::read_to_string(&host_json_path).with_context(|| {
        format!(
            "{} not found: run from the repository's root or pass --app-root",
            host_json_path.display()
        )
    })?;
    let executable = executable_name(&host_json_text)
        .with_context(|| format!("reading {}", host_json_path.display()))?;
    let functions = function_folders(&root.join("function-definitions"))?;

    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => {
            let target = match &args.target {
                Some(target) => target.clone(),
                None => choose_target(&musl_toolchain()),
            };
            build(&root, &target)?
        }
    };
    let bytes = std::fs::read(&binary)
        .with_context(|| format!("cannot read the binary {}", binary.display()))?;
    let kind =
        linux_x86_64(&bytes).with_context(|| format!("{} cannot be packaged", binary.display()))?;

    write_zip(&args.out, &host_json_text, &executable, &bytes, &functions)?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({:.1} MiB)",
        args.out.display(),
        size as f64 / 1_048_576.0
    );
    println!("  host.json");
    println!("  {executable}  (mode 0755; {})", describe(&kind));
    for (name, _) in &functions {
        println!("  {name}/function.json");
    }
    println!("Publish it with: az functionapp deployment source config-zip --src {} ...  (docs/deploy.md)", args.out.display());
    Ok(())
}

fn describe(kind: &BinaryKind) -> String {
    match (kind.is_static, kind.glibc) {
        (true, _) => "static, runs on any Linux x86-64".to_string(),
        (false, Some((major, minor))) => {
            format!("dynamically linked: needs glibc {major}.{minor} or newer on the host")
        }
        (false, None) => "dynamically linked".to_string(),
    }
}

/// `customHandler.description.defaultExecutablePath`, which must name a file at the app root.
pub fn executable_name(host_json: &str) -> anyhow::Result<String> {
    let host: Value = serde_json::from_str(host_json).context("host.json is not JSON")?;
    let Some(path) = host["customHandler"]["description"]["defaultExecutablePath"].as_str() else {
        bail!("host.json has no customHandler.description.defaultExecutablePath");
    };
    let valid = !path.is_empty() && !path.contains(['/', '\\', '%']) && path != "." && path != "..";
    if !valid {
        bail!(
            "customHandler.description.defaultExecutablePath is {path:?}: it must be a file name at the app root, where the package puts the binary"
        );
    }
    Ok(path.to_string())
}

/// The function folders (name, `function.json` text), sorted; each `function.json` must be a
/// JSON object with bindings.
fn function_folders(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let mut functions = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = path.join("function.json");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("{} has no function.json", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        if !value["bindings"].is_array() {
            bail!("{} has no \"bindings\" array", file.display());
        }
        functions.push((name, text));
    }
    if functions.is_empty() {
        bail!("{} holds no function folder", dir.display());
    }
    functions.sort();
    Ok(functions)
}

/// What this machine has for a musl build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuslToolchain {
    /// The Rust standard library for the musl target (`rustup target add`).
    pub target_installed: bool,
    /// A C compiler for musl: `musl-gcc` on the path, or `CC_x86_64_unknown_linux_musl` set.
    pub c_compiler: bool,
}

/// Looks at the toolchain: the musl target's standard library under the sysroot that `rustc`
/// reports, and a C compiler for it.
fn musl_toolchain() -> MuslToolchain {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    let target_installed = sysroot.is_some_and(|sysroot| {
        std::fs::read_dir(sysroot.join("lib/rustlib").join(MUSL_TARGET).join("lib"))
            .map(|entries| {
                entries
                    .flatten()
                    .any(|entry| entry.file_name().to_string_lossy().starts_with("libstd-"))
            })
            .unwrap_or(false)
    });
    let c_compiler = std::env::var_os(musl_cc_variable()).is_some() || on_path("musl-gcc");
    MuslToolchain {
        target_installed,
        c_compiler,
    }
}

/// The target to build when none is given: musl when it can be built here, else glibc (and
/// says why, with what would enable the static build).
pub fn choose_target(musl: &MuslToolchain) -> String {
    if musl.target_installed && musl.c_compiler {
        return MUSL_TARGET.to_string();
    }
    let missing = match (musl.target_installed, musl.c_compiler) {
        (false, false) => "the musl target and a C compiler for it are not installed",
        (false, true) => "the musl target is not installed",
        _ => "no C compiler for musl is installed",
    };
    eprintln!(
        "note: {missing} (rustup target add {MUSL_TARGET}; Debian's musl-tools): building against glibc instead, and the binary will need the glibc version printed below on the host"
    );
    GNU_TARGET.to_string()
}

fn musl_cc_variable() -> String {
    format!("CC_{}", MUSL_TARGET.replace('-', "_"))
}

/// Builds the release binary for `target` with cargo, in `root`, without the developer's
/// commands.
fn build(root: &Path, target: &str) -> anyhow::Result<PathBuf> {
    if !target.starts_with("x86_64-unknown-linux-") {
        bail!("--target {target}: the Functions host runs Linux x86-64 (x86_64-unknown-linux-musl or -gnu)");
    }
    eprintln!("building the release binary for {target} ...");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "hubspoke",
            "--bin",
            "hubspoke",
            "--no-default-features",
            "--target",
            target,
        ])
        .current_dir(root);
    // Crates with C code (the TLS library's) need a C compiler for musl: Debian's musl-tools
    // installs it as `musl-gcc`, which the `cc` crate does not look for by itself.
    let cc_variable = musl_cc_variable();
    if target == MUSL_TARGET && std::env::var_os(&cc_variable).is_none() && on_path("musl-gcc") {
        cargo.env(&cc_variable, "musl-gcc");
    }
    let status = cargo
        .status()
        .context("cannot run cargo (is Rust installed?)")?;
    if !status.success() {
        if target == MUSL_TARGET {
            bail!(
                "cargo could not build for {target}. Install the target with `rustup target add {target}` \
                 (and a C compiler for musl, e.g. Debian's musl-tools), or build against glibc with \
                 --target {GNU_TARGET}"
            );
        }
        bail!("cargo could not build for {target}");
    }
    Ok(root
        .join("target")
        .join(target)
        .join("release")
        .join("hubspoke"))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Checks that `bytes` are a Linux x86-64 ELF executable, and says whether it is static and
/// which glibc it needs.
pub fn linux_x86_64(bytes: &[u8]) -> anyhow::Result<BinaryKind> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        bail!("it is not an ELF executable (the Functions host runs Linux)");
    }
    // EI_CLASS 2 = 64-bit, EI_DATA 1 = little-endian, e_machine 0x3E = x86-64.
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if bytes[4] != 2 || bytes[5] != 1 || machine != 0x3E {
        bail!("it is not an x86-64 executable (the Functions host runs Linux x86-64)");
    }
    let is_static = !contains(bytes, b"/lib64/ld-linux-x86-64.so");
    Ok(BinaryKind {
        is_static,
        glibc: highest_glibc(bytes),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The highest `GLIBC_x.y` symbol version named in the binary (the dynamic string table holds
/// exactly the versions it needs).
fn highest_glibc(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut highest = None;
    let marker = b"GLIBC_";
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(marker.len()).position(|w| w == marker) {
        let start = at + found + marker.len();
        let digits: String = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .map(|b| *b as char)
            .collect();
        let mut parts = digits.split('.').filter_map(|p| p.parse::<u32>().ok());
        if let (Some(major), Some(minor)) = (parts.next(), parts.next()) {
            if highest.is_none_or(|h| (major, minor) > h) {
                highest = Some((major, minor));
            }
        }
        at = start;
    }
    highest
}

fn write_zip(
    out: &Path,
    host_json: &str,
    executable: &str,
    binary: &[u8],
    functions: &[(String, String)],
) -> anyhow::Result<()> {
    use zip::write::SimpleFileOptions;
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let partial = parent.join(format!(
        ".{}.partial",
        out.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let result = (|| -> anyhow::Result<()> {
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut zip = zip::ZipWriter::new(file);
        let file_options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        zip.start_file("host.json", file_options)?;
        zip.write_all(host_json.as_bytes())?;
        zip.start_file(executable, file_options.unix_permissions(0o755))?;
        zip.write_all(binary)?;
        for (name, text) in functions {
            zip.add_directory(format!("{name}/"), file_options.unix_permissions(0o755))?;
            zip.start_file(format!("{name}/function.json"), file_options)?;
            zip.write_all(text.as_bytes())?;
        }
        zip.finish()?;
        Ok(())
    })();
    match result {
        Ok(()) => std::fs::rename(&partial, out)
            .with_context(|| format!("cannot move the package to {}", out.display())),
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_must_be_a_file_at_the_root() {
        let host = |path: &str| {
            format!(
                r#"{{"customHandler": {{"description": {{"defaultExecutablePath": "{path}"}}}}}}"#
            )
        };
        assert_eq!(
            executable_name(&host("hubspoke")).ok().as_deref(),
            Some("hubspoke")
        );
        for bad in ["bin/hubspoke", "..", "", "%HOME%"] {
            assert!(executable_name(&host(bad)).is_err(), "{bad}");
        }
        assert!(executable_name("{}").is_err());
    }

    #[test]
    fn musl_is_built_only_when_both_its_target_and_its_c_compiler_are_installed() {
        let toolchain = |target_installed, c_compiler| MuslToolchain {
            target_installed,
            c_compiler,
        };
        assert_eq!(choose_target(&toolchain(true, true)), MUSL_TARGET);
        for (target_installed, c_compiler) in [(false, false), (false, true), (true, false)] {
            assert_eq!(
                choose_target(&toolchain(target_installed, c_compiler)),
                GNU_TARGET
            );
        }
    }

    #[test]
    fn only_linux_x86_64_elf_binaries_are_packaged() {
        assert!(linux_x86_64(b"#!/bin/sh\necho hi\n").is_err());
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[18] = 0xB7; // aarch64
        assert!(linux_x86_64(&elf).is_err());
        elf[18] = 0x3E;
        elf.extend_from_slice(b"/lib64/ld-linux-x86-64.so.2\0GLIBC_2.17\0GLIBC_2.34\0GLIBC_2.4\0");
        let kind = linux_x86_64(&elf).expect("x86-64");
        assert!(!kind.is_static);
        assert_eq!(kind.glibc, Some((2, 34)));
    }
}
