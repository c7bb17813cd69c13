//! The simulator's REST services, under a deployment's URL layout.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cc_testkit::Direction;
use serde_json::{Value, json};

use super::Shared;

type Sh = State<Arc<Shared>>;

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// Records the request; refuses it with 401 when a Bearer token is required and missing.
fn enter(
    sh: &Shared,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: Value,
    needs_token: bool,
) -> Result<(), Box<Response>> {
    let auth = bearer(headers).map(str::to_owned);
    sh.record(
        Direction::ClientToServer,
        format!("{method} {path}"),
        json!({"authorization": auth, "body": body}),
    );
    if needs_token && !sh.bearer_ok(auth.as_deref()) {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "missing or invalid token"})),
            )
                .into_response(),
        ));
    }
    Ok(())
}

fn query_value(q: &HashMap<String, String>) -> Value {
    let mut keys: Vec<&String> = q.keys().collect();
    keys.sort();
    Value::Object(
        keys.into_iter()
            .map(|k| (k.clone(), Value::from(q[k].clone())))
            .collect(),
    )
}

pub(crate) fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/ccm/widget-configs/{id}", get(widget_configs))
        .route("/ccm/message", get(history))
        .route("/file-engine/api/uploadFileStream", post(upload))
        .route("/file-engine/api/downloadFileStream", get(download))
        .route(
            "/conversation-manager/customer-topics/{id}/conversation-data",
            get(get_conversation_data).post(set_conversation_data),
        )
        .route(
            "/conversation-manager/customer-topics/{id}/conversation-data-by-identifier",
            post(set_customer_data),
        )
        .route(
            "/conversation-manager/customer-topics/get/{id}",
            get(get_customer_data),
        )
        .route("/conversation-manager/activities", post(activity))
        .route("/unified-admin/forms/{id}", get(form))
        .route("/unified-admin/formValidation", get(form_validation))
        .route(
            "/business-calendar/channels/service-identifier/{id}",
            get(calendar_of),
        )
        .route("/business-calendar/calendars/events", get(calendar_events))
        .route("/callback/request", post(callback))
        .with_state(sh)
}

async fn widget_configs(State(sh): Sh, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = enter(
        &sh,
        "GET",
        &format!("/ccm/widget-configs/{id}"),
        &headers,
        Value::Null,
        false,
    ) {
        return *r;
    }
    if id != sh.opts.widget_identifier {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "widget not found"})),
        )
            .into_response();
    }
    axum::Json(json!({
        "id": "629dd96ac2fc5e06bf842c19",
        "widgetIdentifier": id,
        "theme": "yellow_theme",
        "title": "Simulated widget",
        "subTitle": "Contact center",
        "enableFontResize": true,
        "enableEmoji": true,
        "enableFileTransfer": true,
        "enableDynamicLink": true,
        "enableDownloadTranscript": true,
        "customerReconnectTime": 100,
        "language": {"code": "en", "policy": null},
        "form": "prechat-form-1",
        "webRtc": web_rtc(&sh),
        "callback": {
            "enableCallback": true,
            "callbackUrl": format!("{}/callback/request", sh.base),
            "campaignId": "42",
            "allowDuplicate": false,
            "callBackForm": null,
            "standaloneCallback": false
        },
        "webhook": null,
        "additionalSchema": [],
        "additionalValues": []
    }))
    .into_response()
}

/// The widget config's `webRtc` block: where the switch is and what to dial.
fn web_rtc(sh: &Shared) -> Value {
    if !sh.opts.web_rtc {
        return Value::Null;
    }
    json!({
        "enableWebRtc": true,
        "diallingUri": super::DIALLING_URI,
        "sipExtension": super::EXTENSION,
        "extensionPassword": super::PASSWORD,
        "enabledSipLogs": false,
        "channel": "web",
        "websocket": "ws",
        "wssFs": sh.switch_url,
        "uriFs": super::SIP_DOMAIN,
        "iceServers": []
    })
}

