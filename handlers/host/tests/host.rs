//! The host over TCP with a stand-in handler (`tests/fixtures/handler.py`): start-up, the exact
//! invocation requests, the Event Grid webhook, HTTP triggers behind keys, timers, the answer
//! rules and restarts. Queue triggers and outputs, which need Azurite, are in `queues.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{http, unquote, App, Recorder};
use serde_json::{json, Value};

fn event_grid_function() -> Value {
    json!({"bindings": [{"type": "eventGridTrigger", "direction": "in", "name": "eventGridEvent"}]})
}

fn http_function() -> Value {
    json!({"bindings": [
        {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["post"], "route": "backfill"},
        {"type": "http", "direction": "out", "name": "res"}
    ]})
}

fn timer_function(schedule: &str) -> Value {
    json!({"bindings": [{"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": schedule}]})
}

fn app() -> App {
    App::new(
        &[
            ("OnNetworkEvent", event_grid_function()),
            ("Backfill", http_function()),
        ],
        json!({}),
    )
}

fn lower_keys(headers: &Value) -> Value {
    Value::Object(
        headers
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
    )
}

fn event(id: &str) -> Value {
    json!({
        "topic": "/subscriptions/s1",
        "subject": "/subscriptions/s1/resourcegroups/rg/providers/Microsoft.Network/virtualNetworks/v1",
        "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": "2018-07-19T18:38:04.6117357Z",
        "id": id,
        "data": {"operationName": "Microsoft.Network/virtualNetworks/write", "status": "Succeeded"},
        "dataVersion": "2",
        "metadataVersion": "1"
    })
}

