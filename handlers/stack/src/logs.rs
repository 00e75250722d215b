//! Every log line of the process, kept for the checks that no secret is ever logged: the host's,
//! the simulator's, and the custom handler's console output, which the host forwards as its own
//! log lines (as the real host does). Captured at every level, trace included.
use std::io::Write;
use std::sync::{Mutex, Once};

static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = LINES.lock() {
            lines.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber as the process's default (once; later calls do nothing).
pub fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| Capture)
            .try_init();
    });
}

/// Everything logged so far.
pub fn captured_logs() -> String {
    LINES
        .lock()
        .map(|lines| String::from_utf8_lossy(&lines).into_owned())
        .unwrap_or_default()
}

/// Adds a line logged by another process (the host run as a process of its own).
pub(crate) fn append(line: &str) {
    if let Ok(mut lines) = LINES.lock() {
        lines.extend_from_slice(line.as_bytes());
        lines.push(b'\n');
    }
}
