//! Writes of virtual networks and their subnets, and the removal of a virtual network.

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::body::{
    find_child, required_location, restamp, set_state, stamp_accepted, upsert_child,
};
use super::keys::lower;
use super::prefixes::{nets, overlap_between, overlaps, parse_prefix};
use super::{ArmError, ChildKind, Ctx, Kind, OpKind, Reply, Res, ResPath, World};
use crate::json::{
    address_prefixes, name_of, obj, prop_arr, prop_arr_mut, prop_ref_id, prop_str, props,
};

impl World {
    // ------------------------------------------------------------------ writes: VNets

    /// PUT of a virtual network.
    pub(crate) fn put_vnet(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        mut body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let superseded = self.check_lock(ctx, &key, &key, OpKind::Put)?;
        self.check_if_match(ctx, path)?;
        let location = required_location(&body)?;
        let prefixes = address_prefixes(&body, "addressSpace");
        let prefix_nets = self.validate_prefixes(&prefixes)?;
        if prefix_nets.is_empty() {
            return Err(ArmError::bad_request(
                "InvalidAddressSpace",
                format!(
                    "Virtual network {} must have at least one address prefix in addressSpace.",
                    path.id()
                ),
            ));
        }
        for (i, a) in prefix_nets.iter().enumerate() {
            for b in &prefix_nets[i + 1..] {
                if overlaps(a, b) {
                    return Err(ArmError::bad_request(
                        "NetcfgInvalidAddressPrefixes",
                        format!(
                            "Address prefixes {a} and {b} of virtual network {} overlap.",
                            path.id()
                        ),
                    ));
                }
            }
        }
        let existing = self.vnets.get(&key).cloned();
        let created = existing.is_none();

        // Subnets: given → replace the set; omitted → kept (api-version >= 2023-09-01: a PUT without `subnets` keeps them, Virtual Networks - Create Or Update).
        let given_subnets = body
            .get("properties")
            .and_then(|p| p.get("subnets"))
            .and_then(Value::as_array)
            .cloned();
        let old_subnets: Vec<Value> = existing
            .as_ref()
            .map(|e| prop_arr(&e.body, "subnets").to_vec())
            .unwrap_or_default();
        let keep_omitted = ctx.api_version.as_str() >= "2023-09-01";
        let new_subnet_bodies: Vec<Value> = match given_subnets {
            Some(list) => list,
            None if keep_omitted => old_subnets.clone(),
            None => Vec::new(),
        };
        let mut subnets = Vec::new();
        for given in new_subnet_bodies {
            let name = name_of(&given).to_string();
            if name.is_empty() {
                return Err(ArmError::bad_request(
                    "InvalidRequestFormat",
                    "Cannot parse the request: a subnet has no name.",
                ));
            }
            let old = old_subnets
                .iter()
                .find(|s| name_of(s).eq_ignore_ascii_case(&name));
            let sub_path = ResPath {
                child: Some((ChildKind::Subnet, name.clone())),
                ..path.clone()
            };
            subnets.push(self.build_subnet(&sub_path, given, old, &prefix_nets)?);
        }
        check_subnet_overlaps(&subnets)?;
        for old in &old_subnets {
            if !subnets
                .iter()
                .any(|s| name_of(s).eq_ignore_ascii_case(name_of(old)))
            {
                check_subnet_deletable(old)?;
            }
        }
        // Peered VNets must not overlap the new space.
        if let Some(existing) = &existing {
            for peering in prop_arr(&existing.body, "virtualNetworkPeerings") {
                let Some(remote) = prop_ref_id(peering, "remoteVirtualNetwork") else {
                    continue;
                };
                if let Some(remote_vnet) = self.vnets.get(&lower(remote)) {
                    let remote_prefixes = address_prefixes(&remote_vnet.body, "addressSpace");
                    if let Some(overlap) = overlap_between(&prefixes, &remote_prefixes) {
                        return Err(ArmError::bad_request(
                            "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
                            format!(
                                "Cannot update virtual network {}. Its address space overlaps with address space of virtual network {} already peered with it. Overlapping address prefixes: {overlap}. For more information please refer to https://aka.ms/VnetPeeringInfo",
                                path.id(),
                                remote
                            ),
                        ));
                    }
                }
            }
        }

        // Build the stored body: caller's body, server fields, existing peerings kept.
        let peerings: Vec<Value> = existing
            .as_ref()
            .map(|e| prop_arr(&e.body, "virtualNetworkPeerings").to_vec())
            .unwrap_or_default();
        stamp_accepted(
            &mut body,
            path,
            "Microsoft.Network/virtualNetworks",
            &location,
            existing.as_ref().map(|e| &e.body),
        );
        {
            let p = props(&mut body);
            p.entry("dhcpOptions").or_insert(json!({"dnsServers": []}));
            p.entry("enableDdosProtection").or_insert(json!(false));
            p.insert("subnets".into(), Value::Array(subnets));
            p.insert("virtualNetworkPeerings".into(), Value::Array(peerings));
        }
        for subnet in prop_arr_mut(&mut body, "subnets").iter_mut() {
            set_state(subnet, "Updating");
        }
        restamp(&mut body, Kind::Vnet);
        let old_tables: BTreeSet<String> = old_subnets
            .iter()
            .filter_map(|s| prop_ref_id(s, "routeTable").map(lower))
            .collect();
        self.vnets.insert(key.clone(), Res { body });
        let mut tables = old_tables;
        if let Some(v) = self.vnets.get(&key) {
            tables.extend(
                prop_arr(&v.body, "subnets")
                    .iter()
                    .filter_map(|s| prop_ref_id(s, "routeTable").map(lower)),
            );
        }
        self.rebuild_table_subnets(&tables);
        self.refresh_related(&key);
        self.accept_put(
            ctx,
            path,
            "PutVirtualNetworkOperation",
            superseded,
            created,
            self.latency.lro,
        )
    }

