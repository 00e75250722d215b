//! Benchmark of `hubspoke serve`, the custom handler, as the Functions host sees it.
//!
//! ```sh
//! cargo build --release -p hubspoke && cargo run --release -p hubspoke --example serve_bench
//! ```
//!
//! 1. Start-up: from the exec of `hubspoke serve` to its first answer to `GET /` (the host's
//!    readiness probe), polled every millisecond; the median of 21 starts.
//! 2. `OnNetworkEvent` with 50 invocations in flight: 5,000 peering events (each mapped to its
//!    hub with one GET of the spoke VNet from the simulator, over HTTPS), latency per invocation;
//!    p50, p99 and max. Once with the simulator's throttling off (the handler's own cost), once
//!    with ARM's read budget of one subscription on (what a burst of events meets in Azure).
//! 3. Resident memory (`VmRSS`) of the handler idle after start-up, and after the load.
//!
//! Not a test: the figures depend on the machine; `BENCHMARKS.md` records them.
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::{Seed, SimConfig, ThrottleSpec};
use serde_json::{json, Value};

const STARTS: usize = 21;
const INVOCATIONS: usize = 5000;
const IN_FLIGHT: usize = 50;

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the example's path");
    let dir = exe
        .parent()
        .and_then(|examples| examples.parent())
        .expect("target dir");
    let binary = dir.join("hubspoke");
    assert!(
        binary.exists(),
        "{} is missing: build it first (cargo build --release -p hubspoke)",
        binary.display()
    );
    binary
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn(env: &[(String, String)], port: u16) -> Child {
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("hubspoke serve starts")
}

