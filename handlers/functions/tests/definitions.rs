//! `host.json` and every `function-definitions/*/function.json` against the SchemaStore schemas
//! kept in `tests/fixtures/schemas/`, and against what the handler serves: the folder names are
//! its routes, the binding names its inputs and outputs.
//!
//! `function.json`'s schema declares draft-04 but uses `const` (draft-06): a validator that
//! honours the declared draft lets every binding match the SQL branches and rejects any valid
//! file. It is validated with draft-07 semantics, by replacing the declared `$schema`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use hubspoke_functions::adapter::FUNCTIONS;
use hubspoke_functions::envelope::bindings;
use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Validator {
    schemas: boon::Schemas,
    index: boon::SchemaIndex,
}

impl Validator {
    fn draft7(schema_file: &str) -> Self {
        let mut schema = read(&root().join("tests/fixtures/schemas").join(schema_file));
        schema["$schema"] = json!("http://json-schema.org/draft-07/schema#");
        let url = format!("https://schemas.test/{schema_file}");
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource(&url, schema).unwrap();
        let index = compiler.compile(&url, &mut schemas).unwrap();
        Self { schemas, index }
    }

    fn check(&self, value: &Value) -> Result<(), String> {
        self.schemas
            .validate(value, self.index)
            .map_err(|error| format!("{error:#}"))
    }
}

fn definitions() -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = std::fs::read_dir(root().join("function-definitions"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            (name, read(&dir.join("function.json")))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn binding<'v>(definition: &'v Value, name: &str) -> &'v Value {
    definition["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no binding {name} in {definition}"))
}

#[test]
fn every_function_json_matches_the_schema_and_the_handler() {
    let validator = Validator::draft7("function.json.schema.json");
    let found = definitions();
    let mut names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
    names.sort();
    let mut served: Vec<&str> = FUNCTIONS.to_vec();
    served.sort();
    assert_eq!(names, served, "one folder per function the handler serves");
    for (name, definition) in &found {
        validator
            .check(definition)
            .unwrap_or_else(|error| panic!("{name}/function.json: {error}"));
        let outcome = binding(definition, bindings::OUTCOME);
        assert_eq!(outcome["type"], "queue");
        assert_eq!(outcome["direction"], "out");
        assert_eq!(outcome["queueName"], "hubspoke-outcomes");
        assert_eq!(outcome["connection"], "AzureWebJobsStorage");
        // Every function queues work; ReconcileHub the continuation of a pass that reached its
        // time limit.
        let work = binding(definition, bindings::WORK);
        assert_eq!(
            (&work["type"], &work["direction"], &work["queueName"]),
            (&json!("queue"), &json!("out"), &json!("hubspoke-work"))
        );
    }
    let by_name = |wanted: &str| &found.iter().find(|(name, _)| name == wanted).unwrap().1;
    let trigger = binding(by_name("OnNetworkEvent"), bindings::EVENT);
    assert_eq!(trigger["type"], "eventGridTrigger");
    let trigger = binding(by_name("ReconcileHub"), bindings::WORK_ITEM);
    assert_eq!(trigger["type"], "queueTrigger");
    assert_eq!(trigger["queueName"], "hubspoke-work");
    let trigger = binding(by_name("Backfill"), bindings::REQUEST);
    assert_eq!(trigger["type"], "httpTrigger");
    assert_eq!(trigger["authLevel"], "function");
    assert_eq!(trigger["methods"], json!(["post"]));
    assert_eq!(trigger["route"], "backfill");
    assert_eq!(
        binding(by_name("Backfill"), bindings::RESPONSE)["type"],
        "http"
    );
    let trigger = binding(by_name("DriftCheck"), bindings::TIMER);
    assert_eq!(trigger["type"], "timerTrigger");
    assert_eq!(trigger["schedule"], "%HUBSPOKE_DRIFT_SCHEDULE%");
    assert_eq!(trigger["runOnStartup"], false);
}

#[test]
fn the_function_json_validator_is_not_blind() {
    let validator = Validator::draft7("function.json.schema.json");
    let no_name = json!({"bindings": [{"type": "queue", "direction": "out", "queueName": "q"}]});
    assert!(validator.check(&no_name).is_err());
    let queue_in =
        json!({"bindings": [{"type": "queue", "direction": "in", "name": "q", "queueName": "q"}]});
    assert!(validator.check(&queue_in).is_err());
}

#[test]
fn host_json_matches_the_schema_and_runs_the_handler() {
    let validator = Validator::draft7("host.json.schema.json");
    let host = read(&root().join("host.json"));
    validator.check(&host).unwrap();
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    assert_eq!(host["extensionBundle"]["version"], "[4.*, 5.0.0)");
    let handler = &host["customHandler"];
    assert_eq!(handler["description"]["defaultExecutablePath"], "hubspoke");
    assert_eq!(handler["description"]["arguments"], json!(["serve"]));
    assert_eq!(handler["enableForwardingHttpRequest"], false);
    // A pass starts no change after its time limit and continues in a new one, so any estate
    // fits; an invocation waits for two passes at most, each cut at its hard end. The timeout
    // must hold all of it: its expiry restarts the handler. And the changes in flight at the
    // limit get as long as the ARM client follows one operation.
    assert_eq!(host["functionTimeout"], "01:00:00");
    let timeout = hubspoke_functions::timing::parse_timespan("01:00:00")
        .unwrap()
        .unwrap();
    let timing = hubspoke_functions::timing::pass_timing(None, Some(timeout)).unwrap();
    let hard_end = timing.hard_end.unwrap();
    assert!(hard_end * 2 + hubspoke_functions::timing::STORAGE_MARGIN <= timeout);
    let arm = hubspoke_arm::settings::ArmSettings::default();
    assert!(
        timing.time_limit + arm.operation_timeout <= hard_end,
        "{timing:?}"
    );
    assert_eq!(host["extensions"]["queues"]["maxDequeueCount"], 5);
    let mut wrong = host.clone();
    wrong["version"] = json!("3.0");
    assert!(
        validator.check(&wrong).is_err(),
        "the validator is not blind"
    );
}
