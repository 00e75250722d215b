//! A PUT of a virtual network peering, as the Network RP takes it, one documented step at a time:
//! the request and what it references are read; the pair must not be disconnected; one peering
//! per remote VNet; the gateway-transit rules; the address spaces must not overlap; then the
//! peering is accepted: the pair's state machine moves, the remote address space is programmed
//! (the sync levels follow from it), and the long-running operation starts.
//!
//! Authorization comes before all of this, in the request pipeline: ARM checks `peer/action` on
//! the remote VNet (403 `LinkedAuthorizationFailed`), which the simulator's refusal faults stand
//! for.
//!
//! The sources each step cites:
//! - [SPEC] the REST API spec, `Azure/azure-rest-api-specs`,
//!   `specification/network/resource-manager/Microsoft.Network/stable/2026-01-01/virtualNetwork.json`
//!   (`VirtualNetworkPeerings_CreateOrUpdate`, `VirtualNetworkPeeringPropertiesFormat`);
//! - [MANAGE] Microsoft Learn, "Create, change, or delete a virtual network peering",
//!   <https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering>;
//! - [TRANSIT] Microsoft Learn, "Configure VPN gateway transit for virtual network peering",
//!   <https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-peering-gateway-transit>;
//! - [SYNC] Microsoft Learn, "Sync-AzVirtualNetworkPeering",
//!   <https://learn.microsoft.com/powershell/module/az.network/sync-azvirtualnetworkpeering>, and
//!   the HTTP traffic recorded by `Azure/azure-powershell`'s `TestVirtualNetworkPeeringSyncCRUD`
//!   scenario test (session record of `VirtualNetworkTests`);
//! - error texts as Azure returned them, from the public issue threads named at each step. Where
//!   no public source gives a code or a text, the step says so and the simulator's own is used.

use serde_json::{json, Value};

use super::body::{find_child, new_guid, restamp, set_state, upsert_child};
use super::keys::{lower, vnet_key_of};
use super::peerings::bgp_community;
use super::prefixes::overlap_between;
use super::{ArmError, ChildKind, Ctx, Kind, OpKind, Reply, ResPath, World};
use crate::json::{
    address_prefixes, name_of, obj, prop_arr, prop_arr_mut, prop_bool, prop_ref_id, prop_str, props,
};

/// A peering PUT once read: the peering, its VNet and the remote VNet as the estate holds them.
struct PeeringPut {
    /// The local VNet: its key, its id and its body before the PUT.
    key: String,
    vnet_id: String,
    vnet: Value,
    /// The peering's name and id, as the caller wrote them.
    name: String,
    id: String,
    /// The remote VNet: its id as the body gives it, its key and its body.
    remote_id: String,
    remote_key: String,
    remote: Value,
    /// This peering as stored before the PUT; `None` for a creation.
    old: Option<Value>,
    /// The remote VNet's peering back to this VNet, if there is one.
    remote_peering: Option<Value>,
    /// The PUT carries `?syncRemoteAddressSpace=true`.
    sync: bool,
}

