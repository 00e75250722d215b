//! `hubspoke demo`: the zero-touch story on one machine, no Azure account needed.
//!
//! Everything runs as it would in Azure but the Azure part: the simulator plays ARM (with a hub
//! and its VPN gateway), Event Grid (it delivers ARM's events) and the managed identity; the
//! local Functions host runs this very binary as the custom handler (`hubspoke serve`) from the
//! repository's `host.json` and `function-definitions/`; queues are Azurite when it is installed
//! under `tests/node_modules`, else the simulator's in-memory queues. The demo then acts as a
//! landing zone: it creates spokes the way a user does (a VNet, then the spoke side of the
//! peering with default flags) and only watches: each event as it arrives, each pass and what it
//! changed and why, the final routes and flags. Then it adds a spoke, renumbers one, deletes one,
//! and shows `hubspoke results`. It ends with `hubspoke verify --effective all`: a VM's network
//! interface in each spoke, and every pair of spokes checked, against the interfaces' effective
//! routes too. It exits 0 only if the estate converged and every pair reaches the other.
use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hubspoke_core::id::portal_name;
use hubspoke_core::synth::Estate;
use hubspoke_sim::LatencySpec;
use hubspoke_stack::{Options, Stack};
use serde_json::Value;

use crate::results::{self, Reader};

/// How long the demo waits for the estate to converge after each step.
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    let mut options = Options::new(estate);
    // host.json's own queue timings, as in Azure.
    options.settings.clear();
    options.binary = Some(std::env::current_exe().context("finding this binary")?);
    // Operations take 300 ms and ARM tells clients to poll after a second: slow enough to
    // watch, fast enough to finish within a minute or two.
    options.latency = LatencySpec {
        lro: Duration::from_millis(300),
        delete: Duration::from_millis(300),
        retry_after_secs: 1,
        ..LatencySpec::default()
    };
    let stack = Stack::start(options)
        .await
        .context("starting the simulator, the queues and the local Functions host")?;
    let outcomes = stack.queue(results::OUTCOME_QUEUE)?;
    outcomes.create_if_missing().await?;
    let mut story = Story {
        stack: &stack,
        reader: Reader::new(outcomes),
        passes_seen: HashSet::new(),
    };

    println!("hubspoke demo: zero touch, on one machine");
    println!(
        "  Azure:     the simulator (ARM {}, Event Grid delivery, managed identity)",
        stack.sim.arm_endpoint()
    );
    println!(
        "  Functions: the local host {} running `hubspoke serve` from host.json and function-definitions/",
        stack.host.url()
    );
    println!("             (in Azure, the real Functions host runs the same files)");
    println!(
        "  queues:    hubspoke-work and hubspoke-outcomes in {}",
        stack.storage
    );
    println!(
        "  The hub {} has a VPN gateway and no spoke yet.",
        portal_name(&stack.hub().to_string())
    );

    heading("A landing zone creates spoke1, spoke2 and spoke3: a VNet, then the spoke side of the peering, default flags");
    for (name, n) in [("spoke1", 1), ("spoke2", 2), ("spoke3", 3)] {
        stack
            .add_spoke(name, &format!("10.{n}.0.0/16"), &format!("10.{n}.0.0/24"))
            .await?;
    }
    story.watch().await?;
    heading("Each spoke now: its peering with the hub and the routes hubspoke keeps in its table");
    print_state(&stack).await?;

    heading("A landing zone adds spoke4 (10.4.0.0/16)");
    stack
        .add_spoke("spoke4", "10.4.0.0/16", "10.4.0.0/24")
        .await?;
    story.watch().await?;

    heading("spoke2 is renumbered: 10.20.0.0/16 added to its address space");
    let spoke2 = stack.estate.vnet_id("spoke2");
    let mut vnet = stack.landing_zone.get(&spoke2).await?;
    vnet["properties"]["addressSpace"]["addressPrefixes"] =
        serde_json::json!(["10.2.0.0/16", "10.20.0.0/16"]);
    hubspoke_stack::strip_read_only(&mut vnet);
    stack.landing_zone.put(&spoke2, None, &vnet).await?;
    story.watch().await?;

    heading("spoke3 is deleted");
    stack
        .landing_zone
        .delete(&stack.estate.vnet_id("spoke3"))
        .await?;
    story.watch().await?;
    print_state(&stack).await?;

    heading("hubspoke results (the queue hubspoke-outcomes; nothing is removed by reading it)");
    // What the story read is visible again after its one-second visibility timeout.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut reader = Reader::new(stack.queue(results::OUTCOME_QUEUE)?);
    let all = reader.sweep().await?;
    print!("{}", results::table(&all, true));

    heading("hubspoke verify --effective all: a VM's network interface in each spoke, and every pair of spokes checked, against Azure's effective routes of each interface too");
    let verified = verify_every_pair(&stack).await?;

    let pending = stack.pending_changes()?;
    let converged = pending == 0;
    println!();
    if converged {
        println!(
            "Converged: a plan of the estate as it now stands has nothing left to do. {} outcomes, {:.0} s in all.",
            all.len(),
            started.elapsed().as_secs_f64()
        );
        println!("`hubspoke sim`, `hubspoke host` and `hubspoke results` run these parts on their own (README).");
    }
    stack.stop().await?;
    if !converged {
        bail!("the estate did not converge: a plan of the estate as it now stands still has {pending} changes");
    }
    if !verified {
        bail!("some pair of spokes does not reach the other through the gateway (above)");
    }
    Ok(())
}

