//! The simulator's backend token endpoint: one identity per synthetic customer.

use std::time::Duration;

use cc_adapter_avaya::sim::{SIM_ACCOUNT_ID, SimOptions, Simulator, customer_config};
use cc_adapter_avaya::{AvayaConfig, AvayaSession};
use cc_core::{ChatRequest, Error, Session, TlsSettings, Vendor};
use cc_transport::{HeaderValue, HttpClient, HttpConfig, Method};

async fn sim() -> Simulator {
    Simulator::start(SimOptions {
        hold: Duration::from_secs(1),
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

async fn session(config: &cc_core::Config) -> AvayaSession {
    AvayaSession::connect(
        AvayaConfig::from_config(config).unwrap(),
        &TlsSettings::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn each_customer_token_is_its_own_customer() {
    let sim = sim().await;
    let base = sim.config().unwrap();
    let alice = customer_config(&base, "alice").await.unwrap();
    let bob = customer_config(&base, "bob").await.unwrap();
    assert_ne!(
        AvayaConfig::from_config(&alice).unwrap().token.expose(),
        AvayaConfig::from_config(&bob).unwrap().token.expose()
    );

    let a = session(&alice).await;
    let chat = a.start_chat(ChatRequest::default()).await.unwrap();
    // Another customer does not see Alice's engagement ...
    let b = session(&bob).await;
    assert!(b.user_context().engagements.is_empty());
    assert!(b.list_engagements().await.unwrap().is_empty());
    // ... a second session of Alice does.
    let again = customer_config(&base, "alice").await.unwrap();
    let a2 = session(&again).await;
    let listed = a2.user_context().engagements.clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].engagement_id, chat.id().as_str());
    for s in [a, b, a2] {
        s.shutdown().await.unwrap();
    }
}

/// A status and a body, for any answer.
async fn post(url: &str, appkey: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let base = url::Url::parse(url).unwrap();
    let mut config = HttpConfig::new(Vendor::Avaya, base).with_error_mapper(
        |v: Vendor, r: &cc_transport::ErrorResponse<'_>| Error::Rejected {
            vendor: v,
            code: r.status.as_u16().to_string(),
            message: String::from_utf8_lossy(r.body).into_owned(),
            retry_after: None,
        },
    );
    config
        .headers
        .insert("appkey", HeaderValue::from_str(appkey).unwrap());
    let http = HttpClient::new(config).unwrap();
    match http.request(Method::POST, url).json(&body).send().await {
        Ok(r) => (r.status.as_u16(), r.json().unwrap()),
        Err(Error::Rejected { code, message, .. }) => (
            code.parse().unwrap(),
            serde_json::from_str(&message).unwrap(),
        ),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn the_token_endpoint_checks_its_input() {
    let sim = sim().await;
    let url = format!(
        "{}/api/digital/chat/v1/accounts/{SIM_ACCOUNT_ID}/tokens",
        sim.host_url()
    );
    let integration = sim.options().integration_id.clone();
    let appkey = sim.options().appkey.clone();
    let ok = serde_json::json!({"integrationId": integration, "customerId": "c1"});
    let (status, body) = post(&url, &appkey, ok.clone()).await;
    assert_eq!(status, 201);
    assert!(body["jwtToken"].as_str().unwrap().starts_with("jwt."));

    assert_eq!(post(&url, "wrong", ok.clone()).await.0, 403);
    let other = url.replace(SIM_ACCOUNT_ID, "OTHERS");
    assert_eq!(post(&other, &appkey, ok).await.0, 404);

    for (body, field) in [
        (
            serde_json::json!({"integrationId": integration, "customerId": ""}),
            "customerId",
        ),
        (
            serde_json::json!({"integrationId": integration, "customerId": "c", "ttl": 5}),
            "ttl",
        ),
        (
            serde_json::json!({"integrationId": "x", "customerId": "c"}),
            "integrationId",
        ),
    ] {
        let (status, problem) = post(&url, &appkey, body).await;
        assert_eq!(status, 400);
        assert_eq!(problem["violations"][0]["field"], field, "{problem}");
    }
}
