//! Azure Resource Graph, minimal: `POST /providers/Microsoft.ResourceGraph/resources` over the
//! simulator's resources (VNets, route tables, gateways, NICs, and peerings when they are rows of
//! their own), scoped by subscriptions or management groups, with a small documented KQL subset
//! and ARG's paging (`$top`, `$skip`, `$skipToken`). Anything outside the subset is refused with
//! 400 `BadRequest` / `InvalidQuery` naming the part, so a client never gets a silently wrong
//! answer.
//!
//! The subset (docs/simulator.md): the table `Resources` (any case), then any chain of
//! - `| where EXPR OP VALUE`: EXPR a column or a path into one (`properties.a.b`, or into a name
//!   `mv-expand` bound), optionally as `tostring(EXPR)`; OP `=~` (equal ignoring case), `==`
//!   (equal), `contains` (substring ignoring case, as KQL's `contains`), `in~` or `in` with a
//!   parenthesised list of literals (KQL's `in~` / `in`: "equals one of", ignoring case or not);
//!   VALUE one string literal without escapes. Without `tostring`, only string values compare.
//! - `| mv-expand NAME = EXPR`: one row per element of the array at EXPR, the element in column
//!   NAME; an empty array gives no row, null one row with null, a property bag one row per
//!   property (KQL's `mv-expand`, learn.microsoft.com/kusto/query/mv-expand-operator).
//! - `| project NAME, NAME, ...`: columns of a row (`id, name, type, location, subscriptionId,
//!   resourceGroup, properties, tags`) and names `mv-expand` bound.
//!
//! Rows are sorted by `id`, as ARG does when paging; `type` and `resourceGroup` are lower-case as
//! ARG stores them. Where the resources come from, and whether they lag the estate, is the
//! caller's ([`GraphView`]).
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::config::GraphPeerings;
use crate::management_groups::Directory;
use crate::world::ArmError;

/// ARG's page size limit (learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data).
const MAX_TOP: u64 = 1000;

/// The columns a query may project (the others of a row are left out of the subset).
const PROJECTABLE: [&str; 8] = [
    "id",
    "name",
    "type",
    "location",
    "subscriptionId",
    "resourceGroup",
    "properties",
    "tags",
];

/// Every column of a row: what a path may start from.
const ROW_COLUMNS: [&str; 16] = [
    "id",
    "name",
    "type",
    "tenantId",
    "kind",
    "location",
    "resourceGroup",
    "subscriptionId",
    "managedBy",
    "sku",
    "plan",
    "properties",
    "tags",
    "identity",
    "zones",
    "extendedLocation",
];

/// The type of a peering row, when peerings are rows of their own.
const PEERING_TYPE: &str = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings";

fn invalid(detail: impl Into<String>) -> ArmError {
    let mut error = ArmError::bad_request(
        "BadRequest",
        "Please provide below info when asking for support: timestamp, correlationId.",
    );
    error.details.push(json!({
        "code": "InvalidQuery",
        "message": "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying."
    }));
    error.details.push(json!({
        "code": "UnsupportedQuery",
        "message": detail.into(),
    }));
    error
}

/// What the graph holds: the estate now, at most `lag` old, or as it was when frozen. A copy
/// keeps the management groups as they were too: Resource Graph learns of a subscription moved
/// between groups as late as of any other change.
#[derive(Debug, Default)]
pub(crate) struct GraphView {
    /// Rows answer from this copy while set (`PUT /_sim/graph {"frozen": true}`).
    frozen: Option<(Vec<Value>, Directory)>,
    /// How old the copy may grow before it is taken again; zero: always current.
    lag: Duration,
    cached: Option<(Instant, Vec<Value>, Directory)>,
}

impl GraphView {
    pub(crate) fn new(lag: Duration) -> Self {
        Self {
            lag,
            ..Self::default()
        }
    }

