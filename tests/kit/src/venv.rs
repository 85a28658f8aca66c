//! Python virtualenvs under the workspace's `target/`, with pinned requirements, for tests that drive a
//! real Python tool (`python-socketio`, `kubernetes-validate`).
//!
//! A virtualenv is created and its requirements installed on first use; a copy of the requirements file
//! inside it records what was installed, so later runs (and CI, which may prepare it beforehand) reuse it
//! until the pins change.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The workspace's `target/` directory.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

/// Runs `command` to completion; fails with its stderr unless it exited 0.
pub(crate) fn run(command: &mut std::process::Command, what: &str) -> Result<()> {
    let output = command.output().with_context(|| format!("{what}: cannot start {command:?}"))?;
    if !output.status.success() {
        bail!("{what} failed ({}):\n{}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// The Python of the virtualenv `target/<name>`, with every package of `requirements` installed (created
/// or brought up to date first). Needs Python 3 with `venv`, and the package index on first use.
pub fn python(name: &str, requirements: &Path) -> Result<PathBuf> {
    // One installer at a time: tests of one process share the virtualenvs.
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = target_dir().join(name);
    let python = venv.join("bin/python");
    let stamp = venv.join("requirements.txt");
    let wanted = std::fs::read(requirements).with_context(|| format!("reading {}", requirements.display()))?;
    if python.exists() && std::fs::read(&stamp).is_ok_and(|installed| installed == wanted) {
        return Ok(python);
    }
    run(
        std::process::Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "creating a Python virtualenv (needs Python 3 with venv)",
    )?;
    run(
        std::process::Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements),
        &format!("installing {}", requirements.display()),
    )?;
    std::fs::write(&stamp, wanted).context("recording the installed requirements")?;
    Ok(python)
}
