//! Properties of the planner over random estates: 1–2 hubs, 0–60 spokes of 1–4 prefixes,
//! foreign tables and routes (some covering with an appliance or `None`), shared tables, IPv6,
//! half-open, disconnected and out-of-sync peerings, gateways in every state.
mod support;

use std::collections::HashSet;

use hubspoke_core::config::PlanConfig;
use hubspoke_core::id::VnetId;
use hubspoke_core::model::{Observed, PeeringState, RoutePrefix};
use hubspoke_core::plan::{managed_prefix, parse_managed_route_name, plan, Action, TAG_EXCLUDE};
use hubspoke_core::synth::{Estate, Flags};
use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;
use serde_json::json;
use support::apply;

#[derive(Debug, Clone)]
struct GatewayRecipe {
    /// 0: none, 1: Succeeded, 2: Updating, 3: Failed.
    state: u8,
    /// 0: VPN, 1: ExpressRoute, 2: both.
    kind: u8,
    basic: bool,
    /// 0: no table on GatewaySubnet, 1: one with BGP propagation disabled, 2: one sending
    /// 10.0.0.0/8 to an appliance.
    gateway_table: u8,
    /// The hub has a peering to a VNet outside the snapshot.
    ghost: bool,
}

#[derive(Debug, Clone)]
struct SubnetRecipe {
    /// 0..=3: workload, 4: AzureBastionSubnet, 5: NetApp, 6: SQL MI.
    kind: u8,
    /// None, or an index into the foreign table pool, or the pool's size for the managed table.
    table: Option<usize>,
}

#[derive(Debug, Clone)]
struct SpokeRecipe {
    hub: usize,
    second_hub: bool,
    prefixes: usize,
    ipv6: bool,
    /// 0: spoke side Initiated only, 1: hub side Initiated only, 2: connected default flags,
    /// 3–5: connected with transit flags, 6: spoke side Disconnected, 7: both sides, hub side
    /// Disconnected.
    pairing: u8,
    access_disabled: bool,
    resized: bool,
    group: u8,
    excluded: bool,
    own_gateway: bool,
    subnets: Vec<SubnetRecipe>,
    stale_managed: bool,
    /// A foreign table of the spoke's own (not shared), used by subnets whose `table` is the
    /// pool's size.
    own_table: Option<TableRecipe>,
}

#[derive(Debug, Clone)]
struct RouteRecipe {
    /// 0: 0.0.0.0/0, 1: a spoke's first prefix, 2: 10.0.0.0/8, 3: a managed-named route for a
    /// spoke's prefix, 4: a managed name with another prefix (a clash), 5: an IPv6 prefix.
    target: u8,
    spoke: usize,
    /// 0: VirtualAppliance, 1: None, 2: Internet, 3: VirtualNetworkGateway.
    hop: u8,
}

#[derive(Debug, Clone)]
struct TableRecipe {
    routes: Vec<RouteRecipe>,
    excluded: bool,
}

#[derive(Debug, Clone)]
struct Recipe {
    hubs: Vec<GatewayRecipe>,
    spokes: Vec<SpokeRecipe>,
    tables: Vec<TableRecipe>,
    summary: bool,
    limit: usize,
    managed_only: bool,
    allow_default: bool,
    create_missing: bool,
}

fn gateway() -> impl Strategy<Value = GatewayRecipe> {
    (
        prop_oneof![1 => Just(0u8), 4 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)],
        prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        prop::bool::weighted(0.1),
        prop_oneof![8 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        prop::bool::weighted(0.1),
    )
        .prop_map(|(state, kind, basic, gateway_table, ghost)| GatewayRecipe {
            state,
            kind,
            basic,
            gateway_table,
            ghost,
        })
}

fn route() -> impl Strategy<Value = RouteRecipe> {
    (0u8..6, 0usize..60, 0u8..4).prop_map(|(target, spoke, hop)| RouteRecipe { target, spoke, hop })
}

fn table() -> impl Strategy<Value = TableRecipe> {
    (
        prop::collection::vec(route(), 0..4),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(routes, excluded)| TableRecipe { routes, excluded })
}