/// Creates a network interface in each spoke's workload subnet (as a VM would have), then
/// verifies every pair live, reading every interface's effective routes; prints the table.
async fn verify_every_pair(stack: &Stack) -> anyhow::Result<bool> {
    let estate = &stack.estate;
    for spoke in ["spoke1", "spoke2", "spoke4"] {
        let nic = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/networkInterfaces/{spoke}-vm-nic",
            estate.subscription, estate.resource_group
        );
        let subnet = format!("{}/subnets/workload", estate.vnet_id(spoke));
        let body = serde_json::json!({"location": estate.location, "properties": {"ipConfigurations": [
            {"name": "ipconfig1", "properties": {"subnet": {"id": subnet}}}]}});
        stack.landing_zone.put(&nic, None, &body).await?;
    }
    let scope = match &stack.subscriptions {
        Some(listed) => hubspoke_core::config::Scope::Listed(listed.clone()),
        None => hubspoke_core::config::Scope::Reached,
    };
    let hubs = crate::verify::verify_live(
        &stack.arm,
        &stack.config,
        &scope,
        hubspoke_arm::effective::EffectiveMode::All,
    )
    .await?;
    print!("{}", crate::verify::table(&hubs));
    Ok(hubs.iter().all(crate::verify::Verified::fine))
}

fn heading(text: &str) {
    println!("\n=== {text}");
}

/// What the story has printed so far, and how it reads the outcomes.
struct Story<'a> {
    stack: &'a Stack,
    reader: Reader,
    passes_seen: HashSet<String>,
}

