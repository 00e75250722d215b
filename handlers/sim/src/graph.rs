//! Azure Resource Graph, minimal: `POST /providers/Microsoft.ResourceGraph/resources` over the
//! simulator's resources (VNets, route tables, gateways, NICs), with a small documented KQL
//! subset and ARG's paging (`$top`, `$skip`, `$skipToken`). Anything outside the subset is
//! refused with 400 `BadRequest` / `InvalidQuery` naming the part, so a client never gets a
//! silently wrong answer.
//!
//! The subset (docs/simulator.md): the table `Resources` (any case), then any chain of
//! `| where COL =~ 'v'` (equal ignoring case), `| where COL == 'v'` (equal),
//! `| where COL contains 'v'` (substring ignoring case, as KQL's `contains`) and
//! `| project COL, COL, ...`, COL being one of `id, name, type, location, subscriptionId,
//! resourceGroup, properties, tags` (only the string columns in `where`). Rows are sorted by
//! `id`, as ARG does when paging; `type` and `resourceGroup` are lower-case as ARG stores them.
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::world::ArmError;

/// ARG's page size limit (learn.microsoft.com/azure/governance/resource-graph/concepts/work-with-data).
const MAX_TOP: u64 = 1000;

const COLUMNS: [&str; 8] = [
    "id",
    "name",
    "type",
    "location",
    "subscriptionId",
    "resourceGroup",
    "properties",
    "tags",
];

const STRING_COLUMNS: [&str; 6] = [
    "id",
    "name",
    "type",
    "location",
    "subscriptionId",
    "resourceGroup",
];

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

#[derive(Debug, Clone, PartialEq)]
enum Op {
    EqualIgnoreCase,
    Equal,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Where {
        column: String,
        op: Op,
        value: String,
    },
    Project(Vec<String>),
}

/// Splits on `|` outside quotes.
fn split_pipes(query: &str) -> Result<Vec<String>, ArmError> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in query.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, '|') => parts.push(std::mem::take(&mut current)),
            (None, c) => current.push(c),
        }
    }
    if quote.is_some() {
        return Err(invalid("unterminated string literal"));
    }
    parts.push(current);
    Ok(parts.into_iter().map(|p| p.trim().to_string()).collect())
}

fn parse_where(text: &str) -> Result<Stage, ArmError> {
    let rest = text.trim();
    let column: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if !STRING_COLUMNS.contains(&column.as_str()) {
        return Err(invalid(format!(
            "unsupported column in 'where {rest}': the simulator filters only on {}",
            STRING_COLUMNS.join(", ")
        )));
    }
    let rest = rest[column.len()..].trim_start();
    let (op, rest) = if let Some(r) = rest.strip_prefix("=~") {
        (Op::EqualIgnoreCase, r)
    } else if let Some(r) = rest.strip_prefix("==") {
        (Op::Equal, r)
    } else if let Some(r) = rest.strip_prefix("contains ") {
        (Op::Contains, r)
    } else {
        return Err(invalid(format!(
            "unsupported operator in 'where {text}': the simulator knows =~, == and contains"
        )));
    };
    let rest = rest.trim();
    let mut chars = rest.chars();
    let quote = chars.next();
    let value = match quote {
        Some(q @ ('\'' | '"')) if rest.len() >= 2 && rest.ends_with(q) => {
            rest[1..rest.len() - 1].to_string()
        }
        _ => {
            return Err(invalid(format!(
                "unsupported expression in 'where {text}': the simulator compares a column with one string literal"
            )))
        }
    };
    if value.contains(['\'', '"', '\\']) {
        return Err(invalid(format!(
            "unsupported expression in 'where {text}': the simulator compares a column with one string literal"
        )));
    }
    Ok(Stage::Where { column, op, value })
}

fn parse_project(text: &str) -> Result<Stage, ArmError> {
    let mut columns = Vec::new();
    for part in text.split(',') {
        let column = part.trim();
        if !COLUMNS.contains(&column) {
            return Err(invalid(format!(
                "unsupported projection '{column}': the simulator projects only {}",
                COLUMNS.join(", ")
            )));
        }
        columns.push(column.to_string());
    }
    Ok(Stage::Project(columns))
}

fn parse(query: &str) -> Result<Vec<Stage>, ArmError> {
    let parts = split_pipes(query)?;
    let table = parts.first().map(String::as_str).unwrap_or("");
    if !table.eq_ignore_ascii_case("resources") {
        return Err(invalid(format!(
            "unsupported table '{table}': the simulator serves only Resources"
        )));
    }
    let mut stages = Vec::new();
    for part in &parts[1..] {
        let (word, rest) = part.split_once(char::is_whitespace).unwrap_or((part, ""));
        match word {
            "where" => stages.push(parse_where(rest)?),
            "project" => stages.push(parse_project(rest)?),
            _ => {
                return Err(invalid(format!(
                    "unsupported operator '{part}': the simulator knows where and project"
                )))
            }
        }
    }
    Ok(stages)
}