fn spoke(tables: usize) -> impl Strategy<Value = SpokeRecipe> {
    let subnet = (0u8..7, prop::option::weighted(0.6, 0..=tables))
        .prop_map(|(kind, table)| SubnetRecipe { kind, table });
    (
        (
            0usize..2,
            prop::bool::weighted(0.05),
            1usize..=4,
            prop::bool::weighted(0.1),
        ),
        (
            0u8..8,
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.15),
            0u8..3,
        ),
        (
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.05),
            prop::collection::vec(subnet, 1..4),
            prop::bool::weighted(0.2),
        ),
        prop::option::weighted(0.3, table()),
    )
        .prop_map(
            |(
                (hub, second_hub, prefixes, ipv6),
                (pairing, access_disabled, resized, group),
                (excluded, own_gateway, subnets, stale_managed),
                own_table,
            )| SpokeRecipe {
                hub,
                second_hub,
                prefixes,
                ipv6,
                pairing,
                access_disabled,
                resized,
                group,
                excluded,
                own_gateway,
                subnets,
                stale_managed,
                own_table,
            },
        )
}

fn recipe() -> impl Strategy<Value = Recipe> {
    (0usize..6).prop_flat_map(move |table_count| {
        (
            prop::collection::vec(gateway(), 1..=2),
            prop::collection::vec(spoke(table_count), 0..=60),
            prop::collection::vec(table(), table_count),
            prop::bool::weighted(0.2),
            prop_oneof![1 => 5usize..20, 2 => Just(400usize)],
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.9),
        )
            .prop_map(
                |(
                    hubs,
                    spokes,
                    tables,
                    summary,
                    limit,
                    managed_only,
                    allow_default,
                    create_missing,
                )| Recipe {
                    hubs,
                    spokes,
                    tables,
                    summary,
                    limit,
                    managed_only,
                    allow_default,
                    create_missing,
                },
            )
    })
}

/// Spokes sit in every other /16 so that their prefixes rarely merge, which keeps route limits
/// in play.
fn spoke_prefix(index: usize, k: usize) -> String {
    format!("10.{}.{}.0/18", 2 * index + 1, k * 64)
}

