//! `hubspoke serve` as the Functions host runs it: a process given `FUNCTIONS_CUSTOMHANDLER_PORT`
//! and the app settings, probed with `GET /` until it answers, then sent the invocation bodies of
//! `tests/fixtures/functions/` over TCP (one of them chunked, as the host's `ObjectContent` may
//! send it), against `hubspoke sim` as another process.
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{article, start_sim, start_sim_with_latency, temp_dir, Sim, BIN};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/functions")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// `hubspoke serve` as a child process, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn seeded_sim(name: &str, latency: Option<&str>) -> (Sim, PathBuf) {
    let dir = temp_dir(name);
    let seed = dir.join("seed.json");
    std::fs::write(&seed, article().snapshot().to_string()).expect("write seed");
    let sim = match latency {
        Some(latency) => start_sim_with_latency(&seed, &dir, latency),
        None => start_sim(&seed, &dir),
    };
    (sim, dir)
}

fn serve_command(sim: &Sim, port: u16, extra: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_HTTPWORKER_PORT", port.to_string())
        .env("HUBSPOKE_HUBS", article().vnet_id("hub"))
        .env("HUBSPOKE_DRIFT_SCHEDULE", "0 */15 * * * *");
    for (key, value) in &sim.env {
        command.env(key, value);
    }
    for (key, value) in extra {
        command.env(key, value);
    }
    command
}

