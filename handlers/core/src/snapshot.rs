//! Reading an estate from the JSON people already have: the shapes `hubspoke plan --snapshot`
//! accepts, turned into ARM's own JSON for the readers of [`crate::model`], which stay the one
//! place that reads a field.
//!
//! A file holds one JSON document or several one after the other (a shell loop that appends the
//! output of one `az` call per subscription or resource group). Each document is one of:
//! - an array of resources, as `az network vnet list -o json`, `az network route-table list` and
//!   `az network vnet-gateway list` print them;
//! - ARM's own list answer `{"value": [...]}` (`az rest`), or one resource;
//! - Azure Resource Graph's answer, as `az graph query` prints it
//!   (`{"count", "data": [...], "skip_token", "total_records"}`, the keys of the CLI's
//!   resource-graph extension, Azure/azure-cli-extensions
//!   `src/resource-graph/azext_resourcegraph/custom.py`) or as the REST API returns it
//!   (`{"totalRecords", "count", "$skipToken", "resultTruncated", "data": [...]}`), with `data`
//!   in the object-array result format (the CLI's; the table format is refused);
//! - the snapshot object `{"virtualNetworks": [...], "routeTables": [...],
//!   "virtualNetworkGateways": [...]}`.
//!
//! Resources in arrays and answers are classified by `type`, ignoring case (Resource Graph
//! answers it in lower case). A resource is in ARM's shape when it has a `properties` object;
//! otherwise it is in the Azure CLI's, where every object whose REST schema marks its
//! `properties` `x-ms-client-flatten` (the resource, and its subnets, peerings, delegations,
//! routes and ip configurations) has its properties merged into it. Un-flattening puts every key
//! that is not part of the schema's envelope (`id`, `name`, `type`, `etag`, and for the resources
//! `location`, `tags`, ...) back under `properties`. The envelopes are those of the REST API
//! specification, `specification/network/resource-manager/Microsoft.Network/stable/`
//! (`virtualNetwork.json` and `routeTable.json` at 2026-01-01, `virtualNetworkGateway.json` at
//! 2024-05-01). Sub-resources hubspoke neither reads nor writes (a subnet's private endpoints, a
//! gateway's NAT rules) are kept as printed.
//!
//! Every `az` command, `az rest` and `az graph query` included, also adds `resourceGroup` to each
//! object with an `id`, references included (Azure/azure-cli
//! `src/azure-cli-core/azure/cli/core/commands/transform.py`, `_add_resource_group`). ARM has no
//! such key there: it is dropped, whatever the shape.
//!
//! Errors name the file, the JSON path in that file (as the user's file has it, not as
//! un-flattened) and what was expected. A resource given twice is an error naming both places,
//! unless both are the same.
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::model::{Gateway, ModelError, Observed, RouteTable, VirtualNetwork};

/// One input file: its name for errors, and the JSON documents it holds, in order.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotFile<'a> {
    pub name: &'a str,
    pub documents: &'a [Value],
}

/// Where a snapshot is not an estate: the file, the document in it when it holds several
/// (1-based), and the path and expectation in that document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {error}", document.map(|n| format!(" (JSON document {n})")).unwrap_or_default())]
pub struct SnapshotError {
    pub file: String,
    pub document: Option<usize>,
    pub error: ModelError,
}

/// Splits a file's text into its JSON documents: one, or several one after the other (`[...]
/// [...]`, as `for ...; do az ... -o json; done > file` writes them).
pub fn documents(text: &str) -> Result<Vec<Value>, serde_json::Error> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect()
}