    /// The resources a query sees, and the management groups when they are a copy (`None`: as
    /// they are now); `current` gives the estate's resources as they are now, `directory` the
    /// groups.
    pub(crate) fn resources(
        &mut self,
        now: Instant,
        current: impl FnOnce() -> Vec<Value>,
        directory: &Directory,
    ) -> (Vec<Value>, Option<Directory>) {
        if let Some((resources, directory)) = &self.frozen {
            return (resources.clone(), Some(directory.clone()));
        }
        if self.lag.is_zero() {
            return (current(), None);
        }
        match &self.cached {
            Some((taken, resources, directory)) if now.duration_since(*taken) < self.lag => {
                (resources.clone(), Some(directory.clone()))
            }
            _ => {
                let resources = current();
                self.cached = Some((now, resources.clone(), directory.clone()));
                (resources, Some(directory.clone()))
            }
        }
    }

    /// Freezes the graph at `copy` (the estate and the groups now), or thaws it.
    pub(crate) fn set_frozen(&mut self, copy: Option<(Vec<Value>, Directory)>) {
        self.frozen = copy;
        self.cached = None;
    }

    /// Sets the lag; the copy is taken again at the next query.
    pub(crate) fn set_lag(&mut self, lag: Duration) {
        self.lag = lag;
        self.cached = None;
    }

    /// The state as `GET /_sim/graph` shows it.
    pub(crate) fn describe(&self) -> Value {
        json!({
            "frozen": self.frozen.is_some(),
            "lag_ms": u64::try_from(self.lag.as_millis()).unwrap_or(u64::MAX),
        })
    }
}

/// The resources of an estate snapshot that the graph holds: VNets, route tables, gateways and
/// NICs as GET returns them.
pub(crate) fn resources_of(snapshot: &Value) -> Vec<Value> {
    [
        "virtualNetworks",
        "routeTables",
        "virtualNetworkGateways",
        "networkInterfaces",
    ]
    .iter()
    .filter_map(|field| snapshot.get(*field).and_then(Value::as_array))
    .flatten()
    .cloned()
    .collect()
}

/// The resources as rows are made of them, peerings placed as the knob says: inside their
/// VNet's `properties.virtualNetworkPeerings` (`Inline`), as rows of their own as well (`Both`),
/// or only as rows of their own (`Rows`).
fn shaped(resources: Vec<Value>, peerings: GraphPeerings) -> Vec<Value> {
    if peerings == GraphPeerings::Inline {
        return resources;
    }
    let mut out = Vec::with_capacity(resources.len());
    for mut resource in resources {
        let is_vnet = resource
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.Network/virtualNetworks"));
        if is_vnet {
            let peering_list = resource["properties"]["virtualNetworkPeerings"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for peering in peering_list {
                out.push(json!({
                    "id": peering.get("id").cloned().unwrap_or(Value::Null),
                    "name": peering.get("name").cloned().unwrap_or(Value::Null),
                    "type": PEERING_TYPE,
                    "properties": peering.get("properties").cloned().unwrap_or(json!({})),
                }));
            }
            if peerings == GraphPeerings::Rows {
                if let Some(properties) = resource["properties"].as_object_mut() {
                    properties.remove("virtualNetworkPeerings");
                }
            }
        }
        out.push(resource);
    }
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Op {
    EqualIgnoreCase,
    Equal,
    Contains,
    In { ignore_case: bool },
}

/// A value of a row: a path from a column, and whether it is read through `tostring()`.
#[derive(Debug, Clone, PartialEq)]
struct Operand {
    path: Vec<String>,
    tostring: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Where {
        left: Operand,
        op: Op,
        values: Vec<String>,
    },
    Expand {
        name: String,
        path: Vec<String>,
    },
    Project(Vec<String>),
}

/// Splits `text` on `separator` wherever it is outside a quoted literal (`'...'` or `"..."`),
/// each part trimmed; an unterminated literal is refused.
fn split_outside_quotes(text: &str, separator: char) -> Result<Vec<String>, ArmError> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == separator => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            None => {}
        }
        current.push(c);
    }
    if quote.is_some() {
        return Err(invalid("unterminated string literal"));
    }
    parts.push(current);
    Ok(parts.into_iter().map(|p| p.trim().to_string()).collect())
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A dotted path whose first name is one of `known`.
fn parse_path(text: &str, known: &[String], context: &str) -> Result<Vec<String>, ArmError> {
    let path: Vec<String> = text.split('.').map(str::to_string).collect();
    if !path.iter().all(|segment| is_identifier(segment)) {
        return Err(invalid(format!(
            "unsupported expression '{text}' in '{context}': the simulator knows columns and dotted paths into them (no brackets, functions or arithmetic)"
        )));
    }
    if !known.iter().any(|name| name == &path[0]) {
        return Err(invalid(format!(
            "unknown column '{}' in '{context}': the simulator knows {}",
            path[0],
            known.join(", ")
        )));
    }
    Ok(path)
}

