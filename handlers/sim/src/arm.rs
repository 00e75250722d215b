//! The ARM front end of the Network RP: maps paths (case-insensitively) to the estate's
//! operations, parses bodies, pages lists with `nextLink`, and serves the operation status
//! resources. Also serves Network Watcher's next hop (`next_hop.rs`), a NIC's effective routes
//! (`effective.rs`), a minimal Azure Resource Graph (`graph.rs`), the tenant's subscriptions
//! (`tenancy.rs`) and its management groups (`management_groups.rs`).
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::http::query_value;
use crate::scheduler::flush_outbox;
use crate::shared::Shared;
use crate::world::{ArmError, ChildKind, Ctx, Kind, Reply, ResPath, World};

fn kind_of(segment: &str) -> Option<Kind> {
    match segment {
        "virtualnetworks" => Some(Kind::Vnet),
        "routetables" => Some(Kind::RouteTable),
        "virtualnetworkgateways" => Some(Kind::Gateway),
        "networkinterfaces" => Some(Kind::Nic),
        _ => None,
    }
}

fn child_kind_of(kind: Kind, segment: &str) -> Option<ChildKind> {
    match (kind, segment) {
        (Kind::Vnet, "subnets") => Some(ChildKind::Subnet),
        (Kind::Vnet, "virtualnetworkpeerings") => Some(ChildKind::Peering),
        (Kind::RouteTable, "routes") => Some(ChildKind::Route),
        _ => None,
    }
}

fn invalid_type(path: &str) -> ArmError {
    ArmError::new(
        404,
        "InvalidResourceType",
        format!("The resource type could not be found in the namespace 'Microsoft.Network' for path '{path}'."),
    )
}

fn unavailable() -> ArmError {
    ArmError::new(
        500,
        "InternalServerError",
        "The simulator state is unavailable.",
    )
}

/// Every subscription of the tenant: the estate's and the directory's.
fn all_subscriptions(shared: &Shared, world: &World) -> Result<Vec<String>, ArmError> {
    let directory = shared.directory.lock().map_err(|_| unavailable())?;
    Ok(crate::tenancy::all_subscriptions_of(
        world.resource_ids(),
        &directory,
    ))
}

fn method_not_allowed(method: &str) -> ArmError {
    ArmError::new(
        405,
        "MethodNotAllowed",
        format!("The requested method '{method}' is not allowed for this resource."),
    )
}

fn parse_body(body: &Bytes) -> Result<Value, ArmError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ArmError::bad_request(
            "InvalidRequestFormat",
            format!("Cannot parse the request: {e}."),
        )
    })?;
    if !value.is_object() {
        return Err(ArmError::bad_request(
            "InvalidRequestFormat",
            "Cannot parse the request: the body must be a JSON object.",
        ));
    }
    Ok(value)
}

/// One page of `items`, with a `nextLink` carrying `api-version` and a skip token.
fn page(
    items: Vec<&Value>,
    ctx: &Ctx,
    path: &str,
    query: &[(String, String)],
    page_size: usize,
) -> Reply {
    let skip: usize = query_value(query, "$skiptoken")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let size = page_size.max(1);
    let end = (skip + size).min(items.len());
    let value: Vec<Value> = items
        .get(skip.min(items.len())..end)
        .map(|slice| slice.iter().map(|v| (*v).clone()).collect())
        .unwrap_or_default();
    let mut body = json!({"value": value});
    if end < items.len() {
        if let Some(map) = body.as_object_mut() {
            map.insert(
                "nextLink".into(),
                json!(format!(
                    "{}{path}?api-version={}&$skiptoken={end}",
                    ctx.base_url, ctx.api_version
                )),
            );
        }
    }
    Reply::ok(body)
}

