//! DELETE of any resource.

use super::body::{find_child, find_child_mut, restamp, set_state};
use super::keys::lower;
use super::vnets::check_subnet_deletable;
use super::{ArmError, ChildKind, Ctx, Kind, OpKind, Reply, ResPath, World};
use crate::json::prop_arr;

impl World {
    // ------------------------------------------------------------------ DELETE

    /// DELETE of any resource: 202 + `Location` while it is deleted, 204 when absent.
    pub(crate) fn delete(&mut self, ctx: &Ctx, path: &ResPath) -> Result<Reply, ArmError> {
        let key = path.parent_key();
        let Some(parent) = self.map(path.kind).get(&key).cloned() else {
            return if path.child.is_some() {
                Err(Self::not_found_parent(path))
            } else {
                Ok(Reply::empty(204))
            };
        };
        let target = match &path.child {
            None => parent.body.clone(),
            Some((kind, name)) => match find_child(&parent.body, *kind, name) {
                Some(child) => child.clone(),
                None => return Ok(Reply::empty(204)),
            },
        };
        self.check_lock(ctx, &key, &lower(&path.id()), OpKind::Delete)?;
        self.check_if_match_child(ctx, path)?;
        let name = match (&path.child, path.kind) {
            (None, Kind::Vnet) => {
                for subnet in prop_arr(&target, "subnets") {
                    check_subnet_deletable(subnet)?;
                }
                "DeleteVirtualNetworkOperation"
            }
            (None, Kind::RouteTable) => {
                if !prop_arr(&target, "subnets").is_empty() {
                    return Err(ArmError::bad_request(
                        "InUseRouteTableCannotBeDeleted",
                        format!("Route table {} is in use and cannot be deleted.", path.id()),
                    ));
                }
                "DeleteRouteTableOperation"
            }
            (None, Kind::Gateway) => "DeleteVirtualNetworkGatewayOperation",
            (None, Kind::Nic) => "DeleteNetworkInterfaceOperation",
            (Some((ChildKind::Subnet, _)), _) => {
                check_subnet_deletable(&target)?;
                "DeleteSubnetOperation"
            }
            (Some((ChildKind::Peering, _)), _) => "DeleteVirtualNetworkPeeringOperation",
            (Some((ChildKind::Route, _)), _) => "DeleteRouteOperation",
        };
        let kind = path.kind;
        if let Some(res) = self.map_mut(kind).get_mut(&key) {
            match &path.child {
                None => set_state(&mut res.body, "Deleting"),
                Some((child_kind, child_name)) => {
                    if let Some(child) = find_child_mut(&mut res.body, *child_kind, child_name) {
                        set_state(child, "Deleting");
                    }
                    set_state(&mut res.body, "Updating");
                }
            }
            restamp(&mut res.body, kind);
        }
        let duration = self.latency.delete;
        let (_, headers, scheduled) =
            self.begin(ctx, path, OpKind::Delete, name, None, false, duration);
        Ok(Reply {
            status: 202,
            body: None,
            headers,
            scheduled: vec![scheduled],
            operations_in_flight: None,
        })
    }
}
