//! `hubspoke package` lays out the zip the Functions host expects: `host.json` and one folder
//! per function at the root, next to the binary with its execute bit, nothing else. The test
//! packages the binary under test (a Linux x86-64 executable, as a release build would be) so
//! that it does not build the world again.
mod support;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use support::{run, temp_dir, BIN};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn package(out: &Path, binary: &str) -> std::process::Output {
    run(
        &[
            "package",
            "--binary",
            binary,
            "--out",
            out.to_str().expect("utf-8 path"),
            "--app-root",
            root().to_str().expect("utf-8 path"),
        ],
        &[],
    )
}

#[test]
fn the_package_holds_host_json_the_functions_and_an_executable_binary_and_nothing_else() {
    let dir = temp_dir("package");
    let out = dir.join("app.zip");
    let output = package(&out, BIN);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("glibc") || stdout.contains("static"),
        "{stdout}"
    );

    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(&out).expect("the zip")).expect("a zip");
    let names: BTreeSet<String> = archive
        .file_names()
        .map(|name| name.expect("an entry name").into_owned())
        .collect();
    let mut expected: BTreeSet<String> = ["host.json".to_string(), "hubspoke".to_string()].into();
    for entry in std::fs::read_dir(root().join("function-definitions")).expect("definitions") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            expected.insert(format!("{name}/"));
            expected.insert(format!("{name}/function.json"));
        }
    }
    assert_eq!(names, expected, "exactly the app, at the root");

    // host.json's executable path resolves inside the zip, to the binary, executable.
    let mut host_json = String::new();
    archive
        .by_name("host.json")
        .expect("host.json")
        .read_to_string(&mut host_json)
        .expect("text");
    let host: serde_json::Value = serde_json::from_str(&host_json).expect("json");
    let executable = host["customHandler"]["description"]["defaultExecutablePath"]
        .as_str()
        .expect("an executable path");
    let mut binary = archive
        .by_name(executable)
        .expect("the executable is in the zip");
    assert_eq!(binary.unix_mode().map(|m| m & 0o777), Some(0o755));
    let mut bytes = Vec::new();
    binary.read_to_end(&mut bytes).expect("bytes");
    drop(binary);
    assert_eq!(
        bytes,
        std::fs::read(BIN).expect("the binary"),
        "the binary, byte for byte"
    );
    for name in archive
        .file_names()
        .map(|name| name.expect("an entry name").into_owned())
        .collect::<Vec<_>>()
    {
        if let Some(function) = name.strip_suffix("/function.json") {
            let mut text = String::new();
            archive
                .by_name(&name)
                .expect("entry")
                .read_to_string(&mut text)
                .expect("text");
            let original = std::fs::read_to_string(
                root()
                    .join("function-definitions")
                    .join(function)
                    .join("function.json"),
            )
            .expect("definition");
            assert_eq!(text, original, "{name}");
            let file = archive.by_name(&name).expect("entry");
            assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o644), "{name}");
        }
    }
}

#[test]
fn a_binary_that_is_not_linux_x86_64_is_refused_and_no_zip_is_left() {
    let dir = temp_dir("package-bad");
    let script = dir.join("not-elf");
    std::fs::write(&script, "#!/bin/sh\necho hello\n").expect("write");
    let out = dir.join("app.zip");
    let output = package(&out, script.to_str().expect("path"));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not an ELF executable"), "{stderr}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "no partial zip");
}
