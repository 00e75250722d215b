//! Writes of route tables and their routes, and the read-only `subnets` of a route table.

use std::collections::{BTreeSet, HashMap};

use ipnet::IpNet;
use serde_json::{json, Value};

use super::body::{
    find_child, required_location, restamp, set_state, stamp_accepted, upsert_child,
};
use super::keys::lower;
use super::prefixes::parse_prefix;
use super::{ArmError, ChildKind, Ctx, Kind, OpKind, Reply, Res, ResPath, World};
use crate::json::{name_of, obj, prop_arr, prop_ref_id, prop_str, props};

impl World {
    // ------------------------------------------------------------------ writes: route tables

    fn validate_route(&self, route_id: &str, route: &mut Value) -> Result<String, ArmError> {
        let prefix = prop_str(route, "addressPrefix")
            .map(str::to_string)
            .ok_or_else(|| {
                ArmError::bad_request(
                    "InvalidRequestFormat",
                    format!("Cannot parse the request: route {route_id} has no addressPrefix."),
                )
            })?;
        let hop = prop_str(route, "nextHopType").ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRequestFormat",
                format!("Cannot parse the request: route {route_id} has no nextHopType."),
            )
        })?;
        const HOPS: [&str; 6] = [
            "VirtualNetworkGateway",
            "VnetLocal",
            "Internet",
            "VirtualAppliance",
            "None",
            "VirtualApplianceEcmp",
        ];
        let Some(hop) = HOPS.iter().find(|h| h.eq_ignore_ascii_case(hop)).copied() else {
            return Err(ArmError::bad_request(
                "InvalidRequestFormat",
                format!(
                    "Cannot parse the request: '{hop}' is not a valid nextHopType ({}).",
                    HOPS.join(", ")
                ),
            ));
        };
        let net = match parse_prefix(&prefix) {
            Some((net, true)) => Some(net),
            Some((net, false)) => {
                return Err(ArmError::bad_request(
                    &self.strict.invalid_cidr_code,
                    format!("Route {route_id} has an invalid address prefix {prefix}: host bits are set. Did you mean {}?", net.trunc()),
                ))
            }
            None => {
                // Service tags (e.g. `AzureCloud`) are valid address prefixes.
                let tag_like = prefix.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
                if !tag_like {
                    return Err(ArmError::bad_request(
                        "InvalidAddressPrefixFormat",
                        format!("Route {route_id} has an invalid address prefix {prefix}."),
                    ));
                }
                None
            }
        };
        let has_ip = prop_str(route, "nextHopIpAddress").is_some_and(|s| !s.is_empty());
        if hop == "VirtualAppliance" && !has_ip {
            return Err(ArmError::bad_request(
                "NextHopIpAddressRequired",
                format!("Route {route_id} with next hop type VirtualAppliance must have a nextHopIpAddress."),
            ));
        }
        if hop != "VirtualAppliance" && hop != "VirtualApplianceEcmp" && has_ip {
            return Err(ArmError::bad_request(
                "NextHopIpAddressNotAllowed",
                format!("Route {route_id} has next hop type {hop}; nextHopIpAddress can only be specified with next hop type VirtualAppliance."),
            ));
        }
        if hop == "VirtualNetworkGateway"
            && self.strict.reject_ipv6_gateway_routes
            && matches!(net, Some(IpNet::V6(_)))
        {
            return Err(ArmError::bad_request(
                "InvalidRouteNextHopTypeForIPv6",
                format!("Route {route_id} with IPv6 address prefix {prefix} cannot have next hop type VirtualNetworkGateway."),
            ));
        }
        props(route).insert("nextHopType".into(), json!(hop));
        Ok(prefix)
    }

    fn finish_route(path: &ResPath, name: &str, route: &mut Value) {
        let id = format!("{}/routes/{name}", path.parent_id());
        let top = obj(route);
        top.insert("name".into(), json!(name));
        top.insert("id".into(), json!(id));
        top.insert("type".into(), json!("Microsoft.Network/routeTables/routes"));
        let p = props(route);
        p.insert("provisioningState".into(), json!("Updating"));
        p.entry("hasBgpOverride").or_insert(json!(false));
    }

    fn check_route_set(&self, path: &ResPath, routes: &[Value]) -> Result<(), ArmError> {
        if routes.len() > self.strict.route_limit {
            return Err(ArmError::bad_request(
                "RouteTableRouteLimitReached",
                format!(
                    "Route table {} cannot have more than {} routes.",
                    path.parent_id(),
                    self.strict.route_limit
                ),
            ));
        }
        let mut seen: HashMap<String, &str> = HashMap::new();
        for r in routes {
            let prefix = prop_str(r, "addressPrefix")
                .unwrap_or("")
                .to_ascii_lowercase();
            let name = r.get("id").and_then(Value::as_str).unwrap_or("");
            if let Some(first) = seen.insert(prefix, name) {
                return Err(ArmError::bad_request(
                    "RouteConflict",
                    format!("Route: {name} conflicts with Route: {first}. Routes cannot have the same AddressPrefix."),
                ));
            }
        }
        Ok(())
    }

    /// PUT of a route table (replaces the inline routes).
    pub(crate) fn put_route_table(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = required_location(&body)?;
        let existing = self.tables.get(&key).cloned();
        let created = existing.is_none();
        let mut routes: Vec<Value> = prop_arr(&body, "routes").to_vec();
        for route in routes.iter_mut() {
            let name = name_of(route).to_string();
            if name.is_empty() {
                return Err(ArmError::bad_request(
                    "InvalidRequestFormat",
                    "Cannot parse the request: a route has no name.",
                ));
            }
            let id = format!("{}/routes/{name}", path.parent_id());
            self.validate_route(&id, route)?;
            Self::finish_route(path, &name, route);
        }
        self.check_route_set(path, &routes)?;
        stamp_accepted(
            &mut body,
            path,
            "Microsoft.Network/routeTables",
            &location,
            existing.as_ref().map(|e| &e.body),
        );
        {
            let p = props(&mut body);
            p.entry("disableBgpRoutePropagation")
                .or_insert(json!(false));
            p.insert("routes".into(), Value::Array(routes));
            p.remove("subnets");
        }
        restamp(&mut body, Kind::RouteTable);
        self.tables.insert(key.clone(), Res { body });
        self.rebuild_table_subnets(&BTreeSet::from([key]));
        self.accept_put(
            ctx,
            path,
            "PutRouteTableOperation",
            superseded,
            created,
            self.latency.lro,
        )
    }

    /// PUT of one route.
    pub(crate) fn put_route(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(table) = self.tables.get(&key).cloned() else {
            return Err(Self::not_found_parent(path));
        };
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        let superseded = self.check_lock(ctx, &key, &lower(&path.id()), OpKind::Put)?;
        self.check_if_match_child(ctx, path)?;
        self.validate_route(&path.id(), &mut body)?;
        Self::finish_route(path, &name, &mut body);
        let created = find_child(&table.body, ChildKind::Route, &name).is_none();
        let mut all: Vec<Value> = prop_arr(&table.body, "routes")
            .iter()
            .filter(|r| !name_of(r).eq_ignore_ascii_case(&name))
            .cloned()
            .collect();
        all.push(body.clone());
        self.check_route_set(path, &all)?;
        if let Some(res) = self.tables.get_mut(&key) {
            upsert_child(&mut res.body, ChildKind::Route, body);
            set_state(&mut res.body, "Updating");
            restamp(&mut res.body, Kind::RouteTable);
        }
        self.accept_put(
            ctx,
            path,
            "PutRouteOperation",
            superseded,
            created,
            self.latency.lro,
        )
    }

    /// Recomputes the read-only `subnets` of the given route tables.
    pub(super) fn rebuild_table_subnets(&mut self, table_keys: &BTreeSet<String>) {
        for table_key in table_keys {
            let mut ids = Vec::new();
            for vnet in self.vnets.values() {
                for s in prop_arr(&vnet.body, "subnets") {
                    if prop_ref_id(s, "routeTable").is_some_and(|id| lower(id) == *table_key) {
                        if let Some(id) = s.get("id").and_then(Value::as_str) {
                            ids.push(json!({"id": id}));
                        }
                    }
                }
            }
            if let Some(table) = self.tables.get_mut(table_key) {
                let p = props(&mut table.body);
                let current = p.get("subnets").cloned();
                let wanted = (!ids.is_empty()).then(|| Value::Array(ids));
                if current != wanted {
                    match wanted {
                        Some(v) => p.insert("subnets".into(), v),
                        None => p.remove("subnets"),
                    };
                    restamp(&mut table.body, Kind::RouteTable);
                }
            }
        }
    }
}