/// One ARG row of an ARM resource.
fn row(resource: &Value) -> Value {
    let id = resource.get("id").and_then(Value::as_str).unwrap_or("");
    let segments: Vec<&str> = id.split('/').collect();
    let after = |key: &str| {
        segments
            .windows(2)
            .find(|w| w[0].eq_ignore_ascii_case(key))
            .map(|w| w[1].to_string())
            .unwrap_or_default()
    };
    let text = |key: &str| resource.get(key).and_then(Value::as_str).unwrap_or("");
    json!({
        "id": id,
        "name": text("name"),
        "type": text("type").to_ascii_lowercase(),
        "tenantId": crate::identity::TENANT_ID,
        "kind": "",
        "location": text("location").to_ascii_lowercase().replace(' ', ""),
        "resourceGroup": after("resourceGroups").to_ascii_lowercase(),
        "subscriptionId": after("subscriptions"),
        "managedBy": "",
        "sku": resource.get("sku").cloned().unwrap_or(Value::Null),
        "plan": Value::Null,
        "properties": resource.get("properties").cloned().unwrap_or(json!({})),
        "tags": resource.get("tags").cloned().unwrap_or(json!({})),
        "identity": Value::Null,
        "zones": Value::Null,
        "extendedLocation": Value::Null,
    })
}

fn matches(row: &Value, column: &str, op: &Op, value: &str) -> bool {
    let Some(actual) = row.get(column).and_then(Value::as_str) else {
        return false;
    };
    match op {
        Op::EqualIgnoreCase => actual.eq_ignore_ascii_case(value),
        Op::Equal => actual == value,
        Op::Contains => actual
            .to_ascii_lowercase()
            .contains(&value.to_ascii_lowercase()),
    }
}

/// What a skip token carries: where the next page starts, its size, and a fingerprint of the
/// query it continues.
fn token(query: &str, subscriptions: &[String], offset: u64, top: u64) -> String {
    let payload =
        json!({"query": query, "subscriptions": subscriptions, "offset": offset, "top": top});
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

/// Answers one query over `resources` (ARM objects as GET returns them).
pub(crate) fn query(body: &Value, resources: &[Value]) -> Result<Value, ArmError> {
    let text = body.get("query").and_then(Value::as_str).ok_or_else(|| {
        ArmError::bad_request("BadRequest", "The request body must have a 'query' string.")
    })?;
    if body.get("managementGroups").is_some() {
        return Err(invalid(
            "managementGroups scopes: the simulator scopes queries by subscriptions only",
        ));
    }
    let subscriptions: Vec<String> = body
        .get("subscriptions")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_ascii_lowercase))
                .collect()
        })
        .unwrap_or_default();
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
            .filter(|t| t["query"] == json!(text) && t["subscriptions"] == json!(subscriptions))
            .ok_or_else(|| {
                invalid("the $skipToken was not issued for this query and these subscriptions")
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

    let mut rows: Vec<Value> = resources
        .iter()
        .map(row)
        .filter(|r| {
            subscriptions.is_empty()
                || r["subscriptionId"]
                    .as_str()
                    .is_some_and(|s| subscriptions.contains(&s.to_ascii_lowercase()))
        })
        .collect();
    rows.sort_by_key(|r| r["id"].as_str().unwrap_or("").to_ascii_lowercase());
    for stage in &stages {
        match stage {
            Stage::Where { column, op, value } => {
                rows.retain(|r| matches(r, column, op, value));
            }
            Stage::Project(columns) => {
                rows = rows
                    .into_iter()
                    .map(|r| {
                        let mut out = Map::new();
                        for c in columns {
                            out.insert(c.clone(), r.get(c).cloned().unwrap_or(Value::Null));
                        }
                        Value::Object(out)
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
        .collect();
    let mut answer = Map::new();
    answer.insert("totalRecords".into(), json!(total));
    answer.insert("count".into(), json!(data.len()));
    answer.insert("resultTruncated".into(), json!("false"));
    answer.insert("facets".into(), json!([]));
    if end < total {
        answer.insert(
            "$skipToken".into(),
            json!(token(text, &subscriptions, end, top)),
        );
    }
    answer.insert("data".into(), Value::Array(data));
    Ok(Value::Object(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subset_parses_and_the_rest_is_named() {
        let stages =
            parse("Resources | where name contains 'a|b' | project id, name").unwrap_or_default();
        assert_eq!(stages.len(), 2);
        assert_eq!(
            stages[0],
            Stage::Where {
                column: "name".into(),
                op: Op::Contains,
                value: "a|b".into()
            }
        );
        let error = parse("resources | summarize count() by type").err();
        assert!(error.is_some_and(|e| e.details[1]["message"]
            .as_str()
            .unwrap_or("")
            .contains("summarize")));
        assert!(parse("ResourceContainers").is_err());
        assert!(parse("resources | where name =~ 'a' and type =~ 'b'").is_err());
        assert!(parse("resources | project id, sku").is_err());
    }
}
