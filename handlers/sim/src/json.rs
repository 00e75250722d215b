//! Small helpers over `serde_json::Value` that never panic: the simulator keeps ARM objects as
//! JSON, exactly as Azure returns them, and edits them in place.
use serde_json::{Map, Value};

/// The object in `value`, turning `value` into an empty object first if it is not one.
pub(crate) fn obj(value: &mut Value) -> &mut Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => {
            *other = Value::Object(Map::new());
            obj(other)
        }
    }
}

/// The object under `key` in `value`, created when missing or not an object.
pub(crate) fn child_obj<'a>(value: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    obj(obj(value).entry(key.to_string()).or_insert(Value::Null))
}

/// The array in `value`, turning `value` into an empty array first if it is not one.
pub(crate) fn arr(value: &mut Value) -> &mut Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => {
            *other = Value::Array(Vec::new());
            arr(other)
        }
    }
}

/// The array `value.properties.<key>`, created when missing.
pub(crate) fn prop_arr_mut<'a>(value: &'a mut Value, key: &str) -> &'a mut Vec<Value> {
    arr(props(value).entry(key.to_string()).or_insert(Value::Null))
}

/// `value.properties`, created when missing.
pub(crate) fn props(value: &mut Value) -> &mut Map<String, Value> {
    child_obj(value, "properties")
}

/// `value.properties.<key>` as a string.
pub(crate) fn prop_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get("properties")?.get(key)?.as_str()
}

/// `value.properties.<key>` as a bool, false when absent.
pub(crate) fn prop_bool(value: &Value, key: &str) -> bool {
    value
        .get("properties")
        .and_then(|p| p.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `value.properties.<key>.id`.
pub(crate) fn prop_ref_id<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get("properties")?.get(key)?.get("id")?.as_str()
}

/// `value.properties.<key>` as an array (empty when absent).
pub(crate) fn prop_arr<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get("properties")
        .and_then(|p| p.get(key))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The strings of `value.properties.<key>.addressPrefixes`.
pub(crate) fn address_prefixes(value: &Value, key: &str) -> Vec<String> {
    value
        .get("properties")
        .and_then(|p| p.get(key))
        .and_then(|s| s.get("addressPrefixes"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `value.name` as a string.
pub(crate) fn name_of(value: &Value) -> &str {
    value.get("name").and_then(Value::as_str).unwrap_or("")
}

/// Compares the JSON type of two values (for shape checks).
pub fn same_type(a: &Value, b: &Value) -> bool {
    matches!(
        (a, b),
        (Value::Null, Value::Null)
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Number(_), Value::Number(_))
            | (Value::String(_), Value::String(_))
            | (Value::Array(_), Value::Array(_))
            | (Value::Object(_), Value::Object(_))
    )
}

/// Every key path of `expected` exists in `actual` with the same JSON type (arrays compared by
/// their first element). Returns the paths that differ; empty means `actual` has the shape.
pub fn shape_mismatches(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_shape("$", expected, actual, &mut out);
    out
}

fn walk_shape(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    if !same_type(expected, actual) {
        out.push(format!(
            "{path}: expected {} got {}",
            kind(expected),
            kind(actual)
        ));
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                match a.get(key) {
                    Some(av) => walk_shape(&format!("{path}.{key}"), ev, av, out),
                    None => out.push(format!("{path}.{key}: missing")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if let Some(first) = e.first() {
                match a.first() {
                    Some(af) => walk_shape(&format!("{path}[0]"), first, af, out),
                    None => out.push(format!("{path}: expected a non-empty array")),
                }
            }
        }
        _ => {}
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
