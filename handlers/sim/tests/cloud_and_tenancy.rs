//! What a client needs to sign in to the simulator as it signs in to Azure: the cloud metadata
//! (`GET /metadata/endpoints`), the subscriptions and tenant of the caller (`GET /subscriptions`,
//! `GET /subscriptions/{id}`, `GET /tenants`), and managed identity tokens that are JWS signed
//! with the simulator's key, which ARM checks.
#![allow(clippy::unwrap_used)]

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{start_sim, vnet_id, Client, SUB};
use hubspoke_sim::SimConfig;
use serde_json::{json, Value};

const OTHER_SUB: &str = "00000000-0000-0000-0000-0000000000bb";

fn two_subscriptions() -> Value {
    let other = format!(
        "/subscriptions/{OTHER_SUB}/resourceGroups/rg-b/providers/Microsoft.Network/routeTables/rt"
    );
    json!({
        "virtualNetworks": [
            {"id": vnet_id("rg-a", "v1"), "location": "westeurope",
             "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]}}},
            {"id": vnet_id("rg-a", "v2"), "location": "westeurope",
             "properties": {"addressSpace": {"addressPrefixes": ["10.2.0.0/16"]}}},
        ],
        "routeTables": [{"id": other, "location": "westeurope", "properties": {"routes": []}}],
        "virtualNetworkGateways": [],
    })
}

async fn get_as(client: &Client, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client.http.get(client.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_cloud_metadata_points_at_the_simulator_in_both_shapes_without_a_token() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let base = format!("{}/", sim.arm_endpoint());

    let url = |version: &str| format!("{}/metadata/endpoints?api-version={version}", client.base);
    // 2022-09-01: one cloud object, as `az cloud register --endpoint-resource-manager` reads it.
    let response = client.http.get(url("2022-09-01")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cloud: Value = response.json().await.unwrap();
    assert_eq!(cloud["resourceManager"], base.as_str());
    assert_eq!(cloud["authentication"]["loginEndpoint"], base.as_str());
    assert_eq!(
        cloud["authentication"]["audiences"],
        json!([
            "https://management.core.windows.net/",
            "https://management.azure.com/"
        ])
    );
    assert_eq!(cloud["authentication"]["tenant"], "common");
    assert_eq!(cloud["authentication"]["identityProvider"], "AAD");
    assert!(cloud["name"].as_str().is_some_and(|name| !name.is_empty()));
    assert!(cloud["suffixes"].is_object());

    // 2019-05-01: the list of clouds, this one alone.
    let clouds: Value = client
        .http
        .get(url("2019-05-01"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(clouds, json!([cloud]));

    let refused = client.http.get(url("2021-01-01")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidApiVersionParameter");
    let missing = client
        .http
        .get(format!("{}/metadata/endpoints", client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 400);
    let posted = client.http.post(url("2022-09-01")).send().await.unwrap();
    assert_eq!(posted.status().as_u16(), 405);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_subscriptions_listed_are_those_of_the_estate_in_the_one_tenant() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let (status, empty) = get_as(&client, "/subscriptions", Some(&client.token)).await;
    assert_eq!(status, 200);
    assert_eq!(
        empty,
        json!({"value": [], "count": {"type": "Total", "value": 0}})
    );

    sim.load(&two_subscriptions()).unwrap();
    let (status, listed) = get_as(&client, "/subscriptions", Some(&client.token)).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&SUB) && ids.contains(&OTHER_SUB), "{ids:?}");
    assert_eq!(listed["count"], json!({"type": "Total", "value": 2}));
    assert!(listed.get("nextLink").is_none());
    let (_, tenants) = get_as(&client, "/tenants", Some(&client.token)).await;
    assert_eq!(tenants["value"].as_array().unwrap().len(), 1);
    let tenant = &tenants["value"][0];
    assert_eq!(tenant["tenantId"], hubspoke_sim::identity::TENANT_ID);
    assert_eq!(
        tenant["id"],
        format!("/tenants/{}", hubspoke_sim::identity::TENANT_ID)
    );
    assert_eq!(tenant["tenantCategory"], "Home");
    for subscription in listed["value"].as_array().unwrap() {
        assert_eq!(subscription["tenantId"], hubspoke_sim::identity::TENANT_ID);
        assert_eq!(subscription["state"], "Enabled");
        assert_eq!(subscription["authorizationSource"], "RoleBased");
        let id = subscription["subscriptionId"].as_str().unwrap();
        assert_eq!(subscription["id"], format!("/subscriptions/{id}"));
        assert!(subscription["subscriptionPolicies"]["quotaId"].is_string());
        // `Subscriptions - Get` answers the same object, the id matched case-insensitively.
        let (status, got) = get_as(
            &client,
            &format!("/subscriptions/{}", id.to_uppercase()),
            Some(&client.token),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(&got, subscription);
    }
    let (status, missing) = get_as(
        &client,
        "/subscriptions/00000000-0000-0000-0000-0000000000cc",
        Some(&client.token),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "SubscriptionNotFound");

    // They are ARM requests: a token and an api-version first.
    let (status, refused) = get_as(&client, "/subscriptions", None).await;
    assert_eq!(status, 401);
    assert_eq!(refused["error"]["code"], "AuthenticationFailed");
    let unversioned = client
        .http
        .get(format!("{}/tenants", client.base))
        .bearer_auth(&client.token)
        .send()
        .await
        .unwrap();
    assert_eq!(unversioned.status().as_u16(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn identity_tokens_are_jws_signed_here_and_arm_refuses_others() {
    let (sim, client) = start_sim(SimConfig::default()).await;
    let answer: Value = client
        .http
        .get(format!(
            "{}?api-version=2019-08-01&resource=https://management.core.windows.net/",
            sim.identity_endpoint()
        ))
        .header("X-IDENTITY-HEADER", sim.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"].as_str().unwrap();
    let segments: Vec<&str> = token.split('.').collect();
    assert_eq!(segments.len(), 3, "compact JWS: header.payload.signature");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[0]).unwrap()).unwrap();
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    assert!(token.starts_with(hubspoke_sim::identity::TOKEN_PREFIX));
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segments[1]).unwrap()).unwrap();
    assert_eq!(claims["tid"], hubspoke_sim::identity::TENANT_ID);
    assert_eq!(claims["aud"], "https://management.core.windows.net/");
    // HMAC-SHA-256: 32 bytes of base64url.
    assert_eq!(URL_SAFE_NO_PAD.decode(segments[2]).unwrap().len(), 32);

    let (status, _) = get_as(&client, &vnet_id("rg", "missing"), Some(token)).await;
    assert_eq!(status, 404, "the identity endpoint's token is accepted");

    // The same claims under another object id, or another signature, are refused.
    let mut forged_claims = claims.clone();
    forged_claims["oid"] = json!("00000000-0000-0000-0000-00000000beef");
    let forged = [
        format!(
            "{}.{}.{}",
            segments[0],
            URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
            segments[2]
        ),
        format!("{}.{}.sim", segments[0], segments[1]),
        "anything".to_string(),
    ];
    for token in &forged {
        let response = client
            .http
            .get(client.url(&vnet_id("rg", "missing")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    }
    sim.shutdown().await;
}