impl World {
    /// PUT of a virtual network peering: the steps below, in this order, then acceptance.
    pub(crate) fn put_peering(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        body: Value,
    ) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(vnet) = self.vnets.get(&key).map(|res| res.body.clone()) else {
            return Err(Self::not_found_parent(path));
        };
        let superseded = self.check_lock(ctx, &key, &lower(&path.id()), OpKind::Put)?;
        self.check_if_match_child(ctx, path)?;
        let sync = sync_remote_address_space(ctx)?;
        let put = self.read_peering_put(path, vnet, &body, sync)?;
        check_pair_not_disconnected(&put, self.strict.refuse_disconnected_peering_update)?;
        check_one_peering_per_remote_vnet(&put)?;
        if prop_bool(&body, "useRemoteGateways") {
            self.check_no_local_gateway(&put)?;
            self.check_remote_has_gateway(&put)?;
            self.check_remote_allows_gateway_transit(&put)?;
            check_one_peering_uses_remote_gateways(&put)?;
        }
        check_address_spaces_do_not_overlap(&put)?;
        self.check_no_overlap_with_already_peered(&put)?;
        self.accept_peering(ctx, path, put, body, superseded)
    }

    /// The request and what it references, checked before anything else: the body names the
    /// remote VNet (`remoteVirtualNetwork.id`, [SPEC]); an update keeps it; a new peering fits
    /// in the VNet's limit (500 peerings per VNet: Microsoft Learn, "Azure subscription and
    /// service limits", networking limits); the remote VNet exists (`InvalidResourceReference`)
    /// and is not the VNet itself; and it is not being written (transient 400
    /// `ReferencedResourceNotProvisioned`, text from hashicorp/terraform-provider-azurerm#3392).
    fn read_peering_put(
        &self,
        path: &ResPath,
        vnet: Value,
        body: &Value,
        sync: bool,
    ) -> Result<PeeringPut, ArmError> {
        let (key, vnet_id) = (path.parent_key(), path.parent_id());
        let name = path.child.as_ref().map(|c| c.1.clone()).unwrap_or_default();
        let id = path.id();
        let remote_id = remote_vnet_id(body, &id)?;
        let old = find_child(&vnet, ChildKind::Peering, &name).cloned();
        match &old {
            Some(old) => check_remote_unchanged(old, &remote_id, &id)?,
            None => self.check_peering_limit(&vnet, &vnet_id)?,
        }
        let remote_key = vnet_key_of(&remote_id);
        let Some(remote) = self.vnets.get(&remote_key).map(|res| res.body.clone()) else {
            return Err(ArmError::bad_request(
                "InvalidResourceReference",
                format!("Resource {remote_id} referenced by resource {id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
            ));
        };
        if remote_key == key {
            return Err(ArmError::bad_request(
                "CannotPeerVirtualNetworkWithItself",
                format!("Peering {id} cannot reference its own virtual network."),
            ));
        }
        self.check_referenced(&remote_key, &remote_id, &id)?;
        let remote_peering = prop_arr(&remote, "virtualNetworkPeerings")
            .iter()
            .find(|p| {
                prop_ref_id(p, "remoteVirtualNetwork").is_some_and(|id| vnet_key_of(id) == key)
            })
            .cloned();
        Ok(PeeringPut {
            key,
            vnet_id,
            vnet,
            name,
            id,
            remote_id,
            remote_key,
            remote,
            old,
            remote_peering,
            sync,
        })
    }

    /// A new peering must fit in its VNet's limit of peerings.
    fn check_peering_limit(&self, vnet: &Value, vnet_id: &str) -> Result<(), ArmError> {
        if prop_arr(vnet, "virtualNetworkPeerings").len() < self.strict.peering_limit {
            return Ok(());
        }
        Err(ArmError::bad_request(
            "PeeringLimitReached",
            format!(
                "Virtual network {vnet_id} cannot have more than {} peerings.",
                self.strict.peering_limit
            ),
        ))
    }

    /// `useRemoteGateways` cannot be set on a VNet that has a gateway of its own: "This flag
    /// cannot be set if virtual network already has a gateway" ([SPEC], `useRemoteGateways`;
    /// [TRANSIT]). No public source records the code or the text.
    fn check_no_local_gateway(&self, put: &PeeringPut) -> Result<(), ArmError> {
        if !self.vnet_has_gateway(&put.key, false) {
            return Ok(());
        }
        Err(ArmError::bad_request(
            "UseRemoteGatewaysNotAllowedWithLocalGateway",
            format!("Peering {} cannot have UseRemoteGateways flag set to true because its virtual network {} already has a gateway.", put.id, put.vnet_id),
        ))
    }

    /// `useRemoteGateways` needs a gateway in the remote VNet, provisioned ([TRANSIT]; code and
    /// text from hashicorp/terraform#30569 and Azure/terraform-azurerm-lz-vending#398).
    fn check_remote_has_gateway(&self, put: &PeeringPut) -> Result<(), ArmError> {
        if self.vnet_has_gateway(&put.remote_key, true) {
            return Ok(());
        }
        Err(ArmError::bad_request(
            "RemoteVnetHasNoGateways",
            format!("Peering {} cannot have UseRemoteGateway flag set to true because remote virtual network {} referenced by the peering does not have any gateways.", put.id, put.remote_id),
        ))
    }

    /// `useRemoteGateways` needs the remote peering to allow gateway transit: the VNet "will use
    /// gateways of remote virtual network for transit" only "if ... allowGatewayTransit on remote
    /// peering is also true" ([SPEC], `useRemoteGateways`; [TRANSIT]). Text from
    /// hashicorp/terraform-provider-azurerm#2872; the code is the simulator's. Whether a missing
    /// remote peering is refused too is a strictness knob.
    fn check_remote_allows_gateway_transit(&self, put: &PeeringPut) -> Result<(), ArmError> {
        let transit_allowed = match &put.remote_peering {
            Some(remote_peering) => prop_bool(remote_peering, "allowGatewayTransit"),
            None => !self.strict.use_remote_gateways_needs_remote_peering,
        };
        if transit_allowed {
            return Ok(());
        }
        Err(ArmError::bad_request(
            "RemotePeeringDoesNotAllowGatewayTransit",
            "Peering-to-Gateway cannot have UseRemoteGateways flag set to true, because corresponding remote peering has AllowGatewayTransit flag set to false.",
        ))
    }

    /// Whether a gateway has an IP configuration in the VNet's `GatewaySubnet` (and, with
    /// `require_succeeded`, is provisioned).
    fn vnet_has_gateway(&self, vnet_key: &str, require_succeeded: bool) -> bool {
        let gateway_subnet = format!("{vnet_key}/subnets/gatewaysubnet");
        self.gateways.values().any(|g| {
            let in_vnet = prop_arr(&g.body, "ipConfigurations")
                .iter()
                .any(|c| prop_ref_id(c, "subnet").is_some_and(|id| lower(id) == gateway_subnet));
            in_vnet
                && (!require_succeeded
                    || prop_str(&g.body, "provisioningState") == Some("Succeeded"))
        })
    }

    /// Storage of the accepted peering, and of its passive side; then the operation starts.
    /// Until it completes the peering and its VNet read `Updating`; the derived fields (the
    /// address spaces and the sync levels of every VNet around) are recomputed at once.
    fn accept_peering(
        &mut self,
        ctx: &Ctx,
        path: &ResPath,
        put: PeeringPut,
        mut body: Value,
        superseded: Option<String>,
    ) -> Result<Reply, ArmError> {
        let created = put.old.is_none();
        let state = put.state_after();
        let guid = put.resource_guid();
        stored_peering(&mut body, &put, state, &guid);
        if let Some(res) = self.vnets.get_mut(&put.key) {
            upsert_child(&mut res.body, ChildKind::Peering, body);
            set_state(&mut res.body, "Updating");
            restamp(&mut res.body, Kind::Vnet);
        }
        if created && put.remote_peering.is_some() {
            self.connect_passive_side(&put, &guid);
        }
        self.refresh_related(&put.key);
        self.accept_put(
            ctx,
            path,
            "PutVirtualNetworkPeeringOperation",
            superseded,
            created,
            self.latency.lro,
        )
    }

    /// The second side of a pair is created: the first side, passive, becomes `Connected` with
    /// the pair's `resourceGuid`, without a write or an event of its own ([MANAGE], peering
    /// status; [SYNC], the recorded traffic).
    fn connect_passive_side(&mut self, put: &PeeringPut, guid: &str) {
        let Some(res) = self.vnets.get_mut(&put.remote_key) else {
            return;
        };
        for p in prop_arr_mut(&mut res.body, "virtualNetworkPeerings").iter_mut() {
            if prop_ref_id(p, "remoteVirtualNetwork").is_some_and(|id| vnet_key_of(id) == put.key) {
                let pp = props(p);
                pp.insert("peeringState".into(), json!("Connected"));
                pp.insert("resourceGuid".into(), json!(guid));
            }
        }
        restamp(&mut res.body, Kind::Vnet);
    }

    /// Neither VNet may overlap a VNet already peered with the other: Azure's
    /// `VnetAddressSpaceOverlapsWithAlreadyPeeredVnet`, text from Azure/ResourceModules#731 and
    /// microsoft/AzureTRE#4641.
    fn check_no_overlap_with_already_peered(&self, put: &PeeringPut) -> Result<(), ArmError> {
        let local_space = address_prefixes(&put.vnet, "addressSpace");
        let remote_space = address_prefixes(&put.remote, "addressSpace");
        for (first, first_id, second_key, second_id) in [
            (
                &remote_space,
                put.remote_id.as_str(),
                &put.key,
                &put.vnet_id,
            ),
            (
                &local_space,
                put.vnet_id.as_str(),
                &put.remote_key,
                &put.remote_id,
            ),
        ] {
            let Some(second) = self.vnets.get(second_key.as_str()) else {
                continue;
            };
            for p in prop_arr(&second.body, "virtualNetworkPeerings") {
                let Some(third_id) = prop_ref_id(p, "remoteVirtualNetwork") else {
                    continue;
                };
                let third_key = vnet_key_of(third_id);
                if third_key == put.key || third_key == put.remote_key {
                    continue;
                }
                let Some(third) = self.vnets.get(&third_key) else {
                    continue;
                };
                if let Some(overlap) =
                    overlap_between(first, &address_prefixes(&third.body, "addressSpace"))
                {
                    return Err(ArmError::bad_request(
                        "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet",
                        format!("Cannot create or update peering {}. Virtual networks {first_id} and {second_id} cannot be peered because address space of the first virtual network overlaps with address space of virtual network {third_id} already peered with the second virtual network. Overlapping address prefixes: {overlap}. For more information please refer to https://aka.ms/VnetPeeringInfo", put.id),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl PeeringPut {
    /// The pair's state machine ([MANAGE], peering status; [SPEC], `peeringState`): a peering
    /// created while the remote side has none is `Initiated`; created while it has one, both
    /// are `Connected` (the creation answers `Connected` already, in the recorded traffic of
    /// [SYNC]); an update keeps the state it had.
    fn state_after(&self) -> String {
        match (&self.old, &self.remote_peering) {
            (Some(old), _) => prop_str(old, "peeringState")
                .unwrap_or("Initiated")
                .to_string(),
            (None, Some(_)) => "Connected".to_string(),
            (None, None) => "Initiated".to_string(),
        }
    }

    /// Both sides of a pair carry one `resourceGuid` (the recorded traffic of [SYNC]): the
    /// peering's own, else its remote side's, else a new one.
    fn resource_guid(&self) -> String {
        self.old
            .as_ref()
            .and_then(|o| prop_str(o, "resourceGuid").map(str::to_string))
            .or_else(|| {
                self.remote_peering
                    .as_ref()
                    .and_then(|rp| prop_str(rp, "resourceGuid").map(str::to_string))
            })
            .unwrap_or_else(new_guid)
    }

    /// The remote address space programmed on the peering, from which its sync level follows
    /// ([SYNC]; [SPEC], `syncRemoteAddressSpace`): a creation, or a PUT with
    /// `?syncRemoteAddressSpace=true`, programs the remote VNet's current space; any other update
    /// keeps the space programmed before, so that a resized remote VNet leaves the peering
    /// `LocalNotInSync` until it is synced.
    fn programmed_remote_space(&self) -> Value {
        if !self.sync {
            if let Some(kept) = self
                .old
                .as_ref()
                .and_then(|old| old.get("properties"))
                .and_then(|p| p.get("remoteAddressSpace"))
            {
                return kept.clone();
            }
        }
        json!({"addressPrefixes": address_prefixes(&self.remote, "addressSpace")})
    }
}

/// `?syncRemoteAddressSpace=`, whose only legal value is `true` ([SPEC]: the query parameter of
/// `VirtualNetworkPeerings_CreateOrUpdate`, an enum of the one value `true`).
fn sync_remote_address_space(ctx: &Ctx) -> Result<bool, ArmError> {
    match ctx.sync_remote_address_space.as_deref() {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) => Err(ArmError::bad_request(
            "InvalidSyncRemoteAddressSpaceValue",
            format!("The value '{v}' of the query parameter syncRemoteAddressSpace is not valid. The only allowed value is 'true'."),
        )),
    }
}

/// The remote VNet the body names (`properties.remoteVirtualNetwork.id`, [SPEC]).
fn remote_vnet_id(body: &Value, peering_id: &str) -> Result<String, ArmError> {
    prop_ref_id(body, "remoteVirtualNetwork")
        .map(str::to_string)
        .ok_or_else(|| {
            ArmError::bad_request(
                "InvalidRequestFormat",
                format!("Cannot parse the request: peering {peering_id} has no remoteVirtualNetwork.id."),
            )
        })
}

/// An update cannot point the peering at another VNet: the remote VNet is set when the peering
/// is created ([MANAGE] changes only the peering's settings). The code is the simulator's.
fn check_remote_unchanged(old: &Value, remote_id: &str, peering_id: &str) -> Result<(), ArmError> {
    let old_remote = prop_ref_id(old, "remoteVirtualNetwork").unwrap_or("");
    if old_remote.eq_ignore_ascii_case(remote_id) {
        return Ok(());
    }
    Err(ArmError::bad_request(
        "CannotChangeRemoteVirtualNetworkOfPeering",
        format!("Peering {peering_id} cannot change its remote virtual network from {old_remote} to {remote_id}."),
    ))
}

/// A `Disconnected` peering cannot be updated, and no peering can be created or updated while
/// its remote side is `Disconnected`: both sides must be deleted and created again ([MANAGE],
/// peering status). Texts of `RemotePeeringIsDisconnected` from
/// hashicorp/terraform-provider-azurerm#14051 and hashicorp/terraform#18091; refusing an update
/// of the disconnected side itself is a strictness knob.
fn check_pair_not_disconnected(put: &PeeringPut, refuse_update: bool) -> Result<(), ArmError> {
    if let Some(old) = &put.old {
        if prop_str(old, "peeringState") == Some("Disconnected") && refuse_update {
            return Err(ArmError::bad_request(
                "CannotUpdateDisconnectedPeering",
                format!("Cannot update peering {} because it is in Disconnected state. Delete the peering and re-create both sides to get them back to Connected state.", put.id),
            ));
        }
    }
    if let Some(remote_peering) = &put.remote_peering {
        if prop_str(remote_peering, "peeringState") == Some("Disconnected") {
            let remote_peering_id = remote_peering
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("");
            return Err(ArmError::bad_request(
                "RemotePeeringIsDisconnected",
                format!("Cannot create or update peering {} because remote peering {remote_peering_id} referencing parent virtual network {} is in Disconnected state. Update or re-create the remote peering to get it back to Initiated state. Peering gets Disconnected when remote vnet or remote peering is deleted and re-created.", put.id, put.vnet_id),
            ));
        }
    }
    Ok(())
}

/// One VNet has at most one peering to a given remote VNet. Azure refuses a second one; no
/// public source records the code or the text.
fn check_one_peering_per_remote_vnet(put: &PeeringPut) -> Result<(), ArmError> {
    let Some(other) = prop_arr(&put.vnet, "virtualNetworkPeerings")
        .iter()
        .find(|p| {
            !name_of(p).eq_ignore_ascii_case(&put.name)
                && prop_ref_id(p, "remoteVirtualNetwork")
                    .is_some_and(|id| vnet_key_of(id) == put.remote_key)
        })
    else {
        return Ok(());
    };
    Err(ArmError::bad_request(
        "PeeringWithSameRemoteVirtualNetworkExists",
        format!(
            "Cannot create peering {} because peering {} of the same virtual network already references remote virtual network {}.",
            put.id,
            other.get("id").and_then(Value::as_str).unwrap_or(""),
            put.remote_id
        ),
    ))
}

/// "Only one peering can have this flag set to true" ([SPEC], `useRemoteGateways`; [TRANSIT]).
/// No public source records the code or the text.
fn check_one_peering_uses_remote_gateways(put: &PeeringPut) -> Result<(), ArmError> {
    let Some(other) = prop_arr(&put.vnet, "virtualNetworkPeerings")
        .iter()
        .find(|p| !name_of(p).eq_ignore_ascii_case(&put.name) && prop_bool(p, "useRemoteGateways"))
    else {
        return Ok(());
    };
    Err(ArmError::bad_request(
        "OnlyOnePeeringCanUseRemoteGateways",
        format!(
            "Peering {} cannot have UseRemoteGateways flag set to true because another peering {} of the same virtual network already uses remote gateways.",
            put.id,
            other.get("id").and_then(Value::as_str).unwrap_or("")
        ),
    ))
}

/// The two VNets' address spaces must not overlap ([MANAGE], requirements and constraints). The
/// code `VnetAddressSpacesOverlap` is the simulator's reading: no public source records it.
fn check_address_spaces_do_not_overlap(put: &PeeringPut) -> Result<(), ArmError> {
    let local_space = address_prefixes(&put.vnet, "addressSpace");
    let remote_space = address_prefixes(&put.remote, "addressSpace");
    let Some(overlap) = overlap_between(&local_space, &remote_space) else {
        return Ok(());
    };
    Err(ArmError::bad_request(
        "VnetAddressSpacesOverlap",
        format!("Cannot create or update peering {}. Virtual networks {} and {} cannot be peered because their address spaces overlap. Overlapping address prefixes: {overlap}", put.id, put.vnet_id, put.remote_id),
    ))
}

/// The peering as stored and returned: the envelope, the four flags (absent ones read as the
/// portal's defaults, [MANAGE]: only `allowVirtualNetworkAccess` on), the remote VNet and its
/// programmed space, BGP communities and encryption, the pair's state and guid, `Updating` until the
/// operation completes. The sync level is derived afterwards, with the VNets around.
fn stored_peering(body: &mut Value, put: &PeeringPut, state: String, guid: &str) {
    let top = obj(body);
    top.insert("name".into(), json!(put.name));
    top.insert("id".into(), json!(put.id));
    top.insert(
        "type".into(),
        json!("Microsoft.Network/virtualNetworks/virtualNetworkPeerings"),
    );
    let remote_programmed = put.programmed_remote_space();
    let p = props(body);
    for flag in [
        "allowVirtualNetworkAccess",
        "allowForwardedTraffic",
        "allowGatewayTransit",
        "useRemoteGateways",
    ] {
        let value = p
            .get(flag)
            .and_then(Value::as_bool)
            .unwrap_or(flag == "allowVirtualNetworkAccess");
        p.insert(flag.into(), json!(value));
    }
    p.insert("remoteVirtualNetwork".into(), json!({"id": put.remote_id}));
    p.insert("remoteAddressSpace".into(), remote_programmed);
    p.insert("remoteBgpCommunities".into(), json!({"virtualNetworkCommunity": bgp_community(&put.remote_key), "regionalCommunity": "12076:50004"}));
    if let Some(encryption) = put
        .remote
        .get("properties")
        .and_then(|p| p.get("encryption"))
    {
        p.insert("remoteVirtualNetworkEncryption".into(), encryption.clone());
    }
    p.insert("peeringState".into(), json!(state));
    p.insert("provisioningState".into(), json!("Updating"));
    p.insert("resourceGuid".into(), json!(guid));
    p.entry("routeServiceVips").or_insert(json!({}));
    p.remove("peeringSyncLevel");
}