async fn history(
    State(sh): Sh,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = enter(&sh, "GET", "/ccm/message", &headers, query_value(&q), true) {
        return *r;
    }
    let conv = q.get("conversationId").cloned().unwrap_or_default();
    let st = sh.lock();
    match st.chats.get(&conv) {
        Some(c) => axum::Json(serde_json::to_value(&c.history).unwrap_or_default()).into_response(),
        None => axum::Json(json!([])).into_response(),
    }
}

async fn upload(State(sh): Sh, headers: HeaderMap, mut form: Multipart) -> Response {
    let mut file: Option<(String, String, Bytes)> = None;
    let mut conversation: Option<String> = None;
    while let Ok(Some(field)) = form.next_field().await {
        match field.name() {
            Some("file") => {
                let name = field.file_name().unwrap_or("file").to_owned();
                let mime = field
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned();
                match field.bytes().await {
                    Ok(b) => file = Some((name, mime, b)),
                    Err(_) => return StatusCode::BAD_REQUEST.into_response(),
                }
            }
            Some("conversationId") => conversation = field.text().await.ok(),
            _ => {}
        }
    }
    let conv_shown = match &conversation {
        Some(c) if c.len() == 5 && c.chars().all(|x| x.is_ascii_digit()) => {
            "<five digits>".to_owned()
        }
        Some(c) => c.clone(),
        None => "<missing>".to_owned(),
    };
    let described = json!({
        "file": file.as_ref().map(|(n, m, b)| json!({"name": n, "type": m, "size": b.len()})),
        "conversationId": conv_shown,
    });
    if let Err(r) = enter(
        &sh,
        "POST",
        "/file-engine/api/uploadFileStream",
        &headers,
        described,
        true,
    ) {
        return *r;
    }
    let Some((name, mime, bytes)) = file else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "no file"})),
        )
            .into_response();
    };
    if bytes.len() > sh.opts.max_upload_bytes {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            axum::Json(json!({"message": "File too large"})),
        )
            .into_response();
    }
    let stored = {
        let mut st = sh.lock();
        st.seq += 1;
        let stored = format!("{}_{name}", 10_000 + st.seq);
        st.files
            .insert(stored.clone(), (mime.clone(), bytes.to_vec()));
        stored
    };
    axum::Json(json!({
        "message": "File uploaded successfully",
        "etag": "9109239e595cd2706c3b2180594351b6",
        "name": stored,
        "type": mime,
        "size": bytes.len(),
    }))
    .into_response()
}

async fn download(
    State(sh): Sh,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = enter(
        &sh,
        "GET",
        "/file-engine/api/downloadFileStream",
        &headers,
        query_value(&q),
        true,
    ) {
        return *r;
    }
    let name = q.get("filename").cloned().unwrap_or_default();
    match sh.lock().files.get(&name) {
        Some((mime, bytes)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "file not found"})),
        )
            .into_response(),
    }
}

async fn get_conversation_data(
    State(sh): Sh,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/conversation-manager/customer-topics/{id}/conversation-data");
    if let Err(r) = enter(&sh, "GET", &path, &headers, Value::Null, true) {
        return *r;
    }
    let data = sh
        .lock()
        .conversation_data
        .get(&id)
        .cloned()
        .unwrap_or_default();
    axum::Json(Value::Object(data)).into_response()
}

async fn set_conversation_data(
    State(sh): Sh,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/conversation-manager/customer-topics/{id}/conversation-data");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(r) = enter(&sh, "POST", &path, &headers, v.clone(), true) {
        return *r;
    }
    let Value::Object(map) = v else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"message": "expected an object"})),
        )
            .into_response();
    };
    sh.lock()
        .conversation_data
        .entry(id)
        .or_default()
        .extend(map);
    StatusCode::OK.into_response()
}

async fn set_customer_data(
    State(sh): Sh,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path =
        format!("/conversation-manager/customer-topics/{id}/conversation-data-by-identifier");
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(r) = enter(&sh, "POST", &path, &headers, v.clone(), true) {
        return *r;
    }
    sh.lock().customer_data.insert(id, v);
    axum::Json(json!({"status": "saved"})).into_response()
}