/// Starts `hubspoke serve` and waits for its readiness probe as the host does (every 25 ms).
fn start_serve(sim: &Sim, extra: &[(&str, &str)]) -> Serve {
    let port = free_port();
    let child = serve_command(sim, port, extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hubspoke serve starts");
    let serve = Serve { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = http(port, "GET", "/", &[], b"", false) {
            assert_eq!(answer.0, 200);
            return serve;
        }
        assert!(
            Instant::now() < deadline,
            "hubspoke serve never answered GET /"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One HTTP/1.1 exchange over a fresh connection: (status, body). With `chunked`, the body is
/// sent in chunks without a length.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if chunked {
        request.push_str("Transfer-Encoding: chunked\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        for piece in body.chunks(1000) {
            stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
            stream.write_all(piece)?;
            stream.write_all(b"\r\n")?;
        }
        stream.write_all(b"0\r\n\r\n")?;
    } else {
        request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(request.as_bytes())?;
        stream.write_all(body)?;
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let mut content = response[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        content = dechunk(&content);
    }
    Ok((status, content))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

fn invoke(port: u16, function: &str, body: &[u8], chunked: bool) -> (u16, Value) {
    let (status, content) = http(
        port,
        "POST",
        &format!("/{function}"),
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            (
                "X-Azure-Functions-InvocationId",
                "5f0e4a2b-0000-4000-8000-000000000042",
            ),
            ("X-Azure-Functions-HostVersion", "4.1037.0"),
            ("User-Agent", "Azure-Functions-Host/4.1037.0"),
        ],
        body,
        chunked,
    )
    .expect("the handler answers");
    let value = serde_json::from_slice(&content).unwrap_or(Value::Null);
    (status, value)
}

#[test]
fn serve_answers_every_trigger_over_tcp_and_a_work_item_converges_the_estate() {
    let (sim, _dir) = seeded_sim("serve-fixtures", None);
    let serve = start_serve(&sim, &[]);
    for (function, file, chunked) in [
        ("OnNetworkEvent", "OnNetworkEvent.eventgrid.json", true),
        ("OnNetworkEvent", "OnNetworkEvent.cloudevents.json", false),
        ("Backfill", "Backfill.http.json", false),
        ("DriftCheck", "DriftCheck.timer.json", false),
    ] {
        let (status, answer) = invoke(serve.port, function, &fixture(file), chunked);
        assert_eq!(status, 200, "{file}: {answer:#}");
        let outcome = &answer["Outputs"]["outcome"];
        assert_eq!(outcome["schema"], "hubspoke.outcome/v1");
        assert_eq!(
            outcome["invocation_id"],
            "5f0e4a2b-0000-4000-8000-000000000042"
        );
        assert!(answer["ReturnValue"].is_null());
        if function == "OnNetworkEvent" {
            assert_eq!(outcome["status"], "queued", "{file}: {outcome:#}");
            assert_eq!(
                answer["Outputs"]["work"][0]["hub"],
                article().vnet_id("hub")
            );
        }
        if function == "Backfill" {
            assert_eq!(answer["Outputs"]["res"]["statusCode"], 200, "a dry run");
        }
    }
    let (status, answer) = invoke(
        serve.port,
        "ReconcileHub",
        &fixture("ReconcileHub.queue.json"),
        false,
    );
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["Outputs"]["outcome"]["status"], "changed");
    let logs = answer["Logs"].as_array().expect("Logs");
    assert!(
        logs.iter()
            .any(|line| line.as_str().is_some_and(|l| l.contains("applied"))),
        "the invocation's own log lines come back in Logs: {logs:?}"
    );
    let (_, again) = invoke(
        serve.port,
        "ReconcileHub",
        &fixture("ReconcileHub.queue.json"),
        false,
    );
    assert_eq!(again["Outputs"]["outcome"]["status"], "unchanged");
    assert_eq!(again["Outputs"]["outcome"]["requests"]["writes"], 0);
}

#[test]
fn a_bad_setting_stops_start_up_with_its_name() {
    let (sim, _dir) = seeded_sim("serve-bad-setting", None);
    for (setting, value) in [
        ("HUBSPOKE_ROUTE_LIMIT", "many"),
        ("HUBSPOKE_DRIFT_SCHEDULE", "every 15 minutes"),
        ("HUBSPOKE_SELF_PRINCIPAL_ID", "me"),
        ("FUNCTIONS_CUSTOMHANDLER_PORT", "0"),
    ] {
        let port = free_port();
        let output = serve_command(&sim, port, &[(setting, value)])
            .output()
            .expect("hubspoke serve runs");
        assert!(!output.status.success(), "{setting}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(setting), "{setting}: {stderr}");
        assert!(
            http(port, "GET", "/", &[], b"", false).is_err(),
            "it never listened"
        );
    }
}

#[cfg(unix)]
#[test]
fn sigterm_stops_new_invocations_and_lets_the_one_in_flight_finish() {
    let (sim, _dir) = seeded_sim(
        "serve-sigterm",
        Some("lro=300ms,delete=300ms,retry-after=0"),
    );
    let mut serve = start_serve(&sim, &[]);
    let port = serve.port;
    let stdout = serve.child.stdout.take().expect("stdout");
    let in_flight = std::thread::spawn(move || {
        invoke(
            port,
            "ReconcileHub",
            &fixture("ReconcileHub.queue.json"),
            false,
        )
    });
    // Wait until the reconcile has started, then ask the handler to stop.
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a log line");
        if line.contains("invocation started") && line.contains("ReconcileHub") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-TERM", &serve.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let (status, answer) = in_flight.join().expect("the invocation thread");
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(
        answer["Outputs"]["outcome"]["status"], "changed",
        "{answer:#}"
    );
    let exit = serve.child.wait().expect("the handler exits");
    assert!(exit.success(), "{exit:?}");
    assert!(
        http(port, "GET", "/", &[], b"", false).is_err(),
        "no longer listening"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn the_handler_listens_on_loopback_only() {
    let (sim, _dir) = seeded_sim("serve-loopback", None);
    let serve = start_serve(&sim, &[]);
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port = format!("{:04X}", serve.port);
    let listening: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields
                .get(1)
                .is_some_and(|local| local.ends_with(&format!(":{port}")))
                && fields.get(3) == Some(&"0A")
        })
        .collect();
    assert_eq!(listening.len(), 1, "{listening:?}");
    assert!(
        listening[0]
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .starts_with("0100007F:"),
        "bound to 127.0.0.1: {}",
        listening[0]
    );
    let v6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    assert!(
        !v6.lines()
            .any(|line| line.contains(&format!(":{port} ")) && line.contains(" 0A ")),
        "not on IPv6"
    );
}