/// Reads the estate from every document of every file, in order.
pub fn read(files: &[SnapshotFile<'_>]) -> Result<Observed, SnapshotError> {
    let mut reader = Reader::default();
    for (file_index, file) in files.iter().enumerate() {
        if file.documents.is_empty() {
            return Err(SnapshotError {
                file: file.name.to_owned(),
                document: None,
                error: ModelError {
                    path: "$".into(),
                    expected: "JSON output of the Azure CLI or of ARM".into(),
                    found: "an empty file (did the command that wrote it fail?)".into(),
                },
            });
        }
        let several = file.documents.len() > 1;
        for (document_index, document) in file.documents.iter().enumerate() {
            let place = Place {
                file: file_index,
                document: several.then_some(document_index + 1),
            };
            reader
                .document(document, place)
                .map_err(|error| place.error(files, error))?;
        }
    }
    reader.finish(files)
}

// Defined here rather than in `model.rs`, which this file builds on: the model's readers know
// only ARM's JSON, and the other shapes are this file's concern.
impl Observed {
    /// Reads a snapshot: `{"virtualNetworks": [...], "routeTables": [...],
    /// "virtualNetworkGateways": [...]}`, each array optional and holding ARM objects, or any
    /// other shape this module accepts (the Azure CLI's output, a Resource Graph answer). Errors
    /// carry only the path.
    pub fn from_snapshot(document: &Value) -> Result<Observed, ModelError> {
        let documents = std::slice::from_ref(document);
        read(&[SnapshotFile {
            name: "",
            documents,
        }])
        .map_err(|error| error.error)
    }
}

// ---------------------------------------------------------------------------------------------

/// The three kinds of resource an estate is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    VirtualNetwork,
    RouteTable,
    Gateway,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::VirtualNetwork, Kind::RouteTable, Kind::Gateway];

    fn arm_type(self) -> &'static str {
        match self {
            Kind::VirtualNetwork => "Microsoft.Network/virtualNetworks",
            Kind::RouteTable => "Microsoft.Network/routeTables",
            Kind::Gateway => "Microsoft.Network/virtualNetworkGateways",
        }
    }

    fn snapshot_key(self) -> &'static str {
        match self {
            Kind::VirtualNetwork => "virtualNetworks",
            Kind::RouteTable => "routeTables",
            Kind::Gateway => "virtualNetworkGateways",
        }
    }

    fn shape(self) -> &'static Shape {
        match self {
            Kind::VirtualNetwork => &VIRTUAL_NETWORK,
            Kind::RouteTable => &ROUTE_TABLE,
            Kind::Gateway => &GATEWAY,
        }
    }

    fn from_type(text: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.arm_type().eq_ignore_ascii_case(text))
    }
}

/// What the Azure CLI flattens in one kind of object: the keys that stay at the top (the schema's
/// envelope), and the arrays under `properties` whose items are flattened objects themselves.
struct Shape {
    envelope: &'static [&'static str],
    children: &'static [(&'static str, &'static Shape)],
}

/// `SubResource` plus `name`, `type`, `etag`: subnets, peerings, delegations, routes, ...
const SUB_RESOURCE_ENVELOPE: &[&str] = &["id", "name", "type", "etag"];

static LEAF: Shape = Shape {
    envelope: SUB_RESOURCE_ENVELOPE,
    children: &[],
};

static SUBNET: Shape = Shape {
    envelope: SUB_RESOURCE_ENVELOPE,
    children: &[
        ("delegations", &LEAF),
        ("serviceAssociationLinks", &LEAF),
        ("resourceNavigationLinks", &LEAF),
    ],
};

/// `VirtualNetwork`: `Resource` (id, name, type, location, tags) plus etag and extendedLocation.
static VIRTUAL_NETWORK: Shape = Shape {
    envelope: &[
        "id",
        "name",
        "type",
        "etag",
        "location",
        "tags",
        "extendedLocation",
    ],
    children: &[("subnets", &SUBNET), ("virtualNetworkPeerings", &LEAF)],
};

/// `RouteTable`: `Resource` plus etag. Its `subnets` are references (`{"id"}`), not flattened.
static ROUTE_TABLE: Shape = Shape {
    envelope: &["id", "name", "type", "etag", "location", "tags"],
    children: &[("routes", &LEAF)],
};

/// `VirtualNetworkGateway`: `Resource` plus etag, extendedLocation and identity. Its `sku` is a
/// property (the CLI prints it at the top, flattened with the rest).
static GATEWAY: Shape = Shape {
    envelope: &[
        "id",
        "name",
        "type",
        "etag",
        "location",
        "tags",
        "extendedLocation",
        "identity",
    ],
    children: &[("ipConfigurations", &LEAF)],
};

/// The file and document a resource came from.
#[derive(Debug, Clone, Copy)]
struct Place {
    file: usize,
    document: Option<usize>,
}