async fn get_customer_data(State(sh): Sh, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/conversation-manager/customer-topics/get/{id}");
    if let Err(r) = enter(&sh, "GET", &path, &headers, Value::Null, true) {
        return *r;
    }
    let v = sh
        .lock()
        .customer_data
        .get(&id)
        .cloned()
        .unwrap_or(json!({}));
    axum::Json(v).into_response()
}

async fn activity(State(sh): Sh, headers: HeaderMap, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(r) = enter(
        &sh,
        "POST",
        "/conversation-manager/activities",
        &headers,
        v.clone(),
        true,
    ) {
        return *r;
    }
    sh.lock().activities.push(v);
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn form(State(sh): Sh, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if let Err(r) = enter(
        &sh,
        "GET",
        &format!("/unified-admin/forms/{id}"),
        &headers,
        Value::Null,
        false,
    ) {
        return *r;
    }
    if id != "prechat-form-1" {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "form not found"})),
        )
            .into_response();
    }
    axum::Json(json!({
        "id": id,
        "formTitle": "Pre-chat form",
        "formDescription": "Tell us who you are",
        "sections": [{"name": "main", "attributes": [
            {"key": "firstName", "label": "First name", "valueType": "alphaNum", "isRequired": true},
            {"key": "phone", "label": "Phone", "valueType": "phoneNumber", "isRequired": true},
            {"key": "email", "label": "Email", "valueType": "email", "isRequired": false}
        ]}],
        "enableWeightage": false
    }))
    .into_response()
}

async fn form_validation(State(sh): Sh, headers: HeaderMap) -> Response {
    if let Err(r) = enter(
        &sh,
        "GET",
        "/unified-admin/formValidation",
        &headers,
        Value::Null,
        false,
    ) {
        return *r;
    }
    axum::Json(json!([
        {"type": "alphaNum", "regex": "^[A-Za-z0-9 ]+$"},
        {"type": "phoneNumber", "regex": "^\\+?[0-9]{6,15}$"},
        {"type": "email", "regex": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$"}
    ]))
    .into_response()
}

async fn calendar_of(State(sh): Sh, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/business-calendar/channels/service-identifier/{id}");
    if let Err(r) = enter(&sh, "GET", &path, &headers, Value::Null, false) {
        return *r;
    }
    if id != sh.opts.service_identifier {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "no calendar"})),
        )
            .into_response();
    }
    axum::Json(json!({"calendarId": "calendar-1", "serviceIdentifier": id})).into_response()
}

async fn calendar_events(
    State(sh): Sh,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = enter(
        &sh,
        "GET",
        "/business-calendar/calendars/events",
        &headers,
        query_value(&q),
        false,
    ) {
        return *r;
    }
    let start: i64 = q.get("startTime").and_then(|s| s.parse().ok()).unwrap_or(0);
    let end: i64 = q
        .get("endTime")
        .and_then(|s| s.parse().ok())
        .unwrap_or(start);
    let day = 86_400_000i64;
    let (open, close) = sh.opts.business_hours;
    let mut events = Vec::new();
    let mut d = start.div_euclid(day) * day;
    while d < end {
        events.push(json!({
            "id": format!("bh-{}", d / day),
            "name": "Business hours",
            "type": "BUSINESS_HOURS",
            "startTime": d + i64::from(open) * 60_000,
            "endTime": d + i64::from(close) * 60_000,
            "shifts": []
        }));
        d += day;
    }
    axum::Json(Value::Array(events)).into_response()
}

async fn callback(State(sh): Sh, headers: HeaderMap, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Err(r) = enter(&sh, "POST", "/callback/request", &headers, v.clone(), false) {
        return *r;
    }
    sh.lock().callbacks.push(v);
    axum::Json(json!({"status": "queued"})).into_response()
}
