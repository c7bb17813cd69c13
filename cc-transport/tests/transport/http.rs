//! The HTTP client against a local axum server.

use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::Multipart as AxumMultipart;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, body::Bytes};
use cc_core::{Error, Secret, Vendor};
use cc_transport::{ErrorResponse, HeaderValue, HttpClient, HttpConfig, Method, Multipart, header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use crate::server::serve;

fn auth_of(headers: &HeaderMap) -> Value {
    headers
        .get("authorization")
        .map(|v| Value::String(v.to_str().unwrap().to_owned()))
        .unwrap_or(Value::Null)
}

fn router() -> Router {
    Router::new()
        .route(
            "/echo",
            post(|headers: HeaderMap, Json(body): Json<Value>| async move {
                Json(json!({ "body": body, "auth": auth_of(&headers) }))
            })
            .put(|Json(body): Json<Value>| async move { Json(json!({ "put": body })) })
            .delete(|| async { StatusCode::NO_CONTENT }),
        )
        .route(
            "/query",
            get(|uri: axum::http::Uri| async move { Json(json!({ "query": uri.query() })) }),
        )
        .route(
            "/busy",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "7")],
                    "slow down",
                )
            }),
        )
        .route(
            "/busy-date",
            get(|| async {
                let at = httpdate_in(Duration::from_secs(30));
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", at)], "")
            }),
        )
        .route(
            "/expired",
            get(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"code": "credentials.expired", "message": "token expired"})),
                )
            }),
        )
        .route(
            "/too-long",
            post(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"errorCode": 4011, "errorMessage": "text too long"})),
                )
            }),
        )
        .route("/not-json", get(|| async { "oops" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route("/upload", post(upload))
        .route(
            "/presigned",
            put(|headers: HeaderMap, body: Bytes| async move {
                Json(json!({
                    "auth": auth_of(&headers),
                    "type": headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()),
                    "tag": headers.get("x-amz-tagging").map(|v| v.to_str().unwrap().to_owned()),
                    "len": body.len(),
                }))
            }),
        )
}

/// An IMF-fixdate `after` from now.
fn httpdate_in(after: Duration) -> String {
    let t = (SystemTime::now() + after)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m - 1) as usize];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} GMT",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

async fn upload(mut form: AxumMultipart) -> impl IntoResponse {
    let mut parts = Vec::new();
    while let Some(field) = form.next_field().await.unwrap() {
        let name = field.name().map(str::to_owned);
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let data = field.bytes().await.unwrap();
        parts.push(json!({
            "name": name, "file_name": file_name, "content_type": content_type,
            "len": data.len(), "text": String::from_utf8_lossy(&data),
        }));
    }
    Json(json!({ "parts": parts }))
}

async fn client(mutate: impl FnOnce(HttpConfig) -> HttpConfig) -> (HttpClient, Url) {
    let addr = serve(router()).await;
    let base = Url::parse(&format!("http://{addr}/")).unwrap();
    let config = mutate(HttpConfig::new(Vendor::Genesys, base.clone()));
    (HttpClient::new(config).unwrap(), base)
}

#[derive(Serialize)]
struct Note<'a> {
    text: &'a str,
}

#[derive(Deserialize, Debug)]
struct Echoed {
    body: Value,
    auth: Value,
}

#[tokio::test]
async fn json_round_trip_with_bearer_and_query() {
    let (http, _) = client(|c| c.with_bearer(Secret::new("tok-123"))).await;
    let echoed: Echoed = http.post_json("/echo", &Note { text: "hi" }).await.unwrap();
    assert_eq!(echoed.body, json!({"text": "hi"}));
    assert_eq!(echoed.auth, "Bearer tok-123");

    http.set_bearer(Some(Secret::new("tok-456")));
    let echoed: Echoed = http.post_json("/echo", &json!([1, 2])).await.unwrap();
    assert_eq!(echoed.auth, "Bearer tok-456");
    http.set_bearer(None);
    let echoed: Echoed = http.post_json("/echo", &json!(null)).await.unwrap();
    assert_eq!(echoed.auth, Value::Null);

    let put: Value = http.put_json("/echo", &json!({"a": 1})).await.unwrap();
    assert_eq!(put, json!({"put": {"a": 1}}));
    http.delete("/echo").await.unwrap();

    let q: Value = http
        .request(Method::GET, "/query")
        .query(&[("pageSize", "25"), ("pageNumber", "2")])
        .send_json()
        .await
        .unwrap();
    assert_eq!(q, json!({"query": "pageSize=25&pageNumber=2"}));

    // No secret in Debug output.
    let config = HttpConfig::new(Vendor::Genesys, Url::parse("https://x.invalid/").unwrap())
        .with_bearer(Secret::new("tok-123"));
    assert!(!format!("{config:?} {http:?}").contains("tok-"));
}