impl Place {
    fn error(self, files: &[SnapshotFile<'_>], error: ModelError) -> SnapshotError {
        SnapshotError {
            file: files
                .get(self.file)
                .map(|file| file.name.to_owned())
                .unwrap_or_default(),
            document: self.document,
            error,
        }
    }

    fn describe(self, files: &[SnapshotFile<'_>], path: &str) -> String {
        let name = files.get(self.file).map_or("", |file| file.name);
        match self.document {
            Some(n) => format!("{name} (JSON document {n}) at {path}"),
            None if name.is_empty() => format!("at {path}"),
            None => format!("{name} at {path}"),
        }
    }
}

/// A resource found, in ARM's shape, with where it came from.
struct Found {
    kind: Kind,
    resource: Value,
    place: Place,
    /// Its path in its document, e.g. `$[3]` or `$.data[0]`.
    path: String,
    /// Where un-flattening inserted a `properties` level, relative to `path` in the ARM shape
    /// (`""` for the resource itself, `.properties.subnets[2]` for a subnet): error paths drop
    /// those levels to point into the file as it is.
    inserted: Vec<String>,
}

/// One page of a Resource Graph answer, for the check that every page was given.
struct GraphPage {
    place: Place,
    rows: u64,
    total: Option<(String, u64)>,
    skip_token: Option<String>,
}

#[derive(Default)]
struct Reader {
    found: Vec<Found>,
    graph_pages: Vec<GraphPage>,
}

impl Reader {
    fn document(&mut self, document: &Value, place: Place) -> Result<(), ModelError> {
        match document {
            Value::Array(items) => self.items(items, "$", place, None, false),
            Value::Object(object) if object.contains_key("data") => {
                self.graph_answer(object, place)
            }
            Value::Object(object) if object.contains_key("value") => match &object["value"] {
                Value::Array(items) => self.items(items, "$.value", place, None, false),
                other => Err(mismatch(
                    "$.value",
                    "an array of resources (ARM's list answer)",
                    other,
                )),
            },
            Value::Object(object) if object.get("id").is_some_and(Value::is_string) => {
                self.resource(document, "$".into(), place, None, false)
            }
            Value::Object(object) => self.snapshot_object(object, place),
            other => Err(mismatch(
                "$",
                "an array of resources (`az network vnet list -o json`), a Resource Graph answer \
                 {\"data\": [...]}, ARM's list answer {\"value\": [...]} or a snapshot object \
                 {\"virtualNetworks\": [...], ...}",
                other,
            )),
        }
    }

    fn snapshot_object(
        &mut self,
        object: &Map<String, Value>,
        place: Place,
    ) -> Result<(), ModelError> {
        for key in object.keys() {
            if !Kind::ALL.iter().any(|kind| kind.snapshot_key() == key) {
                return Err(ModelError {
                    path: format!("$.{key}"),
                    expected:
                        "only \"virtualNetworks\", \"routeTables\" and \"virtualNetworkGateways\""
                            .into(),
                    found: "an unknown key".into(),
                });
            }
        }
        for kind in Kind::ALL {
            let key = kind.snapshot_key();
            match object.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Array(items)) => {
                    self.items(items, &format!("$.{key}"), place, Some(kind), false)?
                }
                Some(other) => return Err(mismatch(&format!("$.{key}"), "an array", other)),
            }
        }
        Ok(())
    }

