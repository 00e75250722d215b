//! Test support: an app folder whose handler is `tests/fixtures/handler.py` (a Python 3 stand-in
//! that records what it receives and answers as its plan file says), a recorder that receives
//! those records over TCP, and the host started in-process.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hubspoke_host::{HostConfig, HostHandle, Keys};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

/// Receives the fixture's records (`{"kind": "invocation" | "started", ...}`).
pub struct Recorder {
    pub url: String,
    receiver: Mutex<mpsc::UnboundedReceiver<Value>>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/record", listener.local_addr().unwrap());
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let sender = sender.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let sender = sender.clone();
                            async move {
                                let body = request.into_body().collect().await.unwrap().to_bytes();
                                let value: Value = serde_json::from_slice(&body).unwrap();
                                let _ = sender.send(value);
                                Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"{}"),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Recorder {
            url,
            receiver: Mutex::new(receiver),
        }
    }

    /// The next record of `kind`, waiting at most `limit`.
    pub async fn next(&self, kind: &str, limit: Duration) -> Value {
        let mut receiver = self.receiver.lock().await;
        tokio::time::timeout(limit, async {
            loop {
                let record = receiver.recv().await.unwrap();
                if record["kind"] == kind {
                    return record;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {kind} record within {limit:?}"))
    }

    /// The next invocation record (within 20 s).
    pub async fn invocation(&self) -> Value {
        self.next("invocation", Duration::from_secs(20)).await
    }

    /// Invocation records already received, without waiting.
    pub async fn pending_invocations(&self) -> Vec<Value> {
        let mut receiver = self.receiver.lock().await;
        let mut out = Vec::new();
        while let Ok(record) = receiver.try_recv() {
            if record["kind"] == "invocation" {
                out.push(record);
            }
        }
        out
    }
}

/// An app folder: host.json running the fixture, and function definitions.
pub struct App {
    pub dir: tempfile::TempDir,
    pub plan: PathBuf,
}

impl App {
    /// `functions`: (name, function.json); `host_extra` is merged into host.json.
    pub fn new(functions: &[(&str, Value)], host_extra: Value) -> App {
        let dir = tempfile::tempdir().unwrap();
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("fixtures")
            .join("handler.py");
        let mut host = json!({
            "version": "2.0",
            "functionTimeout": "00:00:10",
            "extensions": {"queues": {"batchSize": 1, "maxDequeueCount": 5, "maxPollingInterval": "00:00:01"}},
            "customHandler": {
                "description": {
                    "defaultExecutablePath": "python3",
                    "workingDirectory": "",
                    "arguments": [fixture.display().to_string()]
                },
                "enableForwardingHttpRequest": false
            }
        });
        merge(&mut host, host_extra);
        std::fs::write(dir.path().join("host.json"), host.to_string()).unwrap();
        for (name, definition) in functions {
            let folder = dir.path().join("function-definitions").join(name);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("function.json"), definition.to_string()).unwrap();
        }
        let plan = dir.path().join("plan.json");
        std::fs::write(&plan, "{}").unwrap();
        App { dir, plan }
    }

    /// Sets how the fixture answers each function.
    pub fn set_plan(&self, plan: Value) {
        std::fs::write(&self.plan, plan.to_string()).unwrap();
    }

    /// Starts the host on this app with the recorder and extra settings.
    pub async fn start(&self, recorder: &Recorder, settings: &[(String, String)]) -> HostHandle {
        let mut all = vec![
            ("FIXTURE_RECORD_URL".to_string(), recorder.url.clone()),
            ("FIXTURE_PLAN".to_string(), self.plan.display().to_string()),
        ];
        all.extend(settings.iter().cloned());
        hubspoke_host::start(HostConfig {
            script_root: self.dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            settings: all,
            keys: Keys {
                function: "function-key".into(),
                event_grid: "eventgrid-key".into(),
                master: "master-key".into(),
            },
            handler_fallback: None,
        })
        .await
        .unwrap()
    }
}

fn merge(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, extra) => *target = extra,
    }
}

/// One level of JSON-string decoding.
pub fn unquote(value: &Value) -> String {
    serde_json::from_str::<String>(value.as_str().unwrap()).unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}