#[tokio::test]
async fn each_event_of_a_batch_is_one_invocation_with_the_hosts_headers_and_encoding() {
    let recorder = Recorder::start().await;
    let app = app();
    let host = app.start(&recorder, &[]).await;
    let started = recorder.next("started", Duration::from_secs(20)).await;
    let url = host.event_grid_url().unwrap();
    assert!(
        url.ends_with("/runtime/webhooks/eventgrid?functionName=OnNetworkEvent&code=eventgrid-key")
    );

    let response = http()
        .post(&url)
        .header("aeg-event-type", "Notification")
        .header("content-type", "application/json")
        .body(json!([event("e1"), event("e2")]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let mut records = [recorder.invocation().await, recorder.invocation().await];
    records.sort_by_key(|r| r["body"]["Metadata"]["id"].as_str().unwrap().to_string());
    let first = &records[0];
    assert_eq!(first["path"], "/OnNetworkEvent");
    // Header names are case-insensitive; the values are the host's.
    let headers = lower_keys(&first["headers"]);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(headers["x-azure-functions-hostversion"], "4.1037.0");
    assert_eq!(headers["user-agent"], "Azure-Functions-Host/4.1037.0");
    assert_eq!(
        headers["x-azure-functions-invocationid"]
            .as_str()
            .unwrap()
            .len(),
        36
    );
    assert_ne!(
        headers["x-azure-functions-invocationid"],
        lower_keys(&records[1]["headers"])["x-azure-functions-invocationid"]
    );
    // The handler got the port variables and the app root.
    let env = &first["env"];
    assert_eq!(
        env["FUNCTIONS_CUSTOMHANDLER_PORT"],
        env["FUNCTIONS_HTTPWORKER_PORT"]
    );
    assert!(env["FUNCTIONS_APP_ROOT_PATH"].is_string());
    assert_eq!(first["pid"], started["pid"]);

    // Data: a JSON string holding a JSON string literal holding the indented event.
    let body = &first["body"];
    assert_eq!(body.as_object().unwrap().len(), 2, "only Data and Metadata");
    let once = unquote(&body["Data"]["eventGridEvent"]);
    assert!(
        once.starts_with("{\n  \"topic\": \"/subscriptions/s1\",\n  \"subject\""),
        "{once}"
    );
    assert!(
        once.contains("\"eventTime\": \"2018-07-19T18:38:04.6117357Z\""),
        "dates as written"
    );
    let event_value: Value = serde_json::from_str(&once).unwrap();
    assert_eq!(event_value, event("e1"));
    // Metadata: data as an object, top-level properties double-encoded, the event time as .NET
    // prints a DateTime, and sys.
    let metadata = &body["Metadata"];
    assert_eq!(metadata["data"]["status"], "Succeeded");
    assert_eq!(metadata["id"], "\"e1\"");
    assert_eq!(
        metadata["eventType"],
        "\"Microsoft.Resources.ResourceWriteSuccess\""
    );
    assert_eq!(metadata["eventTime"], "\"07/19/2018 18:38:04\"");
    assert_eq!(metadata["sys"]["MethodName"], "OnNetworkEvent");
    let utc_now = metadata["sys"]["UtcNow"].as_str().unwrap();
    assert_eq!(
        utc_now.len(),
        "2022-06-13T06:00:18.1974545Z".len(),
        "{utc_now}"
    );
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_handshake_and_event_types_are_the_hosts_business() {
    let recorder = Recorder::start().await;
    let app = app();
    let host = app.start(&recorder, &[]).await;
    let url = host.event_grid_url().unwrap();
    let client = http();

    let validation = json!([{"id": "v", "topic": "/subscriptions/s1", "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2018-01-01T00:00:00Z",
        "data": {"validationCode": "512d38b6", "validationUrl": "https://example.invalid/validate"}}]);
    let response = client
        .post(&url)
        .header("aeg-event-type", "SubscriptionValidation")
        .body(validation.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(answer, json!({"validationResponse": "512d38b6"}));

    let options = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("WebHook-Request-Origin", "eventgrid.azure.net")
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 200);
    assert_eq!(
        options.headers()["webhook-allowed-origin"],
        "eventgrid.azure.net"
    );

    let no_type = client.post(&url).body("[]").send().await.unwrap();
    assert_eq!(no_type.status(), 400);
    let unsubscribe = client
        .post(&url)
        .header("aeg-event-type", "Unsubscribe")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(unsubscribe.status(), 202);
    let wrong_key = url.replace("code=eventgrid-key", "code=function-key");
    let refused = client
        .post(&wrong_key)
        .header("aeg-event-type", "Notification")
        .body(json!([event("x")]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let unknown = url.replace("functionName=OnNetworkEvent", "functionName=Nope");
    let not_found = client
        .post(&unknown)
        .header("aeg-event-type", "Notification")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status(), 404);
    // The master key also opens the webhook; a CloudEvent object is one event.
    let master = url.replace("code=eventgrid-key", "code=master-key");
    let cloud_event = json!({"specversion": "1.0", "type": "Microsoft.Resources.ResourceWriteSuccess",
        "source": "/subscriptions/s1", "id": "c1", "time": "2018-07-19T18:38:04Z", "subject": "/x", "data": {}});
    let accepted = client
        .post(&master)
        .header("aeg-event-type", "Notification")
        .body(cloud_event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    // Only that event reached the handler.
    let pending = recorder.pending_invocations().await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["body"]["Metadata"]["id"], "\"c1\"");
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn one_failed_event_fails_the_whole_batch_with_500() {
    let recorder = Recorder::start().await;
    let app = app();
    app.set_plan(json!({"OnNetworkEvent": {"status": 500, "body": {"Logs": ["dropped"]}}}));
    let host = app.start(&recorder, &[]).await;
    let response = http()
        .post(host.event_grid_url().unwrap())
        .header("aeg-event-type", "Notification")
        .body(json!([event("e1")]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert!(response.text().await.unwrap().contains("500"));
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_http_trigger_refuses_a_missing_key_before_the_handler_runs() {
    let recorder = Recorder::start().await;
    let app = app();
    app.set_plan(json!({"Backfill": {"body": {
        "Outputs": {"res": {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": {"queued": ["h1"]}}},
        "Logs": ["queued 1 hub"], "ReturnValue": null}}}));
    let host = app.start(&recorder, &[]).await;
    let url = format!("{}/api/backfill?hub=h1&hub=h2&dryRun=false", host.url());
    let client = http();

    let refused = client.post(&url).body("{}").send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.text().await.unwrap().is_empty());
    let wrong = client
        .post(&url)
        .header("x-functions-key", "nope")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        recorder.pending_invocations().await.is_empty(),
        "the handler never ran"
    );
    let get = client
        .get(format!("{url}&code=function-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404, "a method not listed");

    let accepted = client
        .post(&url)
        .header("x-functions-key", "function-key")
        .header("content-type", "application/json")
        .body(r#"{"age": 12}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    assert_eq!(accepted.headers()["content-type"], "application/json");
    assert_eq!(
        accepted.text().await.unwrap(),
        "{\n  \"queued\": [\n    \"h1\"\n  ]\n}"
    );
    let record = recorder.invocation().await;
    assert_eq!(record["path"], "/Backfill");
    let req = &record["body"]["Data"]["req"];
    assert_eq!(req["Method"], "POST");
    assert_eq!(req["Url"], url);
    assert_eq!(req["Query"], json!({"hub": "h1,h2", "dryRun": "false"}));
    assert_eq!(
        req["Headers"]["x-functions-key"],
        json!(["function-key"]),
        "arrays"
    );
    assert_eq!(req["Body"], r#"{"age": 12}"#);
    assert_eq!(req["Params"], json!({}));
    assert_eq!(
        req["Identities"][0]["AuthenticationType"],
        "WebJobsAuthLevel"
    );
    let metadata = &record["body"]["Metadata"];
    assert_eq!(metadata["dryRun"], "\"false\"");
    assert_eq!(
        metadata["age"], "\"12\"",
        "top-level body properties, double-encoded"
    );
    assert_eq!(metadata["Headers"]["x-functions-key"], "function-key");

    // The key in the query works too, and answers without `res` give 200 {}.
    app.set_plan(json!({"Backfill": {"body": {"Outputs": {}}}}));
    let by_code = client
        .post(format!("{url}&code=function-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_code.status(), 200);
    assert_eq!(by_code.text().await.unwrap(), "{}");
    let record = recorder.invocation().await;
    assert!(
        record["body"]["Data"]["req"].get("Body").is_none(),
        "no body without Content-Length"
    );
    assert_eq!(
        record["body"]["Data"]["req"]["Query"]["code"],
        "function-key"
    );
    assert!(record["body"]["Metadata"]["Query"].get("code").is_none());
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn answers_that_are_not_a_2xx_json_object_fail_the_invocation() {
    let recorder = Recorder::start().await;
    let app = App::new(
        &[("Backfill", http_function())],
        json!({"functionTimeout": "00:00:02"}),
    );
    let host = app.start(&recorder, &[]).await;
    recorder.next("started", Duration::from_secs(20)).await;
    let url = format!("{}/api/backfill?code=function-key", host.url());
    let client = http();
    for plan in [
        json!({"status": 400, "body": {"Outputs": {"res": {"statusCode": 200}}}}),
        json!({"content_type": "text/plain", "raw": "{\"Outputs\": {}}"}),
        json!({"raw": "[1, 2]"}),
        json!({"raw": "not json"}),
    ] {
        app.set_plan(json!({"Backfill": plan}));
        let response = client.post(&url).send().await.unwrap();
        assert_eq!(response.status(), 500, "{plan}");
        recorder.invocation().await;
    }
    // An empty 2xx body never completes the invocation: it fails at the function timeout, and
    // the handler is restarted as a timeout does.
    app.set_plan(json!({"Backfill": {"raw": ""}}));
    let started = std::time::Instant::now();
    let response = client.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 500);
    assert!(started.elapsed() >= Duration::from_secs(2));
    recorder.next("started", Duration::from_secs(20)).await;
    assert!(host.handler_ready(Duration::from_secs(20)).await);
    assert_eq!(host.handler_starts(), 2);
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_handler_that_dies_mid_invocation_is_restarted_on_the_same_port() {
    let recorder = Recorder::start().await;
    let app = app();
    let host = app.start(&recorder, &[]).await;
    let first = recorder.next("started", Duration::from_secs(20)).await;
    app.set_plan(json!({"Backfill": {"exit": true}}));
    let url = format!("{}/api/backfill?code=function-key", host.url());
    let response = http().post(&url).send().await.unwrap();
    assert_eq!(response.status(), 500, "the invocation in flight failed");
    let dying = recorder.invocation().await;
    let second = recorder.next("started", Duration::from_secs(20)).await;
    assert_ne!(first["pid"], second["pid"]);
    app.set_plan(json!({}));
    assert!(host.handler_ready(Duration::from_secs(20)).await);
    let response = http()
        .post(&url)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let again = recorder.invocation().await;
    assert_eq!(again["pid"], second["pid"]);
    assert_eq!(
        again["env"]["FUNCTIONS_CUSTOMHANDLER_PORT"], dying["env"]["FUNCTIONS_CUSTOMHANDLER_PORT"],
        "same port"
    );
    assert_eq!(host.handler_starts(), 2);
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_timer_fires_on_its_schedule_from_an_app_setting() {
    let recorder = Recorder::start().await;
    let app = App::new(
        &[
            ("DriftCheck", timer_function("%TEST_DRIFT_SCHEDULE%")),
            ("Unset", timer_function("%TEST_NOT_SET_ANYWHERE%")),
        ],
        json!({}),
    );
    let host = app
        .start(
            &recorder,
            &[("TEST_DRIFT_SCHEDULE".to_string(), "* * * * * *".to_string())],
        )
        .await;
    assert_eq!(
        host.functions(),
        ["DriftCheck"],
        "a timer whose setting is unset is not indexed"
    );
    let record = recorder.invocation().await;
    assert_eq!(record["path"], "/DriftCheck");
    let timer = &record["body"]["Data"]["timer"];
    assert_eq!(timer["Schedule"], json!({"AdjustForDST": true}));
    assert_eq!(timer["ScheduleStatus"], Value::Null, "first run");
    assert_eq!(timer["IsPastDue"], false);
    let metadata = record["body"]["Metadata"].as_object().unwrap();
    assert_eq!(metadata.keys().collect::<Vec<_>>(), ["sys"]);
    let next = recorder.invocation().await;
    assert!(next["body"]["Data"]["timer"]["ScheduleStatus"]["Last"].is_string());
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_admin_route_runs_a_timer_now_with_the_master_key_only() {
    let recorder = Recorder::start().await;
    let app = App::new(&[("DriftCheck", timer_function("0 0 0 1 1 *"))], json!({}));
    let host = app.start(&recorder, &[]).await;
    let url = format!("{}/admin/functions/DriftCheck", host.url());
    let refused = http()
        .post(&url)
        .header("x-functions-key", "function-key")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let accepted = http()
        .post(&url)
        .header("x-functions-key", "master-key")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    assert_eq!(recorder.invocation().await["path"], "/DriftCheck");
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_bad_host_json_stops_start_up_with_its_name() {
    let app = App::new(
        &[("Backfill", http_function())],
        json!({"extensions": {"queues": {"batchSize": 64}}}),
    );
    let error = hubspoke_host::start(hubspoke_host::HostConfig {
        script_root: app.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        settings: Vec::new(),
        keys: hubspoke_host::Keys::generate(),
        handler_fallback: None,
    })
    .await
    .err()
    .unwrap();
    let text = format!("{error:#}");
    assert!(
        text.contains("host.json") && text.contains("batchSize"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stop_lets_the_invocation_in_flight_finish_then_stops_the_handler() {
    let recorder = Recorder::start().await;
    let app = app();
    app.set_plan(
        json!({"Backfill": {"delay": 1.0, "body": {"Outputs": {"res": {"statusCode": 201}}}}}),
    );
    let host = app.start(&recorder, &[]).await;
    let url = format!("{}/api/backfill?code=function-key", host.url());
    let call = tokio::spawn(async move { http().post(&url).send().await.unwrap().status() });
    recorder.invocation().await;
    let base = host.url().to_string();
    host.shutdown(Duration::from_secs(20)).await;
    assert_eq!(
        call.await.unwrap(),
        201,
        "the invocation in flight finished"
    );
    assert!(
        http()
            .post(format!("{base}/api/backfill"))
            .send()
            .await
            .is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn output_names_are_case_sensitive_and_an_object_return_value_overwrites_them() {
    let recorder = Recorder::start().await;
    let app = app();
    let host = app.start(&recorder, &[]).await;
    let url = format!("{}/api/backfill?code=function-key", host.url());
    // "Res" is not the binding "res": ignored, and Outputs without res answer 200 {}.
    app.set_plan(json!({"Backfill": {"body": {"Outputs": {"Res": {"statusCode": 202}}}}}));
    let response = http().post(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "{}");
    // Without a $return binding, an object ReturnValue is spread over the outputs.
    app.set_plan(json!({"Backfill": {"body": {
        "outputs": {"res": {"statusCode": 202}},
        "returnValue": {"res": {"statusCode": 203, "body": "from ReturnValue"}}}}}));
    let response = http().post(&url).send().await.unwrap();
    assert_eq!(
        response.status(),
        203,
        "top-level keys ignore case; ReturnValue wins"
    );
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(response.text().await.unwrap(), "from ReturnValue");
    host.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_handler_that_cannot_be_found_stops_start_up_with_what_was_looked_for() {
    let app = App::new(
        &[("Backfill", http_function())],
        json!({"customHandler": {"description": {"defaultExecutablePath": "no-such-handler-here", "arguments": []}}}),
    );
    let started = tokio::time::timeout(
        Duration::from_secs(30),
        hubspoke_host::start(hubspoke_host::HostConfig {
            script_root: app.dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            settings: Vec::new(),
            keys: hubspoke_host::Keys::generate(),
            handler_fallback: None,
        }),
    )
    .await
    .expect("start-up ends instead of restarting the handler for ever");
    let text = format!("{:#}", started.err().unwrap());
    assert!(
        text.contains("no-such-handler-here") && text.contains("PATH"),
        "{text}"
    );
}

#[tokio::test]
async fn a_handler_that_always_exits_before_it_is_ready_stops_start_up() {
    // `python3 -c "raise SystemExit(3)"`: it starts, and exits at once, every time.
    let app = App::new(
        &[("Backfill", http_function())],
        json!({"customHandler": {"description": {"defaultExecutablePath": "python3", "arguments": ["-c", "raise SystemExit(3)"]}}}),
    );
    let started = tokio::time::timeout(
        Duration::from_secs(60),
        hubspoke_host::start(hubspoke_host::HostConfig {
            script_root: app.dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            settings: Vec::new(),
            keys: hubspoke_host::Keys::generate(),
            handler_fallback: None,
        }),
    )
    .await
    .expect("start-up ends instead of restarting the handler for ever");
    let text = format!("{:#}", started.err().unwrap());
    assert!(text.contains("3 times in a row"), "{text}");
}

#[tokio::test]
async fn a_handler_missing_from_the_app_root_and_path_runs_from_the_fallback_of_its_name() {
    // A launcher of the fixture under the name host.json gives, in a folder of its own: what
    // `hubspoke host` does with itself when run from a clone.
    let recorder = Recorder::start().await;
    let app = App::new(
        &[("Backfill", http_function())],
        json!({"customHandler": {"description": {"defaultExecutablePath": "fixture-handler"}}}),
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let fallback = elsewhere.path().join("fixture-handler");
    std::fs::write(&fallback, "#!/bin/sh\nexec python3 \"$@\"\n").unwrap();
    std::fs::set_permissions(
        &fallback,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let other_name = elsewhere.path().join("another-handler");
    std::fs::copy(&fallback, &other_name).unwrap();
    let host = hubspoke_host::start(hubspoke_host::HostConfig {
        script_root: app.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        settings: vec![
            ("FIXTURE_RECORD_URL".to_string(), recorder.url.clone()),
            ("FIXTURE_PLAN".to_string(), app.plan.display().to_string()),
        ],
        keys: hubspoke_host::Keys::generate(),
        handler_fallback: Some(fallback),
    })
    .await
    .unwrap();
    assert!(host.handler_ready(Duration::from_secs(30)).await);
    host.shutdown(Duration::from_secs(5)).await;

    // A fallback of another name is not used.
    let started = hubspoke_host::start(hubspoke_host::HostConfig {
        script_root: app.dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        settings: Vec::new(),
        keys: hubspoke_host::Keys::generate(),
        handler_fallback: Some(other_name),
    })
    .await;
    assert!(started.is_err());
}