fn build(recipe: &Recipe) -> (Estate, PlanConfig) {
    let mut estate = Estate::default();
    let hub_names: Vec<String> = (0..recipe.hubs.len()).map(|h| format!("hub{h}")).collect();
    for (h, gw) in recipe.hubs.iter().enumerate() {
        let prefix = if h == 0 {
            "10.0.0.0/16"
        } else {
            "172.16.0.0/16"
        };
        let subnet = if h == 0 {
            "10.0.255.0/27"
        } else {
            "172.16.255.0/27"
        };
        estate.hub(&hub_names[h], prefix, subnet, None);
        if gw.state > 0 {
            let state = ["", "Succeeded", "Updating", "Failed"][gw.state as usize];
            let sku = if gw.basic { "Basic" } else { "VpnGw1" };
            if gw.kind != 1 {
                estate.gateway(
                    &hub_names[h],
                    &format!("{}-vpn", hub_names[h]),
                    "Vpn",
                    sku,
                    state,
                );
            }
            if gw.kind != 0 {
                estate.gateway(
                    &hub_names[h],
                    &format!("{}-er", hub_names[h]),
                    "ExpressRoute",
                    "Standard",
                    state,
                );
            }
        }
    }
    for (h, gw) in recipe.hubs.iter().enumerate() {
        let table = format!("{}-gateway-routes", hub_names[h]);
        match gw.gateway_table {
            1 => {
                estate.table(&table, &[], json!({}));
                if let Some(t) = estate.route_tables.last_mut() {
                    t["properties"]["disableBgpRoutePropagation"] = true.into();
                }
                estate.associate(&hub_names[h], "GatewaySubnet", &table);
            }
            2 => {
                estate.table(
                    &table,
                    &[(
                        "to-firewall",
                        "10.0.0.0/8",
                        "VirtualAppliance",
                        Some("10.0.1.4"),
                    )],
                    json!({}),
                );
                estate.associate(&hub_names[h], "GatewaySubnet", &table);
            }
            _ => {}
        }
        if gw.ghost {
            let ghost = Estate::new(
                "00000000-0000-0000-0000-0000000000ff",
                "rg-elsewhere",
                "westeurope",
            );
            let id = ghost.vnet_id("ghost");
            let hub_name = hub_names[h].clone();
            let peering = json!({
                "name": "to-ghost",
                "id": format!("{}/virtualNetworkPeerings/to-ghost", estate.vnet_id(&hub_name)),
                "properties": {"peeringState": "Initiated", "remoteVirtualNetwork": {"id": id}},
            });
            if let Some(list) =
                estate.vnet_mut(&hub_name)["properties"]["virtualNetworkPeerings"].as_array_mut()
            {
                list.push(peering);
            }
        }
    }
    let spoke_names: Vec<String> = (0..recipe.spokes.len())
        .map(|i| format!("spoke{i:02}"))
        .collect();
    let table_names: Vec<String> = (0..recipe.tables.len())
        .map(|t| format!("foreign{t}"))
        .collect();
    for (t, table) in recipe.tables.iter().enumerate() {
        add_table(&mut estate, &table_names[t], table, recipe.spokes.len());
    }
    for (i, spoke) in recipe.spokes.iter().enumerate() {
        let name = &spoke_names[i];
        let mut prefixes: Vec<String> = (0..spoke.prefixes).map(|k| spoke_prefix(i, k)).collect();
        if spoke.ipv6 {
            prefixes.push(format!("fd00:{:x}::/48", 2 * i + 1));
        }
        let subnet_names = [
            "app",
            "web",
            "data",
            "batch",
            "AzureBastionSubnet",
            "files",
            "sqlmi",
        ];
        let mut subnets: Vec<(String, String)> = Vec::new();
        for (s, subnet) in spoke.subnets.iter().enumerate() {
            let subnet_name = format!("{}{s}", subnet_names[subnet.kind as usize]);
            let subnet_name = if subnet.kind == 4 {
                "AzureBastionSubnet".to_owned()
            } else {
                subnet_name
            };
            if subnets.iter().any(|(n, _)| *n == subnet_name) {
                continue;
            }
            subnets.push((subnet_name, format!("10.{}.{}.0/24", 2 * i + 1, s)));
        }
        if spoke.own_gateway {
            subnets.push(("GatewaySubnet".into(), format!("10.{}.63.0/27", 2 * i + 1)));
        }
        let prefix_refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
        let subnet_refs: Vec<(&str, &str)> = subnets
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_str()))
            .collect();
        estate.vnet(name, &prefix_refs, &subnet_refs);
        if spoke.own_gateway {
            estate.gateway(name, &format!("{name}-gw"), "Vpn", "VpnGw1", "Succeeded");
        }
        if spoke.group > 0 {
            estate.tag_vnet(name, "hubspoke:group", ["", "a", "b"][spoke.group as usize]);
        }
        if spoke.excluded {
            estate.tag_vnet(name, TAG_EXCLUDE, "true");
        }
        if let Some(own) = &spoke.own_table {
            add_table(
                &mut estate,
                &format!("own-{name}"),
                own,
                recipe.spokes.len(),
            );
        }
        if spoke.stale_managed {
            let stale: Ipv4Net = "10.200.0.0/16".parse().expect("prefix");
            let route_name = hubspoke_core::plan::managed_route_name(stale);
            estate.table(
                &format!("hubspoke-rt-{name}"),
                &[(&route_name, "10.200.0.0/16", "VirtualNetworkGateway", None)],
                json!({"hubspoke:managed": "true"}),
            );
        }
        for (s, subnet) in spoke.subnets.iter().enumerate() {
            let Some((subnet_name, _)) = subnets.get(s) else {
                continue;
            };
            let subnet_name = subnet_name.clone();
            match subnet.kind {
                5 => add_delegation(&mut estate, name, &subnet_name, "Microsoft.NetApp/volumes"),
                6 => add_delegation(
                    &mut estate,
                    name,
                    &subnet_name,
                    "Microsoft.Sql/managedInstances",
                ),
                _ => {}
            }
            match subnet.table {
                Some(t) if t < table_names.len() => {
                    estate.associate(name, &subnet_name, &table_names[t])
                }
                Some(_) if spoke.own_table.is_some() => {
                    estate.associate(name, &subnet_name, &format!("own-{name}"))
                }
                Some(_) if spoke.stale_managed => {
                    estate.associate(name, &subnet_name, &format!("hubspoke-rt-{name}"))
                }
                _ => {}
            }
        }
        let hub = &hub_names[spoke.hub % hub_names.len()];
        let transit_hub = Flags {
            forwarded: true,
            gateway_transit: true,
            ..Flags::default()
        };
        let transit_spoke = Flags {
            forwarded: true,
            remote_gateways: !spoke.own_gateway,
            ..Flags::default()
        };
        let access = Flags {
            access_disabled: spoke.access_disabled,
            ..Flags::default()
        };
        match spoke.pairing {
            0 => {
                estate.peer(name, hub, access, "Initiated");
            }
            1 => {
                estate.peer(hub, name, access, "Initiated");
            }
            2 => {
                estate.peer(hub, name, Flags::default(), "Connected");
                estate.peer(name, hub, access, "Connected");
            }
            3..=5 => {
                estate.peer(hub, name, transit_hub, "Connected");
                estate.peer(
                    name,
                    hub,
                    Flags {
                        access_disabled: spoke.access_disabled,
                        ..transit_spoke
                    },
                    "Connected",
                );
            }
            6 => {
                estate.peer(name, hub, transit_spoke, "Disconnected");
            }
            _ => {
                estate.peer(hub, name, transit_hub, "Disconnected");
                estate.peer(name, hub, transit_spoke, "Connected");
            }
        }
        if spoke.resized && spoke.pairing >= 2 && spoke.pairing <= 5 {
            resize(
                &mut estate,
                name,
                hub,
                &format!("10.{}.192.0/18", 2 * i + 1),
            );
        }
        if spoke.second_hub && hub_names.len() > 1 {
            let other = &hub_names[(spoke.hub + 1) % hub_names.len()];
            estate.peer(name, other, Flags::default(), "Initiated");
        }
    }
    let hubs: Vec<VnetId> = hub_names
        .iter()
        .map(|h| estate.vnet_id(h).parse().expect("id"))
        .collect();
    let mut config = PlanConfig::new(hubs);
    if recipe.summary {
        config.summary_prefixes = vec!["10.0.0.0/8".parse().expect("prefix")];
    }
    config.route_limit = recipe.limit;
    config.managed_tables_only = recipe.managed_only;
    config.allow_over_default_route = recipe.allow_default;
    config.create_missing_peerings = recipe.create_missing;
    (estate, config)
}

