//! Shared helpers of the simulator's integration tests: a small ARM client over reqwest and
//! polling with a bounded deadline (never sleeps for synchronisation).
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]
use std::time::{Duration, Instant};

use hubspoke_sim::{SimConfig, SimHandle};
use serde_json::{json, Value};

pub const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
pub const API: &str = "2026-01-01";

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn code(&self) -> String {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub fn vnet_id(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{name}")
}

pub fn table_id(rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/routeTables/{name}"
    )
}

pub fn gateway_id(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworkGateways/{name}")
}

pub async fn start_sim(config: SimConfig) -> (SimHandle, Client) {
    let handle = hubspoke_sim::start(config).await.expect("simulator starts");
    let client = Client {
        http: reqwest::Client::new(),
        base: handle.arm_endpoint(),
        token: handle.token_for("11111111-2222-3333-4444-555555555555"),
    };
    (handle, client)
}

impl Client {
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            return path.to_string();
        }
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{}{path}{sep}api-version={API}", self.base)
    }

    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None).await
    }

    /// Polls the `Azure-AsyncOperation` of `answer` until it leaves `InProgress`.
    pub async fn wait(&self, answer: &Answer) -> String {
        let url = answer
            .header("azure-asyncoperation")
            .expect("an LRO answer");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.get(&url).await;
            let state = status.body["status"].as_str().unwrap_or("").to_string();
            if state != "InProgress" {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "operation did not finish in time"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// PUT then wait for success; returns the final GET.
    pub async fn put_ok(&self, path: &str, body: Value) -> Value {
        let answer = self.put(path, body).await;
        assert!(
            answer.status == 200 || answer.status == 201,
            "PUT {path}: {} {}",
            answer.status,
            answer.body
        );
        assert_eq!(self.wait(&answer).await, "Succeeded");
        self.get(path).await.body
    }

    pub async fn delete_ok(&self, path: &str) {
        let answer = self.delete(path).await;
        assert_eq!(answer.status, 202, "DELETE {path}: {}", answer.body);
        assert_eq!(self.wait(&answer).await, "Succeeded");
    }

    pub async fn vnet(&self, rg: &str, name: &str, prefixes: &[&str], subnets: Value) -> Value {
        self.put_ok(
            &vnet_id(rg, name),
            json!({"location": "westus", "properties": {"addressSpace": {"addressPrefixes": prefixes}, "subnets": subnets}}),
        )
        .await
    }

    pub async fn peer(&self, from: &str, name: &str, to: &str, flags: Value) -> Answer {
        let mut properties = json!({
            "allowVirtualNetworkAccess": true, "allowForwardedTraffic": true,
            "allowGatewayTransit": false, "useRemoteGateways": false,
            "remoteVirtualNetwork": {"id": to}
        });
        for (k, v) in flags.as_object().unwrap() {
            properties[k] = v.clone();
        }
        self.put(
            &format!("{from}/virtualNetworkPeerings/{name}"),
            json!({"properties": properties}),
        )
        .await
    }

    pub async fn peer_ok(&self, from: &str, name: &str, to: &str, flags: Value) -> Value {
        let answer = self.peer(from, name, to, flags).await;
        assert!(
            answer.status == 200 || answer.status == 201,
            "peering {name}: {} {}",
            answer.status,
            answer.body
        );
        assert_eq!(self.wait(&answer).await, "Succeeded");
        self.get(&format!("{from}/virtualNetworkPeerings/{name}"))
            .await
            .body
    }

    /// Creates a gateway in `vnet`'s GatewaySubnet and waits for it.
    pub async fn gateway(&self, rg: &str, name: &str, vnet: &str) -> Value {
        self.put_ok(
            &gateway_id(rg, name),
            json!({"location": "westus", "properties": {
                "gatewayType": "Vpn", "vpnType": "RouteBased", "sku": {"name": "VpnGw1", "tier": "VpnGw1"},
                "ipConfigurations": [{"name": "default", "properties": {"subnet": {"id": format!("{vnet}/subnets/GatewaySubnet")}, "publicIPAddress": {"id": "/subscriptions/x/resourceGroups/r/providers/Microsoft.Network/publicIPAddresses/pip"}}}]
            }}),
        )
        .await
    }
}

pub fn nic_id(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}")
}

impl Client {
    /// POSTs `effectiveRouteTable` of `nic` and polls its `Location` to the 200: the routes.
    pub async fn effective_routes(&self, nic: &str) -> Vec<Value> {
        let answer = self
            .send("POST", &format!("{nic}/effectiveRouteTable"), None)
            .await;
        assert_eq!(answer.status, 202, "{}", answer.body);
        let location = answer.header("location").unwrap();
        let name = nic.rsplit('/').next().unwrap();
        assert!(
            location.contains(&format!("/networkInterfaces/{name}/operationResults/")),
            "{location}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let polled = self.get(&location).await;
            if polled.status == 200 {
                return polled.body["value"].as_array().unwrap().clone();
            }
            assert_eq!(polled.status, 202, "{}", polled.body);
            assert!(Instant::now() < deadline, "effective routes did not come");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Network Watcher's next hop from `source` to `destination` (its 200 body).
    pub async fn next_hop(&self, source: &str, destination: &str) -> Value {
        let watcher = format!("/subscriptions/{SUB}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_westus");
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
        );
        let answer = self
            .send(
                "POST",
                &format!("{watcher}/nextHop"),
                Some(json!({"targetResourceId": vm, "sourceIPAddress": source, "destinationIPAddress": destination})),
            )
            .await;
        assert_eq!(
            answer.status, 200,
            "next hop {source} -> {destination}: {}",
            answer.body
        );
        answer.body
    }
}

pub fn peering_of(vnet: &Value, name: &str) -> Value {
    vnet["properties"]["virtualNetworkPeerings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Polls `check` until it returns Some, for at most 10 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "condition not met in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