/// Handles one authenticated, versioned, unthrottled ARM request.
pub(crate) fn handle(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    path: &str,
    query: &[(String, String)],
    body: &Bytes,
) -> Result<Reply, ArmError> {
    let method = ctx.method.as_str();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    let mut world = shared.world.lock().map_err(|_| {
        ArmError::new(
            500,
            "InternalServerError",
            "The simulator state is unavailable.",
        )
    })?;
    let page_size = shared.page_size;
    // Whatever the scheduler's timers did, an operation is done from its due time on.
    world.complete_due(ctx.now);
    flush_outbox(shared, &mut world);

    match l.as_slice() {
        ["subscriptions"] | ["subscriptions", _] | ["tenants"] => {
            let all = all_subscriptions(shared, &world)?;
            drop(world);
            crate::tenancy::handle(method, &segments, &all)
        }
        ["providers", "microsoft.management", "managementgroups", rest @ ..] => {
            // Below a group other than the root, every subscription is a declared one: the
            // estate need not be walked for each page.
            let root = rest
                .first()
                .is_none_or(|id| id.eq_ignore_ascii_case(crate::identity::TENANT_ID));
            let all = if root {
                all_subscriptions(shared, &world)?
            } else {
                let directory = shared.directory.lock().map_err(|_| unavailable())?;
                directory.declared().to_vec()
            };
            drop(world);
            let directory = shared.directory.lock().map_err(|_| unavailable())?;
            directory.handle(
                method,
                &segments[3..],
                query,
                &all,
                &ctx.base_url,
                page_size,
            )
        }
        ["subscriptions", _, "providers", "microsoft.network", list] => {
            if method != "GET" {
                return Err(method_not_allowed(method));
            }
            let kind = match *list {
                "virtualnetworks" => Kind::Vnet,
                "routetables" => Kind::RouteTable,
                "networkinterfaces" => Kind::Nic,
                _ => return Err(invalid_type(path)),
            };
            let items = world.list(kind, segments[1], None);
            Ok(page(items, ctx, path, query, page_size))
        }
        ["subscriptions", _, "providers", "microsoft.network", "locations", _, "operations", id] => {
            let op_id = segments[7];
            let _ = id;
            world.op_status(op_id).map(Reply::ok).ok_or_else(|| {
                ArmError::new(404, "NotFound", format!("Operation {op_id} not found."))
            })
        }
        ["subscriptions", _, "providers", "microsoft.network", "locations", _, "operationresults", _] =>
        {
            let op_id = segments[7];
            world.op_result(op_id).unwrap_or_else(|| {
                Err(ArmError::new(
                    404,
                    "NotFound",
                    format!("Operation {op_id} not found."),
                ))
            })
        }
        ["providers", "microsoft.resourcegraph", "resources"] => {
            if method != "POST" {
                return Err(method_not_allowed(method));
            }
            let request = parse_body(body)?;
            let peerings = world.strict.graph_peerings;
            let directory_now = shared.directory.lock().map_err(|_| unavailable())?;
            let (resources, directory_then) = shared
                .graph
                .lock()
                .map_err(|_| unavailable())?
                .resources(ctx.now, || world.graph_resources(), &directory_now);
            let directory = directory_then.as_ref().unwrap_or(&directory_now);
            let all = crate::tenancy::all_subscriptions_of(world.resource_ids(), directory);
            // The query runs on copies: other requests need not wait for it.
            drop(world);
            crate::graph::query(&request, resources, peerings, |groups| {
                directory.subscriptions_under(groups, &all)
            })
            .map(Reply::ok)
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.network", rest @ ..] => {
            let (sub, rg) = (segments[1].to_string(), segments[3].to_string());
            let raw = &segments[6..];
            let mut reply = handle_rg(
                &mut world,
                shared,
                ctx,
                path,
                query,
                body,
                sub.clone(),
                rg,
                rest,
                raw,
                page_size,
            );
            if let Ok(reply) = &mut reply {
                if !reply.scheduled.is_empty() {
                    reply.operations_in_flight = Some(world.operations_in_flight(&sub));
                }
            }
            reply
        }
        _ => Err(invalid_type(path)),
    }
}