fn add_table(estate: &mut Estate, table_name: &str, table: &TableRecipe, spoke_count: usize) {
    let mut routes: Vec<(String, String, &str, Option<&str>)> = Vec::new();
    for (r, route) in table.routes.iter().enumerate() {
        let spoke = route.spoke % spoke_count.max(1);
        let hop = [
            "VirtualAppliance",
            "None",
            "Internet",
            "VirtualNetworkGateway",
        ][route.hop as usize];
        let ip = (hop == "VirtualAppliance").then_some("10.0.1.4");
        let (name, prefix) = match route.target {
            0 => (format!("default{r}"), "0.0.0.0/0".to_owned()),
            1 => (format!("to-spoke{r}"), spoke_prefix(spoke, 0)),
            2 => (format!("supernet{r}"), "10.0.0.0/8".to_owned()),
            3 => {
                let prefix: Ipv4Net = spoke_prefix(spoke, 0).parse().expect("prefix");
                (
                    hubspoke_core::plan::managed_route_name(prefix),
                    prefix.to_string(),
                )
            }
            4 => {
                let clash: Ipv4Net = spoke_prefix(spoke, 0).parse().expect("prefix");
                (
                    hubspoke_core::plan::managed_route_name(clash),
                    "10.250.0.0/16".to_owned(),
                )
            }
            _ => (format!("v6-{r}"), "fd00:1::/64".to_owned()),
        };
        let (hop, ip) = if route.target == 3 {
            ("VirtualNetworkGateway", None)
        } else {
            (hop, ip)
        };
        if routes.iter().any(|(n, p, _, _)| *n == name || *p == prefix) {
            continue;
        }
        routes.push((name, prefix, hop, ip));
    }
    let refs: Vec<(&str, &str, &str, Option<&str>)> = routes
        .iter()
        .map(|(n, p, h, i)| (n.as_str(), p.as_str(), *h, *i))
        .collect();
    let tags = if table.excluded {
        json!({ TAG_EXCLUDE: "true" })
    } else {
        json!({})
    };
    estate.table(table_name, &refs, tags);
}