    fn validate_prefixes(&self, prefixes: &[String]) -> Result<Vec<IpNet>, ArmError> {
        let mut out = Vec::new();
        for prefix in prefixes {
            match parse_prefix(prefix) {
                Some((net, true)) => out.push(net),
                Some((net, false)) => {
                    return Err(ArmError::bad_request(
                        &self.strict.invalid_cidr_code,
                        format!(
                            "{prefix} is not a valid CIDR: its host bits are set. Did you mean {}?",
                            net.trunc()
                        ),
                    ))
                }
                None => {
                    return Err(ArmError::bad_request(
                        "InvalidAddressPrefixFormat",
                        format!("Address prefix {prefix} has an invalid format."),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// Builds a stored subnet from a PUT body: the whole subnet is replaced; only the read-only
    /// fields owned by other resources (ip configurations, links) are kept.
    fn build_subnet(
        &self,
        path: &ResPath,
        mut given: Value,
        old: Option<&Value>,
        vnet_space: &[IpNet],
    ) -> Result<Value, ArmError> {
        let mut prefixes: Vec<String> = Vec::new();
        if let Some(p) = prop_str(&given, "addressPrefix") {
            prefixes.push(p.to_string());
        }
        prefixes.extend(
            prop_arr(&given, "addressPrefixes")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
        if prefixes.is_empty() {
            return Err(ArmError::bad_request(
                "InvalidRequestFormat",
                format!(
                    "Cannot parse the request: subnet {} has no addressPrefix.",
                    path.id()
                ),
            ));
        }
        for net in self.validate_prefixes(&prefixes)? {
            let inside = vnet_space.iter().any(|space| space.contains(&net));
            if !inside {
                return Err(ArmError::bad_request(
                    "NetcfgSubnetRangeOutsideVnet",
                    format!(
                        "Subnet '{}' is not valid because its IP address range is outside the IP address range of virtual network '{}'.",
                        path.child.as_ref().map(|c| c.1.as_str()).unwrap_or(""),
                        path.name
                    ),
                ));
            }
        }
        if let Some(table_id) = prop_ref_id(&given, "routeTable") {
            let table_key = lower(table_id);
            if !self.tables.contains_key(&table_key) {
                return Err(ArmError::bad_request(
                    "InvalidResourceReference",
                    format!("Resource {table_id} referenced by resource {} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.", path.id()),
                ));
            }
            self.check_referenced(&table_key, table_id, &path.id())?;
        }
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        {
            let top = obj(&mut given);
            top.insert("name".into(), json!(name));
            top.insert("id".into(), json!(path.id()));
            top.insert(
                "type".into(),
                json!("Microsoft.Network/virtualNetworks/subnets"),
            );
        }
        let p = props(&mut given);
        p.insert("provisioningState".into(), json!("Updating"));
        p.remove("ipConfigurations");
        p.remove("serviceAssociationLinks");
        p.remove("resourceNavigationLinks");
        if let Some(old) = old {
            for key in [
                "ipConfigurations",
                "serviceAssociationLinks",
                "resourceNavigationLinks",
            ] {
                if let Some(v) = old.get("properties").and_then(|p| p.get(key)) {
                    p.insert(key.into(), v.clone());
                }
            }
        }
        // A subnet held by a service keeps the delegation that service needs.
        if let Some(old) = old {
            for link in prop_arr(old, "serviceAssociationLinks") {
                let service = prop_str(link, "linkedResourceType").unwrap_or("");
                let delegated = prop_arr(&given, "delegations").iter().any(|d| {
                    prop_str(d, "serviceName").is_some_and(|s| s.eq_ignore_ascii_case(service))
                });
                if !service.is_empty() && !delegated {
                    return Err(ArmError::bad_request(
                        "SubnetMissingRequiredDelegation",
                        format!("Subnet {} requires any of the following delegation(s) [{service}] to reference service association link.", path.id()),
                    ));
                }
            }
        }
        Ok(given)
    }

    /// PUT of a subnet: replaces the whole subnet.
    pub(crate) fn put_subnet(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(vnet) = self.vnets.get(&key).cloned() else {
            return Err(Self::not_found_parent(path));
        };
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        let superseded = self.check_lock(ctx, &key, &lower(&path.id()), OpKind::Put)?;
        self.check_if_match_child(ctx, path)?;
        let space = nets(&address_prefixes(&vnet.body, "addressSpace"));
        let old = find_child(&vnet.body, ChildKind::Subnet, &name).cloned();
        let created = old.is_none();
        let subnet = self.build_subnet(path, body, old.as_ref(), &space)?;
        let mut all: Vec<Value> = prop_arr(&vnet.body, "subnets")
            .iter()
            .filter(|s| !name_of(s).eq_ignore_ascii_case(&name))
            .cloned()
            .collect();
        all.push(subnet.clone());
        check_subnet_overlaps(&all)?;
        let mut tables = BTreeSet::new();
        if let Some(old) = &old {
            if let Some(t) = prop_ref_id(old, "routeTable") {
                tables.insert(lower(t));
            }
        }
        if let Some(t) = prop_ref_id(&subnet, "routeTable") {
            tables.insert(lower(t));
        }
        if let Some(res) = self.vnets.get_mut(&key) {
            upsert_child(&mut res.body, ChildKind::Subnet, subnet);
            set_state(&mut res.body, "Updating");
            restamp(&mut res.body, Kind::Vnet);
        }
        self.rebuild_table_subnets(&tables);
        self.accept_put(
            ctx,
            path,
            "PutSubnetOperation",
            superseded,
            created,
            self.latency.lro,
        )
    }

    pub(super) fn remove_vnet(&mut self, key: &str) {
        let Some(res) = self.vnets.remove(key) else {
            return;
        };
        let tables: BTreeSet<String> = prop_arr(&res.body, "subnets")
            .iter()
            .filter_map(|s| prop_ref_id(s, "routeTable").map(lower))
            .collect();
        self.rebuild_table_subnets(&tables);
        let others: Vec<String> = self.vnets.keys().cloned().collect();
        for other in others {
            self.disconnect_peerings_to(&other, key);
        }
    }
}

fn check_subnet_overlaps(subnets: &[Value]) -> Result<(), ArmError> {
    let mut seen: Vec<(String, IpNet)> = Vec::new();
    for s in subnets {
        let mut prefixes: Vec<String> = prop_str(s, "addressPrefix")
            .map(str::to_string)
            .into_iter()
            .collect();
        prefixes.extend(
            prop_arr(s, "addressPrefixes")
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string)),
        );
        for net in nets(&prefixes) {
            if let Some((other, _)) = seen.iter().find(|(_, n)| overlaps(n, &net)) {
                return Err(ArmError::bad_request(
                    "NetcfgSubnetRangesOverlap",
                    format!("Subnet '{}' is not valid because its IP address range overlaps with that of an existing subnet '{other}' in virtual network.", name_of(s)),
                ));
            }
            seen.push((name_of(s).to_string(), net));
        }
    }
    Ok(())
}

pub(super) fn check_subnet_deletable(subnet: &Value) -> Result<(), ArmError> {
    if let Some(first) = prop_arr(subnet, "ipConfigurations").first() {
        return Err(ArmError::bad_request(
            "InUseSubnetCannotBeDeleted",
            format!(
                "Subnet {} is in use by {} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
                name_of(subnet),
                first.get("id").and_then(Value::as_str).unwrap_or("")
            ),
        ));
    }
    Ok(())
}