    fn graph_answer(
        &mut self,
        object: &Map<String, Value>,
        place: Place,
    ) -> Result<(), ModelError> {
        let rows = match &object["data"] {
            Value::Array(rows) => rows,
            Value::Object(table) if table.contains_key("columns") || table.contains_key("rows") => {
                return Err(ModelError {
                    path: "$.data".into(),
                    expected: "Resource Graph's rows as an array of objects (the result format \
                               objectArray, which `az graph query` asks for)"
                        .into(),
                    found: "a table (columns and rows): ask for \"resultFormat\": \"objectArray\""
                        .into(),
                });
            }
            other => {
                return Err(mismatch(
                    "$.data",
                    "Resource Graph's rows as an array of objects",
                    other,
                ))
            }
        };
        if let Some(truncated) = object.get("resultTruncated") {
            if truncated == "true" || truncated == true {
                return Err(ModelError {
                    path: "$.resultTruncated".into(),
                    expected: "a whole answer".into(),
                    found: "Resource Graph truncated it: remove `limit` or `take` from the query \
                            and page with the skip token"
                        .into(),
                });
            }
        }
        let mut total = None;
        for key in ["total_records", "totalRecords"] {
            match object.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Number(number)) if number.as_u64().is_some() => {
                    total = number.as_u64().map(|n| (key.to_owned(), n));
                }
                Some(other) => {
                    return Err(mismatch(&format!("$.{key}"), "a count of records", other))
                }
            }
        }
        let skip_token = ["skip_token", "$skipToken"]
            .into_iter()
            .find_map(|key| object.get(key).and_then(Value::as_str))
            .map(str::to_owned);
        self.graph_pages.push(GraphPage {
            place,
            rows: rows.len() as u64,
            total,
            skip_token,
        });
        self.items(rows, "$.data", place, None, true)
    }

    fn items(
        &mut self,
        items: &[Value],
        path: &str,
        place: Place,
        kind: Option<Kind>,
        require_properties: bool,
    ) -> Result<(), ModelError> {
        for (index, item) in items.iter().enumerate() {
            self.resource(
                item,
                format!("{path}[{index}]"),
                place,
                kind,
                require_properties,
            )?;
        }
        Ok(())
    }

    /// Classifies one resource and brings it to ARM's shape. `kind` is known from a snapshot
    /// object's key; otherwise `type` says it.
    fn resource(
        &mut self,
        value: &Value,
        path: String,
        place: Place,
        kind: Option<Kind>,
        require_properties: bool,
    ) -> Result<(), ModelError> {
        let Value::Object(object) = value else {
            return Err(mismatch(&path, "an object (a resource)", value));
        };
        let type_path = format!("{path}.type");
        let kind = match (kind, object.get("type")) {
            (Some(kind), None | Some(Value::Null)) => kind,
            (Some(kind), Some(Value::String(text)))
                if kind.arm_type().eq_ignore_ascii_case(text) =>
            {
                kind
            }
            (Some(kind), Some(other)) => {
                return Err(ModelError {
                    path: type_path,
                    expected: format!(
                        "\"{}\" (the array \"{}\" holds only those)",
                        kind.arm_type(),
                        kind.snapshot_key()
                    ),
                    found: describe(other, object),
                })
            }
            (None, Some(Value::String(text))) => match Kind::from_type(text) {
                Some(kind) => kind,
                None => {
                    return Err(ModelError {
                        path: type_path,
                        expected: "\"Microsoft.Network/virtualNetworks\", \
                                   \"Microsoft.Network/routeTables\" or \
                                   \"Microsoft.Network/virtualNetworkGateways\" (any case)"
                            .into(),
                        found: describe(&Value::String(text.clone()), object),
                    })
                }
            },
            (None, None) => {
                return Err(ModelError {
                    path: type_path,
                    expected: "the resource's type, e.g. \"Microsoft.Network/virtualNetworks\""
                        .into(),
                    found: "nothing".into(),
                })
            }
            (None, Some(other)) => {
                return Err(mismatch(&type_path, "the resource's type, a string", other))
            }
        };
        if require_properties && !object.contains_key("properties") {
            return Err(ModelError {
                path: format!("{path}.properties"),
                expected: "the resource's \"properties\" object: the query must project \
                           `properties` (see the README's query)"
                    .into(),
                found: "nothing".into(),
            });
        }
        let mut inserted = Vec::new();
        let resource = arm_shape(object, kind.shape(), "", &mut inserted);
        self.found.push(Found {
            kind,
            resource,
            place,
            path,
            inserted,
        });
        Ok(())
    }

    /// Checks what needs every input (duplicates, every page of Resource Graph's answer), then
    /// reads each resource with the model's readers.
    fn finish(self, files: &[SnapshotFile<'_>]) -> Result<Observed, SnapshotError> {
        self.check_graph_pages(files)?;
        let mut observed = Observed::default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, found) in self.found.iter().enumerate() {
            if let Some(id) = found.resource.get("id").and_then(Value::as_str) {
                // ARM compares ids ignoring case; so does the model.
                match seen.get(&id.to_ascii_lowercase()) {
                    Some(&first) if self.found[first].resource == found.resource => continue,
                    Some(&first) => {
                        let first = &self.found[first];
                        return Err(found.place.error(
                            files,
                            ModelError {
                                path: format!("{}.id", found.path),
                                expected: "each resource once (or twice the same)".into(),
                                found: format!(
                                    "{id} again, already read with other content from {}",
                                    first.place.describe(files, &first.path)
                                ),
                            },
                        ));
                    }
                    None => {
                        seen.insert(id.to_ascii_lowercase(), index);
                    }
                }
            }
            let read = |error: ModelError| found.place.error(files, found.file_path(error));
            match found.kind {
                Kind::VirtualNetwork => observed
                    .virtual_networks
                    .push(VirtualNetwork::from_arm(&found.resource, &found.path).map_err(read)?),
                Kind::RouteTable => observed
                    .route_tables
                    .push(RouteTable::from_arm(&found.resource, &found.path).map_err(read)?),
                Kind::Gateway => observed
                    .gateways
                    .push(Gateway::from_arm(&found.resource, &found.path).map_err(read)?),
            }
        }
        Ok(observed)
    }

    /// Resource Graph answers a page at a time (`az graph query --first` at most 1000 rows): a
    /// plan from one page of several would be a plan for part of the estate.
    fn check_graph_pages(&self, files: &[SnapshotFile<'_>]) -> Result<(), SnapshotError> {
        let rows: u64 = self.graph_pages.iter().map(|page| page.rows).sum();
        let Some((page, (key, total))) = self
            .graph_pages
            .iter()
            .filter_map(|page| page.total.as_ref().map(|total| (page, total)))
            .max_by_key(|(_, (_, total))| *total)
        else {
            return Ok(());
        };
        if rows >= *total {
            return Ok(());
        }
        let page = self
            .graph_pages
            .iter()
            .find(|page| page.skip_token.is_some())
            .unwrap_or(page);
        let next = match &page.skip_token {
            Some(token) => format!(" (the next starts at --skip-token {token})"),
            None => String::new(),
        };
        Err(page.place.error(
            files,
            ModelError {
                path: format!("$.{key}"),
                expected: format!("every page of Resource Graph's answer: {total} records in all"),
                found: format!(
                    "{rows} rows: pass every page{next}, e.g. `az graph query --first 1000 \
                     --skip-token ...` once per page"
                ),
            },
        ))
    }
}