/// The operand at the start of `text`, and the rest.
fn parse_operand<'a>(
    text: &'a str,
    known: &[String],
    context: &str,
) -> Result<(Operand, &'a str), ArmError> {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix("tostring(") {
        let end = inner
            .find(')')
            .ok_or_else(|| invalid(format!("unbalanced parenthesis in '{context}'")))?;
        let path = parse_path(inner[..end].trim(), known, context)?;
        return Ok((
            Operand {
                path,
                tostring: true,
            },
            &inner[end + 1..],
        ));
    }
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .unwrap_or(text.len());
    if end == 0 {
        return Err(invalid(format!(
            "unsupported expression in '{context}': the simulator compares a column, a path or tostring(path)"
        )));
    }
    let path = parse_path(&text[..end], known, context)?;
    Ok((
        Operand {
            path,
            tostring: false,
        },
        &text[end..],
    ))
}

/// One quoted literal without escapes: the whole of `text`.
fn parse_literal(text: &str, context: &str) -> Result<String, ArmError> {
    let text = text.trim();
    let mut chars = text.chars();
    let value = match chars.next() {
        Some(q @ ('\'' | '"')) if text.len() >= 2 && text.ends_with(q) => &text[1..text.len() - 1],
        _ => {
            return Err(invalid(format!(
                "unsupported value '{text}' in '{context}': the simulator compares with string literals"
            )))
        }
    };
    if value.contains(['\'', '"', '\\']) {
        return Err(invalid(format!(
            "unsupported value '{text}' in '{context}': the simulator takes literals without quotes or escapes inside"
        )));
    }
    Ok(value.to_string())
}

/// `(lit, lit, ...)`: the whole of `text`.
fn parse_list(text: &str, context: &str) -> Result<Vec<String>, ArmError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| {
            invalid(format!(
                "unsupported list in '{context}': in and in~ take a parenthesised list of string literals"
            ))
        })?;
    let parts = split_outside_quotes(inner, ',')?;
    if parts.len() == 1 && parts[0].is_empty() {
        return Err(invalid(format!("empty list in '{context}'")));
    }
    parts
        .iter()
        .map(|part| parse_literal(part, context))
        .collect()
}

fn parse_where(text: &str, known: &[String]) -> Result<Stage, ArmError> {
    let context = format!("where {}", text.trim());
    let (left, rest) = parse_operand(text, known, &context)?;
    let rest = rest.trim_start();
    let plain_in =
        rest.starts_with("in") && rest[2..].starts_with(|c: char| c.is_whitespace() || c == '(');
    let (op, rest) = if let Some(r) = rest.strip_prefix("in~") {
        (Op::In { ignore_case: true }, r)
    } else if plain_in {
        (Op::In { ignore_case: false }, &rest[2..])
    } else if let Some(r) = rest.strip_prefix("=~") {
        (Op::EqualIgnoreCase, r)
    } else if let Some(r) = rest.strip_prefix("==") {
        (Op::Equal, r)
    } else if let Some(r) = rest.strip_prefix("contains ") {
        (Op::Contains, r)
    } else {
        return Err(invalid(format!(
            "unsupported operator in '{context}': the simulator knows =~, ==, contains, in~ and in (no and, or, not or !=)"
        )));
    };
    let values = match op {
        Op::In { .. } => parse_list(rest, &context)?,
        _ => vec![parse_literal(rest, &context)?],
    };
    Ok(Stage::Where { left, op, values })
}

