//! Where a resource is: its top-level type, its child type, and its address as the caller wrote
//! it, from which its id, its key in the estate and its ARM type follow.

/// The top-level resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Vnet,
    RouteTable,
    Gateway,
    Nic,
}

impl Kind {
    pub(crate) fn segment(self) -> &'static str {
        match self {
            Kind::Vnet => "virtualNetworks",
            Kind::RouteTable => "routeTables",
            Kind::Gateway => "virtualNetworkGateways",
            Kind::Nic => "networkInterfaces",
        }
    }
}

/// The child resource types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildKind {
    Subnet,
    Peering,
    Route,
}

impl ChildKind {
    pub(crate) fn segment(self) -> &'static str {
        match self {
            ChildKind::Subnet => "subnets",
            ChildKind::Peering => "virtualNetworkPeerings",
            ChildKind::Route => "routes",
        }
    }

    pub(super) fn parent_array(self) -> &'static str {
        match self {
            ChildKind::Subnet => "subnets",
            ChildKind::Peering => "virtualNetworkPeerings",
            ChildKind::Route => "routes",
        }
    }
}

/// A resource address as the caller wrote it (casing kept for ids).
#[derive(Debug, Clone)]
pub(crate) struct ResPath {
    pub sub: String,
    pub rg: String,
    pub kind: Kind,
    pub name: String,
    pub child: Option<(ChildKind, String)>,
}

impl ResPath {
    pub(crate) fn parent_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/{}/{}",
            self.sub,
            self.rg,
            self.kind.segment(),
            self.name
        )
    }

    pub(crate) fn id(&self) -> String {
        match &self.child {
            Some((kind, name)) => format!("{}/{}/{}", self.parent_id(), kind.segment(), name),
            None => self.parent_id(),
        }
    }

    pub(super) fn parent_key(&self) -> String {
        self.parent_id().to_ascii_lowercase()
    }

    pub(super) fn type_name(&self) -> String {
        match &self.child {
            Some((child, _)) => format!(
                "Microsoft.Network/{}/{}",
                self.kind.segment(),
                child.segment()
            ),
            None => format!("Microsoft.Network/{}", self.kind.segment()),
        }
    }
}
