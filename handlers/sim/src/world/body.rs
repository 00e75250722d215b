//! Helpers on the stored ARM JSON bodies: new etags and guids, provisioning states, the
//! envelope key order, and the children embedded in a parent.

use serde_json::{json, Value};

use super::error::ArmError;
use super::path::{ChildKind, Kind, ResPath};
use crate::json::{name_of, obj, prop_arr, prop_arr_mut, prop_str, props};

fn new_etag() -> String {
    format!("W/\"{}\"", uuid::Uuid::new_v4())
}

pub(super) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(super) fn set_state(value: &mut Value, state: &str) {
    props(value).insert("provisioningState".into(), json!(state));
}

/// A new weak etag for a resource, shared by its embedded children (a VNet GET shows one etag on the VNet and its inline children: REST API examples VirtualNetworkGet.json).
pub(super) fn restamp(body: &mut Value, kind: Kind) {
    let etag = new_etag();
    obj(body).insert("etag".into(), json!(etag));
    canonical_order(body);
    let arrays: &[&str] = match kind {
        Kind::Vnet => &["subnets", "virtualNetworkPeerings"],
        Kind::RouteTable => &["routes"],
        Kind::Gateway | Kind::Nic => &["ipConfigurations"],
    };
    for array in arrays {
        if let Some(Value::Array(items)) = obj(body)
            .get_mut("properties")
            .and_then(|p| p.get_mut(*array))
        {
            for item in items.iter_mut() {
                obj(item).insert("etag".into(), json!(etag));
                canonical_order(item);
            }
        }
    }
}

/// Puts the envelope keys first, in ARM's order (name, id, etag, type, location, tags, ...),
/// for resources and their embedded children.
fn canonical_order(body: &mut Value) {
    const FIRST: [&str; 6] = ["name", "id", "etag", "type", "location", "tags"];
    let map = obj(body);
    let mut old = std::mem::take(map);
    for key in FIRST {
        if let Some(value) = old.shift_remove(key) {
            map.insert(key.to_string(), value);
        }
    }
    map.extend(old);
}

pub(super) fn find_child<'a>(parent: &'a Value, kind: ChildKind, name: &str) -> Option<&'a Value> {
    prop_arr(parent, kind.parent_array())
        .iter()
        .find(|c| name_of(c).eq_ignore_ascii_case(name))
}

pub(super) fn find_child_mut<'a>(
    parent: &'a mut Value,
    kind: ChildKind,
    name: &str,
) -> Option<&'a mut Value> {
    prop_arr_mut(parent, kind.parent_array())
        .iter_mut()
        .find(|c| name_of(c).eq_ignore_ascii_case(name))
}

pub(super) fn upsert_child(parent: &mut Value, kind: ChildKind, child: Value) {
    let items = prop_arr_mut(parent, kind.parent_array());
    let name = name_of(&child).to_string();
    match items
        .iter_mut()
        .find(|c| name_of(c).eq_ignore_ascii_case(&name))
    {
        Some(slot) => *slot = child,
        None => items.push(child),
    }
}

/// The `location` a PUT of a tracked resource must carry.
pub(super) fn required_location(body: &Value) -> Result<String, ArmError> {
    body.get("location")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ArmError::bad_request(
                "LocationRequired",
                "The location property is required for this definition.",
            )
        })
}

/// Stamps what ARM sets on a tracked resource it accepts: its name, id, type and location, and in
/// its properties `provisioningState: Updating` and its `resourceGuid` (kept from `existing`, or
/// new).
pub(super) fn stamp_accepted(
    body: &mut Value,
    path: &ResPath,
    resource_type: &str,
    location: &str,
    existing: Option<&Value>,
) {
    let guid = existing
        .and_then(|e| prop_str(e, "resourceGuid").map(str::to_string))
        .unwrap_or_else(new_guid);
    let top = obj(body);
    top.insert("name".into(), json!(path.name));
    top.insert("id".into(), json!(path.id()));
    top.insert("type".into(), json!(resource_type));
    top.insert("location".into(), json!(location));
    let p = props(body);
    p.insert("provisioningState".into(), json!("Updating"));
    p.insert("resourceGuid".into(), json!(guid));
}