fn parse_expand(text: &str, known: &mut Vec<String>) -> Result<Stage, ArmError> {
    let context = format!("mv-expand {}", text.trim());
    let (name, expression) = text.split_once('=').ok_or_else(|| {
        invalid(format!(
            "unsupported '{context}': the simulator expands NAME = path"
        ))
    })?;
    let name = name.trim();
    if !is_identifier(name) {
        return Err(invalid(format!("unsupported name '{name}' in '{context}'")));
    }
    let path = parse_path(expression.trim(), known, &context)?;
    if !known.iter().any(|k| k == name) {
        known.push(name.to_string());
    }
    Ok(Stage::Expand {
        name: name.to_string(),
        path,
    })
}

fn parse_project(
    text: &str,
    known: &mut Vec<String>,
    expanded: &[String],
) -> Result<Stage, ArmError> {
    let mut columns = Vec::new();
    for part in text.split(',') {
        let column = part.trim();
        let projectable =
            PROJECTABLE.contains(&column) || expanded.iter().any(|name| name == column);
        if !projectable || !known.iter().any(|k| k == column) {
            return Err(invalid(format!(
                "unsupported projection '{column}': the simulator projects only {} and names mv-expand bound",
                PROJECTABLE.join(", ")
            )));
        }
        columns.push(column.to_string());
    }
    *known = columns.clone();
    Ok(Stage::Project(columns))
}

fn parse(query: &str) -> Result<Vec<Stage>, ArmError> {
    let parts = split_outside_quotes(query, '|')?;
    let table = parts.first().map(String::as_str).unwrap_or("");
    if !table.eq_ignore_ascii_case("resources") {
        return Err(invalid(format!(
            "unsupported table '{table}': the simulator serves only Resources"
        )));
    }
    let mut known: Vec<String> = ROW_COLUMNS.iter().map(|c| c.to_string()).collect();
    let mut expanded: Vec<String> = Vec::new();
    let mut stages = Vec::new();
    for part in &parts[1..] {
        let (word, rest) = part.split_once(char::is_whitespace).unwrap_or((part, ""));
        match word {
            "where" => stages.push(parse_where(rest, &known)?),
            "mv-expand" => {
                let stage = parse_expand(rest, &mut known)?;
                if let Stage::Expand { name, .. } = &stage {
                    expanded.push(name.clone());
                }
                stages.push(stage);
            }
            "project" => stages.push(parse_project(rest, &mut known, &expanded)?),
            _ => {
                return Err(invalid(format!(
                "unsupported operator '{part}': the simulator knows where, mv-expand and project"
            )))
            }
        }
    }
    Ok(stages)
}

/// One ARG row of an ARM resource (taken apart, not copied).
fn row(mut resource: Value) -> Map<String, Value> {
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let segments: Vec<&str> = id.split('/').collect();
    let after = |key: &str| {
        segments
            .windows(2)
            .find(|w| w[0].eq_ignore_ascii_case(key))
            .map(|w| w[1].to_string())
            .unwrap_or_default()
    };
    let text = |key: &str| {
        resource
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (name, kind, location) = (text("name"), text("type"), text("location"));
    let (resource_group, subscription) = (after("resourceGroups"), after("subscriptions"));
    let mut take = |key: &str| resource.get_mut(key).map(Value::take);
    let sku = take("sku").unwrap_or(Value::Null);
    let properties = take("properties").unwrap_or(json!({}));
    let tags = take("tags").unwrap_or(json!({}));
    let value = json!({
        "id": id,
        "name": name,
        "type": kind.to_ascii_lowercase(),
        "tenantId": crate::identity::TENANT_ID,
        "kind": "",
        "location": location.to_ascii_lowercase().replace(' ', ""),
        "resourceGroup": resource_group.to_ascii_lowercase(),
        "subscriptionId": subscription,
        "managedBy": "",
        "sku": sku,
        "plan": Value::Null,
        "properties": properties,
        "tags": tags,
        "identity": Value::Null,
        "zones": Value::Null,
        "extendedLocation": Value::Null,
    });
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Whether `resource` may pass the query's first stage, when that stage filters on `type`:
/// tested before a row is made of it, so a query for VNets does not copy every route table.
fn may_pass(resource: &Value, stages: &[Stage]) -> bool {
    let Some(Stage::Where { left, op, values }) = stages.first() else {
        return true;
    };
    if left.path != ["type"] {
        return true;
    }
    let mut row = Map::new();
    row.insert(
        "type".into(),
        json!(resource
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()),
    );
    matches(&row, left, op, values)
}

/// The value at `path` in `row` (null when absent).
fn resolve<'a>(row: &'a Map<String, Value>, path: &[String]) -> &'a Value {
    const NULL: Value = Value::Null;
    let Some(mut value) = path.first().and_then(|root| row.get(root)) else {
        return &NULL;
    };
    for segment in &path[1..] {
        value = match value.get(segment) {
            Some(next) => next,
            None => return &NULL,
        };
    }
    value
}