impl Found {
    /// Maps an error of the model's readers, whose path is in ARM's shape, back to the file.
    fn file_path(&self, mut error: ModelError) -> ModelError {
        if let Some(relative) = error.path.strip_prefix(self.path.as_str()) {
            error.path = format!("{}{}", self.path, drop_inserted(relative, &self.inserted));
        }
        error
    }
}

/// Removes from `relative` (a path in ARM's shape) each `.properties` that un-flattening inserted.
fn drop_inserted(relative: &str, inserted: &[String]) -> String {
    let mut in_file = String::new();
    let mut in_arm = String::new();
    let mut rest = relative;
    loop {
        if inserted.contains(&in_arm) {
            if let Some(after) = rest.strip_prefix(".properties") {
                if after.is_empty() || after.starts_with(['.', '[']) {
                    in_arm.push_str(".properties");
                    rest = after;
                }
            }
        }
        if rest.is_empty() {
            return in_file;
        }
        let cut = rest
            .char_indices()
            .skip(1)
            .find(|(_, c)| matches!(c, '.' | '['))
            .map_or(rest.len(), |(index, _)| index);
        let (segment, after) = rest.split_at(cut);
        in_file.push_str(segment);
        in_arm.push_str(segment);
        rest = after;
    }
}

/// An object in ARM's shape: as it is when it has `properties` (or nothing that could be one),
/// otherwise un-flattened by `shape`; in both cases without the CLI's `resourceGroup`s.
fn arm_shape(
    object: &Map<String, Value>,
    shape: &Shape,
    relative: &str,
    inserted: &mut Vec<String>,
) -> Value {
    let flattened = !object.contains_key("properties")
        && object
            .keys()
            .any(|key| key != "resourceGroup" && !shape.envelope.contains(&key.as_str()));
    if !flattened {
        return Value::Object(object_without_resource_groups(object));
    }
    let mut envelope = Map::new();
    let mut properties = Map::new();
    for (key, value) in object {
        if key == "resourceGroup" {
            // The CLI's, from the id; ARM has none.
            continue;
        }
        if shape.envelope.contains(&key.as_str()) {
            envelope.insert(key.clone(), without_resource_groups(value));
            continue;
        }
        let child = shape
            .children
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, child)| *child);
        let value = match (child, value) {
            (Some(child), Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, item)| match item {
                        Value::Object(item) => arm_shape(
                            item,
                            child,
                            &format!("{relative}.properties.{key}[{index}]"),
                            inserted,
                        ),
                        other => other.clone(),
                    })
                    .collect(),
            ),
            _ => without_resource_groups(value),
        };
        properties.insert(key.clone(), value);
    }
    envelope.insert("properties".into(), Value::Object(properties));
    inserted.push(relative.to_owned());
    Value::Object(envelope)
}

/// `value` without the `resourceGroup` the CLI adds to every object that has an `id`.
fn without_resource_groups(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(object_without_resource_groups(object)),
        Value::Array(items) => Value::Array(items.iter().map(without_resource_groups).collect()),
        other => other.clone(),
    }
}

fn object_without_resource_groups(object: &Map<String, Value>) -> Map<String, Value> {
    let has_id = object.contains_key("id");
    object
        .iter()
        .filter(|(key, _)| !(has_id && *key == "resourceGroup"))
        .map(|(key, value)| (key.clone(), without_resource_groups(value)))
        .collect()
}

fn mismatch(path: &str, expected: &str, found: &Value) -> ModelError {
    ModelError {
        path: path.to_owned(),
        expected: expected.to_owned(),
        found: kind_of(found),
    }
}

fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the string {text:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A value found in a resource, with the resource's id when it has one.
fn describe(found: &Value, resource: &Map<String, Value>) -> String {
    match resource.get("id").and_then(Value::as_str) {
        Some(id) => format!("{} (resource {id})", kind_of(found)),
        None => kind_of(found),
    }
}