/// Time from exec to the first answer of `GET /`. The caller kills and waits for the child.
#[allow(clippy::zombie_processes)]
fn time_to_ready(env: &[(String, String)]) -> (Duration, Child, u16) {
    let port = free_port();
    let start = Instant::now();
    let mut child = spawn(env, port);
    loop {
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hubspoke serve did not answer GET / within 30 s");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = Vec::new();
            if stream.read_to_end(&mut answer).is_ok() && answer.starts_with(b"HTTP/1.1 200") {
                return (start.elapsed(), child, port);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

/// User and system CPU time of process `pid`, in milliseconds.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = fields.get(11).unwrap_or(&0) + fields.get(12).unwrap_or(&0);
    ticks * 10
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// An Event Grid invocation body for a write of `vnet`'s peering, as the host sends it.
fn event_body(estate: &Estate, vnet: &str, n: usize) -> String {
    let subject = format!(
        "{}/virtualNetworkPeerings/{vnet}-to-hub",
        estate.vnet_id(vnet)
    );
    let event = json!({
        "id": format!("bench-{n}"), "topic": format!("/subscriptions/{}", estate.subscription),
        "subject": subject, "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": "2026-11-30T02:16:21.6117357Z", "dataVersion": "2", "metadataVersion": "1",
        "data": {"operationName": "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write",
                 "resourceUri": subject, "status": "Succeeded", "subscriptionId": estate.subscription,
                 "claims": {"http://schemas.microsoft.com/identity/claims/objectidentifier": "7a1c0000-0000-4000-8000-00000000b0b0"}}
    });
    let indented = serde_json::to_string_pretty(&event).expect("json");
    let once = Value::String(indented).to_string();
    json!({"Data": {"eventGridEvent": once}, "Metadata": {"sys": {"MethodName": "OnNetworkEvent"}}})
        .to_string()
}

/// Sends `INVOCATIONS` peering events, `IN_FLIGHT` at a time, and prints the latencies.
async fn load(port: u16, estate: &Estate, label: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()?;
    let url = Arc::new(format!("http://127.0.0.1:{port}/OnNetworkEvent"));
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..INVOCATIONS)
            .map(|n| event_body(estate, &format!("spoke{}", n % 20 + 1), n))
            .collect(),
    );
    // Warm the connections and the token cache.
    for body in bodies.iter().take(IN_FLIGHT) {
        client.post(url.as_str()).body(body.clone()).send().await?;
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let throttled = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let wall = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (client, url, bodies, next, throttled) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            next.clone(),
            throttled.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= bodies.len() {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let start = Instant::now();
                let response = client
                    .post(url.as_str())
                    .header("content-type", "application/json; charset=utf-8")
                    .header("x-azure-functions-invocationid", format!("bench-{n}"))
                    .body(bodies[n].clone())
                    .send()
                    .await?;
                let status = response.status();
                let answer: Value = response.json().await?;
                latencies.push(start.elapsed());
                let outcome = &answer["Outputs"]["outcome"];
                throttled.fetch_add(
                    outcome["requests"]["throttled"].as_u64().unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
                anyhow::ensure!(
                    status.is_success() && outcome["status"] == "queued",
                    "unexpected answer {status}: {answer}"
                );
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let wall = wall.elapsed();
    latencies.sort();
    println!(
        "OnNetworkEvent, {label}, {IN_FLIGHT} in flight, {INVOCATIONS} invocations (one ARM read each): p50 {}, p99 {}, max {}; {:.0} invocations/s; {} throttled answers",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies[latencies.len() - 1]),
        INVOCATIONS as f64 / wall.as_secs_f64(),
        throttled.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for n in 1..=20 {
        let name = format!("spoke{n}");
        estate.vnet(
            &name,
            &[&format!("10.{n}.0.0/16")],
            &[("default", &format!("10.{n}.0.0/24"))],
        );
        estate.peer(&name, "hub", Flags::default(), "Initiated");
    }
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        seed: Some(Seed::Value(estate.snapshot())),
        ..SimConfig::default()
    })
    .await?;
    let mut env = sim.env();
    env.push(("HUBSPOKE_HUBS".into(), estate.vnet_id("hub")));
    env.push(("HUBSPOKE_DRIFT_SCHEDULE".into(), "0 */15 * * * *".into()));
    env.push((
        "HUBSPOKE_SELF_PRINCIPAL_ID".into(),
        "5e1f0000-0000-4000-8000-0000000051a0".into(),
    ));

    // 1. Start-up.
    let mut starts = Vec::new();
    let mut idle_rss = Vec::new();
    for _ in 0..STARTS {
        let (elapsed, mut child, _) = time_to_ready(&env);
        starts.push(elapsed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        idle_rss.push(rss_kib(child.id()));
        let _ = child.kill();
        let _ = child.wait();
    }
    starts.sort();
    idle_rss.sort();
    println!(
        "start-up to the first answer of GET /: median {}, min {}, max {} ({STARTS} starts)",
        ms(percentile(&starts, 0.5)),
        ms(starts[0]),
        ms(starts[STARTS - 1])
    );

    // 2. OnNetworkEvent under load: the handler alone (ARM throttling off), then with ARM's
    //    read budget of one subscription (250 reads, then 25 per second).
    let (_, mut child, port) = time_to_ready(&env);
    let idle = rss_kib(child.id());
    sim.set_throttle(ThrottleSpec {
        enabled: false,
        ..ThrottleSpec::default()
    });
    let cpu_before = cpu_ms(child.id());
    let wall = Instant::now();
    load(port, &estate, "ARM throttling off").await?;
    println!(
        "  the handler's CPU time: {:.0}% of one core over the run",
        (cpu_ms(child.id()) - cpu_before) as f64 / wall.elapsed().as_millis() as f64 * 100.0
    );
    sim.set_throttle(ThrottleSpec::default());
    load(port, &estate, "ARM's read budget on").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(child.id());
    println!(
        "resident memory: idle after start-up median {:.1} MiB (this run {:.1} MiB), after the load {:.1} MiB",
        idle_rss[STARTS / 2] as f64 / 1024.0,
        idle as f64 / 1024.0,
        after as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
    sim.shutdown().await;
    Ok(())
}