impl Story<'_> {
    /// Prints outcomes as they arrive until a plan of the estate is empty and no outcome came for a
    /// couple of seconds.
    async fn watch(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut quiet_since = Instant::now();
        let mut own_events = 0;
        loop {
            let outcomes = self.reader.sweep().await?;
            if !outcomes.is_empty() {
                quiet_since = Instant::now();
            }
            for outcome in &outcomes {
                own_events += self.print_outcome(outcome);
            }
            if quiet_since.elapsed() > Duration::from_secs(2) && self.stack.pending_changes()? == 0
            {
                break;
            }
            if start.elapsed() > CONVERGE_LIMIT {
                bail!("not converged after {CONVERGE_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if own_events > 0 {
            println!("  ({own_events} events of hubspoke's own writes arrived too: acknowledged, no pass)");
        }
        println!("  converged in {:.1} s", start.elapsed().as_secs_f64());
        Ok(())
    }

    /// Prints one outcome; returns 1 for an event hubspoke caused itself (counted, not printed).
    fn print_outcome(&mut self, outcome: &Value) -> usize {
        let text = |value: &Value| value.as_str().unwrap_or("").to_string();
        match outcome["function"].as_str() {
            Some("OnNetworkEvent") => {
                let event = &outcome["trigger"]["events"][0];
                let verb = text(&event["operation"])
                    .rsplit('/')
                    .next()
                    .unwrap_or("event")
                    .to_string();
                let subject = portal_name(&text(&event["subject"]));
                match outcome["status"].as_str() {
                    Some("queued") => {
                        let hubs: Vec<String> = outcome["hubs"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|hub| portal_name(&text(&hub["hub"])))
                            .collect();
                        println!("  event  {verb} {subject} → hub {} queued", hubs.join(", "));
                    }
                    Some("ignored") if text(&outcome["reason"]).contains("own identity") => {
                        return 1;
                    }
                    Some(status) => {
                        println!(
                            "  event  {verb} {subject} → {status}: {}",
                            text(&outcome["reason"])
                        );
                    }
                    None => {}
                }
            }
            Some("ReconcileHub") => {
                let pass = text(&outcome["pass"]["id"]);
                if !self.passes_seen.insert(pass) {
                    return 0;
                }
                for hub in outcome["hubs"].as_array().into_iter().flatten() {
                    let changes = hub["changes"].as_array().map_or(0, Vec::len);
                    let status = text(&hub["status"]);
                    if changes == 0 {
                        println!(
                            "  pass   {}: {status}, nothing to do",
                            portal_name(&text(&hub["hub"]))
                        );
                        continue;
                    }
                    println!(
                        "  pass   {}: {status}, {changes} changes in {:.1} s",
                        portal_name(&text(&hub["hub"])),
                        outcome["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0
                    );
                    for change in hub["changes"].as_array().into_iter().flatten() {
                        let mark = match change["status"].as_str() {
                            Some("applied") => "✓",
                            Some("failed") => "✗",
                            _ => "-",
                        };
                        println!(
                            "         {mark} {} {}",
                            text(&change["kind"]),
                            portal_name(&text(&change["target"]))
                        );
                        println!("             {}", text(&change["reason"]));
                    }
                    for warning in hub["warnings"].as_array().into_iter().flatten() {
                        println!(
                            "         ! {} {}: {}",
                            text(&warning["code"]),
                            portal_name(&text(&warning["target"])),
                            text(&warning["message"])
                        );
                    }
                }
            }
            Some(function) => println!("  {function}: {}", text(&outcome["status"])),
            None => {}
        }
        0
    }
}

/// Each spoke: its peering flags on both sides and the routes of its subnets' tables.
async fn print_state(stack: &Stack) -> anyhow::Result<()> {
    let subscription = &stack.estate.subscription;
    let vnets = stack
        .arm
        .list(&format!(
            "/subscriptions/{subscription}/providers/Microsoft.Network/virtualNetworks"
        ))
        .await?;
    let tables = stack
        .arm
        .list(&format!(
            "/subscriptions/{subscription}/providers/Microsoft.Network/routeTables"
        ))
        .await?;
    let hub_id = stack.hub().to_string();
    let hub = vnets.iter().find(|v| {
        v["id"]
            .as_str()
            .is_some_and(|id| id.eq_ignore_ascii_case(&hub_id))
    });
    let mut spokes: Vec<&Value> = vnets
        .iter()
        .filter(|v| {
            !v["id"]
                .as_str()
                .is_some_and(|id| id.eq_ignore_ascii_case(&hub_id))
        })
        .collect();
    spokes.sort_by_key(|v| v["name"].as_str().unwrap_or("").to_string());
    for spoke in spokes {
        let name = spoke["name"].as_str().unwrap_or("");
        let prefixes: Vec<&str> = spoke["properties"]["addressSpace"]["addressPrefixes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!("  {name} ({})", prefixes.join(", "));
        let spoke_id = spoke["id"].as_str().unwrap_or("");
        let to_hub = peerings(spoke).find(|p| remote(p).eq_ignore_ascii_case(&hub_id));
        let from_hub =
            hub.and_then(|hub| peerings(hub).find(|p| remote(p).eq_ignore_ascii_case(spoke_id)));
        if let (Some(to_hub), Some(from_hub)) = (to_hub, from_hub) {
            println!(
                "    peering  spoke→hub {}: allowForwardedTraffic={} useRemoteGateways={}; hub→spoke {}: allowForwardedTraffic={} allowGatewayTransit={}",
                to_hub["properties"]["peeringState"].as_str().unwrap_or("?"),
                to_hub["properties"]["allowForwardedTraffic"],
                to_hub["properties"]["useRemoteGateways"],
                from_hub["properties"]["peeringState"].as_str().unwrap_or("?"),
                from_hub["properties"]["allowForwardedTraffic"],
                from_hub["properties"]["allowGatewayTransit"],
            );
        }
        for subnet in spoke["properties"]["subnets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let table_id = subnet["properties"]["routeTable"]["id"]
                .as_str()
                .unwrap_or("");
            let table = tables.iter().find(|t| {
                t["id"]
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(table_id))
            });
            let routes: Vec<String> = table
                .map(|t| {
                    t["properties"]["routes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|r| {
                            format!(
                                "{} → {}",
                                r["properties"]["addressPrefix"].as_str().unwrap_or(""),
                                r["properties"]["nextHopType"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            println!(
                "    subnet   {}: table {}: {}",
                subnet["name"].as_str().unwrap_or(""),
                if table_id.is_empty() {
                    "(none)".to_string()
                } else {
                    portal_name(table_id)
                },
                if routes.is_empty() {
                    "no routes".to_string()
                } else {
                    routes.join(", ")
                }
            );
        }
    }
    if let Some(hub) = hub {
        for peering in peerings(hub) {
            if peering["properties"]["peeringState"] == "Disconnected" {
                println!(
                    "  hub peering {} is Disconnected (its spoke is gone): hubspoke warns and leaves it for its owner to delete",
                    peering["name"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

fn peerings(vnet: &Value) -> impl Iterator<Item = &Value> {
    vnet["properties"]["virtualNetworkPeerings"]
        .as_array()
        .into_iter()
        .flatten()
}

fn remote(peering: &Value) -> &str {
    peering["properties"]["remoteVirtualNetwork"]["id"]
        .as_str()
        .unwrap_or("")
}