fn add_delegation(estate: &mut Estate, vnet: &str, subnet: &str, service: &str) {
    estate.subnet_mut(vnet, subnet)["properties"]["delegations"] =
        json!([{ "name": "delegation", "properties": { "serviceName": service } }]);
}

/// The spoke grows by `extra`: the hub side's programmed space lags until a sync.
fn resize(estate: &mut Estate, spoke: &str, hub: &str, extra: &str) {
    let spoke_id = estate.vnet_id(spoke);
    let hub_id = estate.vnet_id(hub);
    let grown = {
        let vnet = estate.vnet_mut(spoke);
        if let Some(prefixes) = vnet["properties"]["addressSpace"]["addressPrefixes"].as_array_mut()
        {
            prefixes.push(extra.into());
        }
        vnet["properties"]["addressSpace"].clone()
    };
    if let Some(peerings) =
        estate.vnet_mut(hub)["properties"]["virtualNetworkPeerings"].as_array_mut()
    {
        for peering in peerings
            .iter_mut()
            .filter(|p| p["properties"]["remoteVirtualNetwork"]["id"] == spoke_id.as_str())
        {
            peering["properties"]["peeringSyncLevel"] = "LocalNotInSync".into();
            peering["properties"]["remoteVirtualNetworkAddressSpace"] = grown.clone();
        }
    }
    if let Some(peerings) =
        estate.vnet_mut(spoke)["properties"]["virtualNetworkPeerings"].as_array_mut()
    {
        for peering in peerings
            .iter_mut()
            .filter(|p| p["properties"]["remoteVirtualNetwork"]["id"] == hub_id.as_str())
        {
            peering["properties"]["peeringSyncLevel"] = "RemoteNotInSync".into();
        }
    }
}

/// Tables hubspoke owns in this estate: not excluded, not used by a hub or an unassignable VNet.
fn owned_tables(observed: &Observed, config: &PlanConfig) -> HashSet<String> {
    let hubs: HashSet<&VnetId> = config.hubs.iter().collect();
    let multi: HashSet<&VnetId> = observed
        .virtual_networks
        .iter()
        .filter(|v| !v.tags.is_true(TAG_EXCLUDE))
        .filter(|v| {
            // Peered with a hub from either side.
            let mut peered_hubs: HashSet<&VnetId> = v
                .peerings
                .iter()
                .map(|p| &p.remote_vnet)
                .filter(|r| hubs.contains(r))
                .collect();
            for hub in observed
                .virtual_networks
                .iter()
                .filter(|h| hubs.contains(&h.id))
            {
                if hub.peerings.iter().any(|p| p.remote_vnet == v.id) {
                    peered_hubs.insert(&hub.id);
                }
            }
            peered_hubs.len() > 1
        })
        .map(|v| &v.id)
        .collect();
    observed
        .route_tables
        .iter()
        .filter(|t| !t.tags.is_true(TAG_EXCLUDE))
        .filter(|t| {
            !t.subnets
                .iter()
                .any(|s| hubs.contains(s.vnet()) || multi.contains(s.vnet()))
        })
        .map(|t| t.id.to_string().to_ascii_lowercase())
        .collect()
}

