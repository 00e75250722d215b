//! What the binary can do depends on how it was built. The developer's binary (default features)
//! has every command; the binary packaged for Azure (`--no-default-features`, as `hubspoke
//! package` builds it) has `serve` and the read-only commands only (`plan`, `verify`,
//! `results`): no simulator (which mints tokens for anyone), no local host, no demo, and no
//! command that writes.
//!
//! The test runs in both builds: `cargo nextest run` checks the developer's binary, and the
//! README's test command runs it once more with `-p hubspoke --no-default-features --test
//! packaged`, which builds and checks the packaged binary.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hubspoke");

/// The commands only the developer's binary has.
const DEVELOPER_COMMANDS: [&str; 5] = ["sim", "host", "demo", "reconcile", "package"];

/// The commands every build has.
const SHIPPED_COMMANDS: [&str; 4] = ["serve", "plan", "verify", "results"];

/// Code of these crates is compiled into the binary exactly when it is the developer's: their
/// names appear in its symbols and line tables.
const DEVELOPER_CRATES: [&str; 3] = ["hubspoke_sim", "hubspoke_host", "hubspoke_stack"];

fn help(command: &str) -> std::process::Output {
    Command::new(BIN)
        .args([command, "--help"])
        .output()
        .expect("hubspoke runs")
}

#[test]
fn the_shipped_commands_are_in_every_build() {
    for command in SHIPPED_COMMANDS {
        let output = help(command);
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_developer_commands_are_only_in_the_developer_build() {
    let developer = cfg!(feature = "local");
    for command in DEVELOPER_COMMANDS {
        let output = help(command);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if developer {
            assert!(output.status.success(), "{command}: {stderr}");
        } else {
            assert!(
                !output.status.success(),
                "{command} is in the packaged binary"
            );
            assert!(
                stderr.contains("unrecognized subcommand"),
                "{command}: {stderr}"
            );
        }
    }
}

#[test]
fn the_developer_crates_are_compiled_only_into_the_developer_build() {
    let bytes = std::fs::read(BIN).unwrap();
    let developer = cfg!(feature = "local");
    for name in DEVELOPER_CRATES {
        let found = bytes
            .windows(name.len())
            .any(|window| window == name.as_bytes());
        assert_eq!(
            found,
            developer,
            "{name} in the {} binary",
            if developer { "developer's" } else { "packaged" }
        );
    }
}