/// The text of an operand's value: a string as it is; with `tostring`, any value as KQL's
/// `tostring` writes it (null as empty).
fn text_of(value: &Value, tostring: bool) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        _ if !tostring => None,
        Value::Null => Some(String::new()),
        other => Some(other.to_string()),
    }
}

fn matches(row: &Map<String, Value>, left: &Operand, op: &Op, values: &[String]) -> bool {
    let Some(actual) = text_of(resolve(row, &left.path), left.tostring) else {
        return false;
    };
    match op {
        Op::EqualIgnoreCase => actual.to_lowercase() == values[0].to_lowercase(),
        Op::Equal => actual == values[0],
        Op::Contains => actual.to_lowercase().contains(&values[0].to_lowercase()),
        Op::In { ignore_case: true } => {
            let actual = actual.to_lowercase();
            values.iter().any(|v| v.to_lowercase() == actual)
        }
        Op::In { ignore_case: false } => values.contains(&actual),
    }
}

/// The rows `row` expands into at `path`, the element in column `name`.
fn expand(row: Map<String, Value>, name: &str, path: &[String]) -> Vec<Map<String, Value>> {
    let elements: Vec<Value> = match resolve(&row, path) {
        Value::Array(items) => items.clone(),
        Value::Object(bag) => bag
            .iter()
            .map(|(key, value)| json!({ key.clone(): value.clone() }))
            .collect(),
        other => vec![other.clone()],
    };
    elements
        .into_iter()
        .map(|element| {
            let mut expanded = row.clone();
            expanded.insert(name.to_string(), element);
            expanded
        })
        .collect()
}

/// What a skip token carries: where the next page starts, its size, and a fingerprint of the
/// query and scope it continues.
fn token(query: &str, scope: &Value, offset: u64, top: u64) -> String {
    let payload = json!({"query": query, "scope": scope, "offset": offset, "top": top});
    base64::engine::general_purpose::STANDARD.encode(payload.to_string())
}

fn read_token(text: &str) -> Option<Value> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn option_u64(options: &Map<String, Value>, key: &str) -> Result<Option<u64>, ArmError> {
    match options.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(format!("options.{key} must be a non-negative integer"))),
    }
}

/// The strings of array `key` of the body, if given.
fn strings_of(body: &Value, key: &str) -> Result<Option<Vec<String>>, ArmError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("{key} must be an array of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(format!("{key} must be an array of strings"))),
    }
}

