//! Loading `plan --snapshot`: the files given, and the `*.json` files of the folders given, read
//! and handed to the core's snapshot reader (`hubspoke_core::snapshot`), which knows the shapes.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hubspoke_core::model::Observed;
use hubspoke_core::snapshot::{documents, read, SnapshotFile};

/// Reads the estate from `paths`: files, or folders whose `*.json` files are read in name order.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Observed> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(json_files(path)?);
        } else {
            files.push(path.clone());
        }
    }
    let mut contents = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read snapshot {}", file.display()))?;
        let values = documents(&text)
            .with_context(|| format!("snapshot {} is not valid JSON", file.display()))?;
        contents.push((file.display().to_string(), values));
    }
    let inputs: Vec<SnapshotFile<'_>> = contents
        .iter()
        .map(|(name, values)| SnapshotFile {
            name,
            documents: values,
        })
        .collect();
    read(&inputs).context("the snapshot is not an estate")
}

/// The `*.json` files directly in `folder`, sorted by name so the order is the same everywhere.
fn json_files(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder)
        .with_context(|| format!("cannot read snapshot folder {}", folder.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read snapshot folder {}", folder.display()))?
            .path();
        let is_json = path
            .extension()
            .is_some_and(|extension| extension.eq_ignore_ascii_case("json"));
        if is_json && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        bail!("snapshot folder {} has no .json file", folder.display());
    }
    files.sort();
    Ok(files)
}