#[allow(clippy::too_many_arguments)]
fn handle_rg(
    world: &mut World,
    shared: &Shared,
    ctx: &Ctx,
    path: &str,
    query: &[(String, String)],
    body: &Bytes,
    sub: String,
    rg: String,
    rest: &[&str],
    raw: &[&str],
    page_size: usize,
) -> Result<Reply, ArmError> {
    let method = ctx.method.as_str();
    if let ["networkwatchers", _, "nexthop"] = rest {
        if method != "POST" {
            return Err(method_not_allowed(method));
        }
        return next_hop(world, &parse_body(body)?);
    }
    if let ["networkinterfaces", _, "effectiveroutetable"] = rest {
        if method != "POST" {
            return Err(method_not_allowed(method));
        }
        let nic_path = ResPath {
            sub,
            rg,
            kind: Kind::Nic,
            name: raw[1].to_string(),
            child: None,
        };
        return effective_route_table(world, ctx, &nic_path);
    }
    if let ["networkinterfaces", _, "operationresults", _] = rest {
        if method != "GET" {
            return Err(method_not_allowed(method));
        }
        let op_id = raw[3];
        return world.route_result(op_id, ctx.now).ok_or_else(|| {
            ArmError::new(404, "NotFound", format!("Operation {op_id} not found."))
        });
    }
    if let [type_segment, _, "providers", "microsoft.resources", "tags", "default"] = rest {
        let kind = kind_of(type_segment).ok_or_else(|| invalid_type(path))?;
        let res_path = ResPath {
            sub,
            rg,
            kind,
            name: raw[1].to_string(),
            child: None,
        };
        let reply = match method {
            "GET" => world.tags_resource(ctx, &res_path, None),
            "PUT" | "PATCH" => world.tags_resource(ctx, &res_path, Some(&parse_body(body)?)),
            _ => Err(method_not_allowed(method)),
        };
        flush_outbox(shared, world);
        return reply;
    }
    let Some(type_segment) = rest.first() else {
        return Err(invalid_type(path));
    };
    let kind = kind_of(type_segment).ok_or_else(|| invalid_type(path))?;
    match rest.len() {
        1 => {
            if method != "GET" {
                return Err(method_not_allowed(method));
            }
            let items = world.list(kind, &sub, Some(&rg));
            Ok(page(items, ctx, path, query, page_size))
        }
        2 => {
            let res_path = ResPath {
                sub,
                rg,
                kind,
                name: raw[1].to_string(),
                child: None,
            };
            match method {
                "GET" => world.get(&res_path).map(Reply::ok),
                "PUT" => {
                    let body = parse_body(body)?;
                    match kind {
                        Kind::Vnet => world.put_vnet(ctx, &res_path, body),
                        Kind::RouteTable => world.put_route_table(ctx, &res_path, body),
                        Kind::Gateway => world.put_gateway(ctx, &res_path, body),
                        Kind::Nic => world.put_nic(ctx, &res_path, body),
                    }
                }
                "PATCH" => {
                    let body = parse_body(body)?;
                    let reply = world.patch_tags(ctx, &res_path, &body);
                    flush_outbox(shared, world);
                    reply
                }
                "DELETE" => world.delete(ctx, &res_path),
                _ => Err(method_not_allowed(method)),
            }
        }
        3 | 4 => {
            let child = child_kind_of(kind, rest[2]).ok_or_else(|| invalid_type(path))?;
            let mut res_path = ResPath {
                sub,
                rg,
                kind,
                name: raw[1].to_string(),
                child: None,
            };
            if rest.len() == 3 {
                if method != "GET" {
                    return Err(method_not_allowed(method));
                }
                let items = world.list_children(&res_path, child)?;
                return Ok(page(items, ctx, path, query, page_size));
            }
            res_path.child = Some((child, raw[3].to_string()));
            match method {
                "GET" => world.get(&res_path).map(Reply::ok),
                "PUT" => {
                    let body = parse_body(body)?;
                    match child {
                        ChildKind::Subnet => world.put_subnet(ctx, &res_path, body),
                        ChildKind::Peering => world.put_peering(ctx, &res_path, body),
                        ChildKind::Route => world.put_route(ctx, &res_path, body),
                    }
                }
                "DELETE" => world.delete(ctx, &res_path),
                _ => Err(method_not_allowed(method)),
            }
        }
        _ => Err(invalid_type(path)),
    }
}

/// `POST …/networkInterfaces/{nic}/effectiveRouteTable`: as the Network RP does, 202 with a
/// `Location` (`…/networkInterfaces/{nic}/operationResults/{id}`) that answers 202 until the
/// operation's time has come, then 200 with the routes. They are computed now, from the estate
/// as it is when asked.
fn effective_route_table(
    world: &mut World,
    ctx: &Ctx,
    nic_path: &ResPath,
) -> Result<Reply, ArmError> {
    let nic = world.get(nic_path)?;
    let routes = crate::effective::effective_routes(&nic, &world.snapshot())?;
    let due = ctx.now + world.latency.lro;
    world.store_route_result(&ctx.request_id, due, routes);
    let mut reply = Reply::empty(202);
    reply.headers.push((
        "Location".to_string(),
        format!(
            "{}{}/operationResults/{}?api-version={}",
            ctx.base_url,
            nic_path.id(),
            ctx.request_id,
            ctx.api_version
        ),
    ));
    reply.headers.push((
        "Retry-After".to_string(),
        world.latency.retry_after_secs.to_string(),
    ));
    Ok(reply)
}

/// Network Watcher next hop, from the effective routes of the source's subnet (`next_hop.rs`).
fn next_hop(world: &World, body: &Value) -> Result<Reply, ArmError> {
    crate::next_hop::next_hop(&world.snapshot(), body).map(Reply::ok)
}