fn v4(net: &IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(net) => Some(*net),
        IpNet::V6(_) => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn planner_properties_hold_on_random_estates(recipe in recipe()) {
        let (estate, config) = build(&recipe);
        let before = Observed::from_snapshot(&estate.snapshot()).expect("snapshot parses");
        let first = plan(&config, &before);
        if std::env::var("PLAN_STATS").is_ok() {
            let kinds: Vec<&str> = first.hubs.iter().flat_map(|h| h.changes.iter().map(|c| c.action.kind())
                .chain(h.warnings.iter().map(|w| w.code.as_str()))).collect();
            eprintln!("STATS {}", kinds.join(" "));
        }

        // The same input gives the same plan, byte for byte.
        let again = plan(&config, &before);
        prop_assert_eq!(
            serde_json::to_string(&first).expect("json"),
            serde_json::to_string(&again).expect("json")
        );

        for hub in &first.hubs {
            for change in &hub.changes {
                // Dependencies point backwards; vanished-route removals come first.
                prop_assert!(change.depends_on.iter().all(|d| *d < change.id));
                if change.id > 0 {
                    prop_assert!(hub.changes[change.id - 1].phase <= change.phase);
                }
                match &change.action {
                    // No foreign route is changed or deleted.
                    Action::UpsertRoute { target, .. } | Action::DeleteRoute { target, .. } => {
                        prop_assert!(parse_managed_route_name(target.name()).is_some(), "{}", target);
                        let existing = before.route_tables.iter()
                            .filter(|t| t.id == *target.route_table())
                            .flat_map(|t| t.routes.iter())
                            .find(|r| r.id == *target);
                        if let Some(existing) = existing {
                            prop_assert!(managed_prefix(existing).is_some(), "foreign route {} touched", target);
                        } else {
                            let is_upsert = matches!(change.action, Action::UpsertRoute { .. });
                            prop_assert!(is_upsert, "deleting a route that does not exist");
                        }
                    }
                    // A gateway that is not gone never loses transit.
                    Action::UpdatePeering { before: b, after: a, .. } | Action::SyncPeering { before: b, after: a, .. } => {
                        let gone = recipe.hubs[config.hubs.iter().position(|h| *h == hub.hub).expect("hub")].state == 0;
                        if !gone {
                            prop_assert!(!b.allow_gateway_transit || a.allow_gateway_transit, "transit lost: {}", change.action.target());
                            prop_assert!(!b.use_remote_gateways || a.use_remote_gateways, "transit lost: {}", change.action.target());
                        }
                        prop_assert_eq!(b.allow_virtual_network_access, a.allow_virtual_network_access);
                    }
                    _ => {}
                }
            }
        }

        // Applying the plan, then planning again, yields no changes.
        let mut after = before.clone();
        apply(&mut after, &first);
        let second = plan(&config, &after);
        let leftover: Vec<String> = second.hubs.iter().flat_map(|h| h.changes.iter())
            .map(|c| format!("{} {} ({})", c.action.kind(), c.action.target(), c.reason)).collect();
        prop_assert!(leftover.is_empty(), "second pass plans {:#?}", leftover);

        let owned = owned_tables(&after, &config);
        let vnet_of = |subnet: &hubspoke_core::id::SubnetId| after.virtual_networks.iter().find(|v| v.id == *subnet.vnet());
        for table in after.route_tables.iter().filter(|t| owned.contains(&t.id.to_string().to_ascii_lowercase())) {
            let managed: Vec<Ipv4Net> = table.routes.iter().filter_map(managed_prefix).collect();
            // No table that hubspoke added to exceeds the limit.
            let added = first.hubs.iter().flat_map(|h| h.changes.iter()).any(|c| match &c.action {
                Action::UpsertRoute { target, before: None, .. } => target.route_table() == &table.id,
                Action::CreateRouteTable { target, .. } => target == &table.id,
                _ => false,
            });
            if added {
                prop_assert!(table.routes.len() <= config.route_limit, "{} has {} routes", table.id, table.routes.len());
            }
            // No managed route under a covering foreign appliance or None route.
            for route in &table.routes {
                if managed_prefix(route).is_some() { continue; }
                let RoutePrefix::Cidr(IpNet::V4(foreign)) = route.address_prefix else { continue };
                let covering = ["VirtualAppliance", "VirtualApplianceEcmp", "None"].contains(&route.next_hop_type.as_str());
                if !covering || (config.allow_over_default_route && foreign.prefix_len() == 0) { continue; }
                for prefix in &managed {
                    prop_assert!(!foreign.contains(prefix), "{} under {} in {}", prefix, foreign, table.id);
                }
            }
            // No managed route equal to or inside a prefix its subnets reach directly.
            for subnet in &table.subnets {
                let Some(vnet) = vnet_of(subnet) else { continue };
                let mut direct: Vec<Ipv4Net> = vnet.address_prefixes.iter().filter_map(v4).collect();
                for peering in vnet.peerings.iter().filter(|p| p.state == PeeringState::Connected) {
                    direct.extend(peering.remote_address_space.iter().filter_map(v4));
                    if let Some(hub) = after.virtual_networks.iter().find(|v| v.id == peering.remote_vnet) {
                        direct.extend(hub.address_prefixes.iter().filter_map(v4));
                    }
                }
                for prefix in &managed {
                    prop_assert!(!direct.iter().any(|d| d.contains(prefix)), "{} is reached directly from {}", prefix, subnet);
                }
            }
        }

        // Routing is symmetric: V has a route to W exactly when W has one to V.
        let routes_of = |vnet: &VnetId| -> Vec<Ipv4Net> {
            after.route_tables.iter()
                .filter(|t| owned.contains(&t.id.to_string().to_ascii_lowercase()))
                .filter(|t| t.subnets.iter().any(|s| s.vnet() == vnet))
                .flat_map(|t| t.routes.iter().filter_map(managed_prefix))
                .collect()
        };
        let spokes: Vec<&hubspoke_core::model::VirtualNetwork> = after.virtual_networks.iter()
            .filter(|v| !config.hubs.contains(&v.id))
            .filter(|v| v.subnets.iter().all(|s| s.route_table.as_ref().is_none_or(|t| owned.contains(&t.to_string().to_ascii_lowercase()))))
            .collect();
        let reach: Vec<(Vec<Ipv4Net>, Vec<Ipv4Net>)> = spokes.iter()
            .map(|v| (routes_of(&v.id), v.address_prefixes.iter().filter_map(v4).collect()))
            .collect();
        // A route delivers only where the gateway can hand the packet on: both VNets are connected
        // (both sides) with a common hub. A summary route also covers unpeered space; packets to
        // it die at the gateway, in both directions.
        let connected_hubs = |vnet: &hubspoke_core::model::VirtualNetwork| -> HashSet<String> {
            vnet.peerings.iter()
                .filter(|p| p.state == PeeringState::Connected && config.hubs.contains(&p.remote_vnet))
                .filter(|p| after.virtual_networks.iter().any(|h| h.id == p.remote_vnet
                    && h.peerings.iter().any(|b| b.remote_vnet == vnet.id && b.state == PeeringState::Connected)))
                .map(|p| p.remote_vnet.to_string().to_ascii_lowercase())
                .collect()
        };
        let hubs_of: Vec<HashSet<String>> = spokes.iter().map(|v| connected_hubs(v)).collect();
        let has_route = |from: usize, to: usize| {
            !hubs_of[from].is_disjoint(&hubs_of[to])
                && reach[from].0.iter().any(|r| reach[to].1.iter().any(|p| r.contains(p)))
        };
        for v in 0..spokes.len() {
            for w in v + 1..spokes.len() {
                prop_assert_eq!(has_route(v, w), has_route(w, v), "asymmetric: {} / {}", spokes[v].id, spokes[w].id);
            }
        }
    }
}