/// Answers one query over `resources` (ARM objects as GET returns them), peerings placed as
/// `peerings` says; `groups` resolves a `managementGroups` scope to the subscriptions under it
/// (`Err` names a group that does not exist).
pub(crate) fn query(
    body: &Value,
    resources: Vec<Value>,
    peerings: GraphPeerings,
    groups: impl FnOnce(&[String]) -> Result<Vec<String>, String>,
) -> Result<Value, ArmError> {
    let text = body.get("query").and_then(Value::as_str).ok_or_else(|| {
        ArmError::bad_request("BadRequest", "The request body must have a 'query' string.")
    })?;
    let listed = strings_of(body, "subscriptions")?;
    let management_groups = strings_of(body, "managementGroups")?;
    // The scope as the token fingerprints it, and the subscriptions it stands for (all: `None`).
    let (scope, subscriptions): (Value, Option<Vec<String>>) = match (listed, management_groups) {
        (Some(_), Some(_)) => return Err(invalid(
            "both subscriptions and managementGroups: the simulator takes one scope or the other",
        )),
        (Some(listed), None) => {
            let lower: Vec<String> = listed.iter().map(|s| s.to_ascii_lowercase()).collect();
            (json!({"subscriptions": lower}), Some(lower))
        }
        (None, Some(names)) => {
            let under = groups(&names).map_err(|unknown| {
                let mut error = ArmError::bad_request(
                    "BadRequest",
                    format!("The management group '{unknown}' was not found or is not accessible."),
                );
                error.details.push(json!({
                    "code": "ManagementGroupNotFound",
                    "message": format!("management group '{unknown}'"),
                }));
                error
            })?;
            let lower: Vec<String> = under.iter().map(|s| s.to_ascii_lowercase()).collect();
            let names: Vec<String> = names.iter().map(|g| g.to_ascii_lowercase()).collect();
            (json!({"managementGroups": names}), Some(lower))
        }
        (None, None) => (json!({}), None),
    };
    let empty = Map::new();
    let options = body
        .get("options")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(format) = options.get("resultFormat").and_then(Value::as_str) {
        if !format.eq_ignore_ascii_case("objectArray") {
            return Err(invalid(format!(
                "resultFormat '{format}': the simulator answers objectArray only"
            )));
        }
    }
    let stages = parse(text)?;

    let mut top = option_u64(options, "$top")?;
    let mut offset = option_u64(options, "$skip")?.unwrap_or(0);
    if let Some(skip_token) = options.get("$skipToken").and_then(Value::as_str) {
        let continued = read_token(skip_token)
            .filter(|t| t["query"] == json!(text) && t["scope"] == scope)
            .ok_or_else(|| {
                invalid("the $skipToken was not issued for this query and this scope")
            })?;
        offset = continued["offset"].as_u64().unwrap_or(0);
        top = top.or_else(|| continued["top"].as_u64());
    }
    let top = top.unwrap_or(MAX_TOP);
    if top == 0 || top > MAX_TOP {
        return Err(invalid(format!(
            "options.$top is {top}: it must be between 1 and {MAX_TOP}"
        )));
    }

    let mut rows: Vec<Map<String, Value>> = shaped(resources, peerings)
        .into_iter()
        .filter(|resource| may_pass(resource, &stages))
        .map(row)
        .filter(|r| match &subscriptions {
            None => true,
            Some(subscriptions) => r
                .get("subscriptionId")
                .and_then(Value::as_str)
                .is_some_and(|s| subscriptions.contains(&s.to_ascii_lowercase())),
        })
        .collect();
    rows.sort_by_key(|r| {
        r.get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    });
    for stage in &stages {
        match stage {
            Stage::Where { left, op, values } => {
                rows.retain(|r| matches(r, left, op, values));
            }
            Stage::Expand { name, path } => {
                rows = rows
                    .into_iter()
                    .flat_map(|r| expand(r, name, path))
                    .collect();
            }
            Stage::Project(columns) => {
                rows = rows
                    .into_iter()
                    .map(|r| {
                        columns
                            .iter()
                            .map(|c| (c.clone(), r.get(c).cloned().unwrap_or(Value::Null)))
                            .collect()
                    })
                    .collect();
            }
        }
    }
    let total = rows.len() as u64;
    let start = offset.min(total);
    let end = start.saturating_add(top).min(total);
    let data: Vec<Value> = rows
        .into_iter()
        .skip(start as usize)
        .take((end - start) as usize)
        .map(Value::Object)
        .collect();
    let mut answer = Map::new();
    answer.insert("totalRecords".into(), json!(total));
    answer.insert("count".into(), json!(data.len()));
    answer.insert("resultTruncated".into(), json!("false"));
    answer.insert("facets".into(), json!([]));
    if end < total {
        answer.insert("$skipToken".into(), json!(token(text, &scope, end, top)));
    }
    answer.insert("data".into(), Value::Array(data));
    Ok(Value::Object(answer))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn detail(error: ArmError) -> String {
        error.details[1]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn the_subset_parses_and_the_rest_is_named() {
        let stages =
            parse("Resources | where name contains 'a|b' | project id, name").unwrap_or_default();
        assert_eq!(stages.len(), 2);
        assert_eq!(
            stages[0],
            Stage::Where {
                left: Operand {
                    path: vec!["name".into()],
                    tostring: false
                },
                op: Op::Contains,
                values: vec!["a|b".into()]
            }
        );
        let peered = parse(
            "resources | where type =~ 'microsoft.network/virtualnetworks' \
             | mv-expand peering = properties.virtualNetworkPeerings \
             | where tostring(peering.properties.remoteVirtualNetwork.id) in~ ('/a', \"/b\") \
             | project id, subscriptionId, peering",
        )
        .unwrap();
        assert_eq!(peered.len(), 4);
        assert_eq!(
            peered[2],
            Stage::Where {
                left: Operand {
                    path: ["peering", "properties", "remoteVirtualNetwork", "id"]
                        .map(String::from)
                        .to_vec(),
                    tostring: true
                },
                op: Op::In { ignore_case: true },
                values: vec!["/a".into(), "/b".into()]
            }
        );
        for (query, named) in [
            ("resources | summarize count() by type", "summarize"),
            ("ResourceContainers", "ResourceContainers"),
            (
                "resources | where name =~ 'a' and type =~ 'b'",
                "unsupported value",
            ),
            ("resources | project id, sku", "sku"),
            (
                "resources | where peering.id =~ 'a'",
                "unknown column 'peering'",
            ),
            (
                "resources | where properties['a'] =~ 'b'",
                "properties['a']",
            ),
            ("resources | where name !in ('a')", "unsupported operator"),
            ("resources | where name in~ 'a'", "parenthesised list"),
            ("resources | where name in~ ()", "empty list"),
            ("resources | mv-expand properties.subnets", "NAME = path"),
            (
                "resources | project id | where name =~ 'a'",
                "unknown column 'name'",
            ),
        ] {
            let error = parse(query).expect_err(query);
            assert!(
                detail(error.clone()).contains(named),
                "{query}: {}",
                detail(error)
            );
        }
    }

    #[test]
    fn mv_expand_follows_kql_for_empty_arrays_nulls_and_bags() {
        let mut base = Map::new();
        base.insert("id".into(), json!("/x"));
        base.insert(
            "properties".into(),
            json!({"list": [1, 2], "empty": [], "bag": {"a": 1, "b": 2}}),
        );
        let path = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(expand(base.clone(), "v", &path("properties.list")).len(), 2);
        assert_eq!(
            expand(base.clone(), "v", &path("properties.empty")).len(),
            0
        );
        let nulls = expand(base.clone(), "v", &path("properties.missing"));
        assert_eq!(nulls.len(), 1);
        assert_eq!(nulls[0]["v"], Value::Null);
        let bags = expand(base, "v", &path("properties.bag"));
        assert_eq!(bags[1]["v"], json!({"b": 2}));
    }

    #[test]
    fn peerings_are_placed_as_the_knob_says() {
        let vnet = json!({"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v",
            "type": "Microsoft.Network/virtualNetworks",
            "properties": {"virtualNetworkPeerings": [{"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/virtualNetworkPeerings/p", "name": "p", "properties": {"peeringState": "Initiated"}}]}});
        assert_eq!(shaped(vec![vnet.clone()], GraphPeerings::Inline).len(), 1);
        let both = shaped(vec![vnet.clone()], GraphPeerings::Both);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0]["type"], PEERING_TYPE);
        assert!(both[1]["properties"]["virtualNetworkPeerings"].is_array());
        let rows = shaped(vec![vnet], GraphPeerings::Rows);
        assert_eq!(rows.len(), 2);
        assert!(rows[1]["properties"]
            .get("virtualNetworkPeerings")
            .is_none());
    }
}
