//! `hubspoke demo`: the whole job on the embedded simulator, no Azure account needed.
//!
//! The source article's estate (a hub with a VPN gateway and spokes peered only from their own
//! side, with default flags), plus a spoke whose table sends everything to a firewall. The demo
//! plans, reconciles, shows the routes it wrote, reconciles again (nothing to do), then adds a
//! spoke as a landing zone would and reconciles once more.
use std::time::Duration;

use anyhow::Context;
use hubspoke_arm::client::ArmClient;
use hubspoke_arm::reconcile::{reconcile, ReconcileOptions};
use hubspoke_arm::settings::ArmSettings;
use hubspoke_core::config::PlanConfig;
use hubspoke_core::synth::{Estate, Flags};
use hubspoke_sim::{LatencySpec, Seed, SimConfig};
use serde_json::{json, Value};

fn estate() -> Estate {
    let mut estate = Estate::default();
    estate.hub("hub", "10.0.0.0/16", "10.0.255.0/27", Some("Succeeded"));
    for (name, prefix, subnet) in [
        ("spoke1", "10.1.0.0/16", "10.1.0.0/24"),
        ("spoke2", "10.2.0.0/16", "10.2.0.0/24"),
        ("spoke3", "10.3.0.0/16", "10.3.0.0/24"),
    ] {
        estate.vnet(name, &[prefix], &[("workload", subnet)]);
        estate.peer(name, "hub", Flags::default(), "Initiated");
    }
    estate.table(
        "spoke3-firewall",
        &[("default", "0.0.0.0/0", "VirtualAppliance", Some("10.0.1.4"))],
        json!({"owner": "security"}),
    );
    estate.associate("spoke3", "workload", "spoke3-firewall");
    estate
}

fn heading(text: &str) {
    println!("\n=== {text}");
}

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    let estate = estate();
    let sim = hubspoke_sim::start(SimConfig {
        tls: true,
        seed: Some(Seed::Value(estate.snapshot())),
        latency: LatencySpec {
            lro: Duration::from_millis(300),
            delete: Duration::from_millis(300),
            ..LatencySpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .context("starting the embedded simulator")?;
    // The simulator's KEY=value settings are this process's environment, as a shell would take
    // them from `hubspoke sim` (azure_identity reads the managed identity's from there).
    for (key, value) in sim.env() {
        std::env::set_var(key, value);
    }
    let mut settings = ArmSettings::from_settings(|name| std::env::var(name).ok())?;
    settings.retry.base_delay = Duration::from_millis(100);
    let credential = hubspoke_arm::credential::credential(&settings)?;
    let client = ArmClient::new(&settings, credential)?;
    let config = PlanConfig::new(vec![estate.vnet_id("hub").parse()?]);
    let options = ReconcileOptions::default();

    println!(
        "hubspoke demo on the embedded simulator ({})",
        sim.arm_endpoint()
    );
    println!("A hub with a VPN gateway; spoke1, spoke2 and spoke3 peered only from their side, with default flags;");
    println!("spoke3's subnet sends 0.0.0.0/0 to a firewall.");

    heading("hubspoke plan");
    let observation = hubspoke_arm::observe::observe(&client, &config.hubs, None).await?;
    let plan = hubspoke_core::plan::plan(&config, &observation.observed);
    print!("{}", hubspoke_core::plan::render::text(&plan));

    heading("hubspoke reconcile");
    let (result, _) = reconcile(&client, &config, &options, None).await?;
    print!("{}", result.text());

    heading("route tables after the pass");
    print_tables(&client, &estate).await?;

    heading("hubspoke reconcile, again: nothing to do, no write");
    let (again, _) = reconcile(&client, &config, &options, None).await?;
    print!("{}", again.text());

    heading("a landing zone adds spoke4 (10.4.0.0/16), peered from its side");
    for (path, body) in estate.landing_zone_spoke("spoke4", "10.4.0.0/16", "10.4.0.0/24", "hub") {
        client.put(&path, None, &body).await?;
    }
    let (added, _) = reconcile(&client, &config, &options, None).await?;
    print!("{}", added.text());
    print_tables(&client, &estate).await?;

    sim.shutdown().await;
    println!("\nDone. `hubspoke sim` runs this simulator on its own; `hubspoke plan --snapshot` plans offline.");
    Ok(())
}

async fn print_tables(client: &ArmClient, estate: &Estate) -> anyhow::Result<()> {
    let path = format!(
        "/subscriptions/{}/providers/Microsoft.Network/routeTables",
        estate.subscription
    );
    let mut tables = client.list(&path).await?;
    tables.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    for table in tables {
        println!("  {}", table["name"].as_str().unwrap_or_default());
        let routes: Vec<&Value> = table["properties"]["routes"]
            .as_array()
            .map(|r| r.iter().collect())
            .unwrap_or_default();
        for route in routes {
            let properties = &route["properties"];
            println!(
                "    {:<24} {:<18} -> {}{}",
                route["name"].as_str().unwrap_or_default(),
                properties["addressPrefix"].as_str().unwrap_or_default(),
                properties["nextHopType"].as_str().unwrap_or_default(),
                properties["nextHopIpAddress"]
                    .as_str()
                    .map(|ip| format!(" {ip}"))
                    .unwrap_or_default(),
            );
        }
    }
    Ok(())
}