#[tokio::test]
async fn retry_after_in_seconds_and_as_a_date() {
    let (http, _) = client(|c| c).await;
    let err = http.get_json::<Value>("/busy").await.unwrap_err();
    assert!(
        matches!(&err, Error::Rejected { vendor: Vendor::Genesys, code, .. } if code == "429"),
        "{err:?}"
    );
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_retryable());
    assert!(err.to_string().contains("GET /busy"), "{err}");

    let err = http.get_json::<Value>("/busy-date").await.unwrap_err();
    assert_eq!(err.vendor_code(), Some("503"));
    let wait = err.retry_after().unwrap();
    assert!(
        wait >= Duration::from_secs(28) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
}

#[tokio::test]
async fn error_mapping_default_and_adapter_supplied() {
    let (http, _) = client(|c| c).await;
    let err = http.get_json::<Value>("/expired").await.unwrap_err();
    assert!(
        matches!(&err, Error::Auth { code: Some(c), message, .. }
            if c == "credentials.expired" && message.contains("token expired")),
        "{err:?}"
    );

    let err = http
        .post_json::<_, Value>("/too-long", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.vendor_code(), Some("4011"));

    // An adapter's own table, falling back to the generic mapping.
    let (http, _) = client(|c| {
        c.with_error_mapper(|vendor: Vendor, r: &ErrorResponse<'_>| {
            let json: Value = serde_json::from_slice(r.body).unwrap_or_default();
            if json["errorCode"] == 4011 {
                Error::invalid(vendor, "text", "longer than the vendor allows")
            } else {
                r.default_error(vendor)
            }
        })
    })
    .await;
    let err = http
        .post_json::<_, Value>("/too-long", &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "text"),
        "{err:?}"
    );
    let err = http.get_json::<Value>("/busy").await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn unparsable_body_is_a_protocol_error_naming_the_endpoint() {
    let (http, _) = client(|c| c).await;
    let err = http
        .get_json::<Value>("/not-json?secret=abc")
        .await
        .unwrap_err();
    match &err {
        Error::Protocol { vendor, frame, .. } => {
            assert_eq!(*vendor, Vendor::Genesys);
            assert_eq!(frame, "response body of GET /not-json");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("secret"));
}

#[tokio::test]
async fn multipart_upload() {
    let (http, _) = client(|c| c.with_bearer(Secret::new("t"))).await;
    let form = Multipart::new().text("conversationId", "c-1").file(
        "file",
        "hello.txt",
        "text/plain",
        b"hello file".to_vec(),
    );
    let reply: Value = http.upload("/upload", form).await.unwrap();
    assert_eq!(
        reply["parts"],
        json!([
            {"name": "conversationId", "file_name": null, "content_type": null, "len": 3, "text": "c-1"},
            {"name": "file", "file_name": "hello.txt", "content_type": "text/plain", "len": 10, "text": "hello file"},
        ])
    );
    let bad = Multipart::new().file("f", "x", "not a mime", vec![1]);
    let err = http.upload::<Value>("/upload", bad).await.unwrap_err();
    assert!(matches!(&err, Error::InvalidInput { field, .. } if field == "content_type"));
}

#[tokio::test]
async fn presigned_put_to_another_origin_carries_no_token() {
    let (http, _) = client(|c| c.with_bearer(Secret::new("tok"))).await;
    // A second server is another origin, like an object store.
    let store = serve(router()).await;
    let mut headers = cc_transport::HeaderMap::new();
    headers.insert("x-amz-tagging", HeaderValue::from_static("a=b"));
    let url = format!("http://{store}/presigned?X-Amz-Signature=abc");
    http.put_bytes(&url, "image/png", headers.clone(), vec![0u8; 1000].into())
        .await
        .unwrap();
    let reply: Value = http
        .request(Method::PUT, &url)
        .headers(headers)
        .bytes(vec![0u8; 5].into(), "image/png")
        .send_json()
        .await
        .unwrap();
    assert_eq!(
        reply,
        json!({"auth": null, "type": "image/png", "tag": "a=b", "len": 5})
    );
    // Same origin as the base URL: the token goes along.
    let reply: Value = http
        .request(Method::PUT, "/presigned")
        .bytes(vec![1u8].into(), "application/octet-stream")
        .send_json()
        .await
        .unwrap();
    assert_eq!(reply["auth"], "Bearer tok");
    let _ = header::AUTHORIZATION;
}

#[tokio::test]
async fn per_request_timeout() {
    let (http, _) = client(|c| c).await;
    let started = std::time::Instant::now();
    let err = http
        .request(Method::GET, "/slow")
        .timeout(Duration::from_millis(150))
        .send_empty()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { vendor: Vendor::Genesys, after, .. } if after == Duration::from_millis(150)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
}
