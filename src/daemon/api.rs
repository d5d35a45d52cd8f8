//! The daemon's HTTP side: `/healthz` for probes, `/metrics` for Prometheus, `/api/alerts`
//! (recent alerts, filterable), `/api/silences` (list, add, remove; kept in the state
//! database), `/api/reload`, `/api/scan/evaluate`.
//!
//! Who may do what:
//! - `/healthz` is always open.
//! - Everything else needs `Authorization: Bearer TOKEN`. The token is `api.token` when the
//!   config sets one; otherwise the daemon makes its own in the state directory
//!   ([`super::token`], mode 0600), so mutating the daemon (silences, reloads, evaluations)
//!   is never open to whoever can reach the port.
//! - Without a configured token, and so only on loopback (`check` refuses any other address
//!   without one), `/metrics` alone stays open, for a local Prometheus or a quick `curl`: it
//!   holds counts, rule ids and source names. `/api/alerts` and `GET /api/silences` do not:
//!   alerts carry the events that raised them (user names, addresses, sudo command lines)
//!   that the host's logs show to root only.
//!
//! A silence that matches every alert or lasts over a year needs `"force": true`, and every
//! silence created or ended is recorded by an info alert through the router
//! ([`super::silence`]), which no silence applies to.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::detect::{Control, Msg};
use super::metrics::Metrics;
use super::silence::{Change, audit_alert};
use crate::event::Timestamp;
use crate::state::silences::{SilenceRecord, SilenceStore};

/// The API's bearer token and what it guards.
#[derive(Clone, Debug)]
pub struct ApiAuth {
    /// The token every guarded request must carry.
    pub token: String,
    /// Whether `/metrics` is served without it (no token configured: the daemon's own token,
    /// on a loopback address).
    pub metrics_open: bool,
}

/// What the handlers share.
#[derive(Clone)]
struct Api {
    metrics: Arc<Metrics>,
    token: Arc<str>,
    metrics_open: bool,
    /// Weak, so that the API never keeps the detection thread's queue open at shutdown.
    control: mpsc::WeakSender<Msg>,
    silences: SilenceStore,
    /// Silences from the config, shown beside the stored ones (read-only here).
    configured: Arc<Vec<Value>>,
    /// The scan thread, when the config has `scan:`.
    scan: Option<std::sync::mpsc::SyncSender<super::scan::ScanCmd>>,
}

/// The router for `api.listen`.
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the record of a
/// silence change names the peer it came from.
pub fn router(
    metrics: Arc<Metrics>,
    auth: ApiAuth,
    control: mpsc::WeakSender<Msg>,
    silences: SilenceStore,
    configured: Vec<Value>,
    scan: Option<std::sync::mpsc::SyncSender<super::scan::ScanCmd>>,
) -> Router {
    let api = Api {
        metrics,
        token: Arc::from(auth.token),
        metrics_open: auth.metrics_open,
        control,
        silences,
        configured: Arc::new(configured),
        scan,
    };
    let metrics_route = Router::new()
        .route("/metrics", get(metrics_text))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), bearer_unless_open));
    let guarded = Router::new()
        .route("/api/alerts", get(alerts))
        .route("/api/silences", get(list_silences).post(add_silence))
        .route("/api/silences/{id}", delete(remove_silence))
        .route("/api/reload", post(reload))
        .route("/api/scan/evaluate", post(scan_evaluate))
        .route("/api/state/backup", post(state_backup))
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), bearer));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(metrics_route)
        .merge(guarded)
        .with_state(api)
}

/// `GET /healthz`: 200 `ok`, or 503 with the reason (the state database cannot be written).
async fn healthz(State(api): State<Api>) -> Response {
    match api.metrics.unhealthy() {
        None => "ok\n".into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            format!("unhealthy: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(api): State<Api>) -> Response {
    // Reading the outbox's depth opens a read transaction: off the async threads.
    let m = Arc::clone(&api.metrics);
    match tokio::task::spawn_blocking(move || m.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /api/alerts?rule=ID&severity=high&limit=N`: the latest alerts, newest first, each
/// with what the router did (`routing`).
async fn alerts(
    State(api): State<Api>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100usize);
    let Ok(recent) = api.metrics.recent.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let keep = |a: &&Value| {
        q.get("rule").is_none_or(|r| a["rule"]["id"] == r.as_str())
            && q.get("severity").is_none_or(|s| a["severity"] == s.as_str())
    };
    let out: Vec<Value> = recent.iter().rev().filter(keep).take(limit).cloned().collect();
    Json(out).into_response()
}

async fn list_silences(State(api): State<Api>) -> Response {
    let store = api.silences.clone();
    match tokio::task::spawn_blocking(move || store.all()).await {
        Ok(Ok(stored)) => Json(json!({
            "api": stored,
            "config": api.configured.as_ref(),
        }))
        .into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The peer of the request, when the server records it.
fn peer(req_ext: &axum::http::Extensions) -> Option<SocketAddr> {
    req_ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}

/// `POST /api/silences` with a silence as JSON (`id` optional; `force: true` to mute every
/// alert or for longer than a year): checked, stored durably, then in force and recorded
/// (see [`super::silence`]); answers 201 with the stored silence.
async fn add_silence(State(api): State<Api>, req: Request) -> Response {
    let from = peer(req.extensions());
    let body = match axum::body::to_bytes(req.into_body(), MAX_SILENCE_BYTES).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, &format!("silence: {e}")),
    };
    let mut r: SilenceRecord = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("silence: {e}")),
    };
    let now = Timestamp::now();
    if r.id.is_empty() {
        r.id = format!("api-{:x}", now.0);
    }
    if r.starts.is_none() {
        let mut b = Vec::new();
        now.write_rfc3339(&mut b);
        r.starts = Some(String::from_utf8_lossy(&b).into_owned());
    }
    let silence = match crate::config::silence_from_record(&r, now)
        .and_then(|s| super::silence::check(&s, now, r.force).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("silence `{}`: {e}", r.id)),
    };
    let store = api.silences.clone();
    let stored = r.clone();
    match tokio::task::spawn_blocking(move || store.put(&stored)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
    let audit = Box::new(audit_alert(Change::Created, &r, &r.created_by, from, now));
    let (done, wait) = oneshot::channel();
    if !send(&api, Control::AddSilence(silence, audit, done)).await || wait.await.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    (StatusCode::CREATED, Json(r)).into_response()
}

/// Largest silence a request may send: a silence is a few matchers and a comment.
const MAX_SILENCE_BYTES: usize = 64 << 10;

/// `DELETE /api/silences/ID?by=NAME`: ends the silence and records who ended it.
async fn remove_silence(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    req: Request,
) -> Response {
    let from = peer(req.extensions());
    let store = api.silences.clone();
    let key = id.clone();
    let stored = match tokio::task::spawn_blocking(move || store.remove(&key)).await {
        Ok(Ok(was)) => was,
        Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let by = q.get("by").map_or("", String::as_str);
    let record = stored.clone().unwrap_or_else(|| SilenceRecord {
        id: id.clone(),
        matcher: Default::default(),
        starts: None,
        ends: String::new(),
        created_by: String::new(),
        comment: String::new(),
        force: false,
    });
    let audit = Box::new(audit_alert(Change::Ended, &record, by, from, Timestamp::now()));
    let (done, wait) = oneshot::channel();
    let ask = Control::RemoveSilence { id: id.clone(), audit, stored: stored.is_some(), done };
    if !send(&api, ask).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    let live = wait.await.unwrap_or(false);
    if stored.is_some() || live {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, &format!("no silence `{id}` set through the API"))
    }
}

/// `POST /api/reload`: 200 with what changed, or 422 with every error (the old rules and
/// routes keep running).
async fn reload(State(api): State<Api>) -> Response {
    let (done, wait) = oneshot::channel();
    if !send(&api, Control::Reload(done)).await {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
    }
    match wait.await {
        Ok(Ok(what)) => Json(json!({ "reloaded": true, "message": what })).into_response(),
        Ok(Err(why)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "reloaded": false, "errors": why.lines().collect::<Vec<_>>() })),
        )
            .into_response(),
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping"),
    }
}

/// `POST /api/state/backup`: a consistent, checked copy of the state database, written under
/// `backups/` beside it (never where the caller says: the daemon's user writes it, and the
/// request must not choose a path for it); answers with where and how large.
async fn state_backup(State(api): State<Api>) -> Response {
    let db = Arc::clone(api.metrics.outbox.state());
    let done = tokio::task::spawn_blocking(move || -> Result<(std::path::PathBuf, u64), String> {
        let file = db.path();
        let dir = file.parent().unwrap_or(std::path::Path::new(".")).join("backups");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let stem = file.file_stem().map_or_else(|| "state".into(), |s| s.to_string_lossy());
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
        let dest = dir.join(format!("{stem}-{stamp}.redb"));
        let bytes = db.backup_to(&dest).map_err(|e| e.to_string())?;
        Ok((dest, bytes))
    })
    .await;
    match done {
        Ok(Ok((path, bytes))) => Json(json!({"path": path, "bytes": bytes})).into_response(),
        Ok(Err(e)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e}))).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `POST /api/scan/evaluate`: re-evaluate monitored applications now, as the schedule does;
/// answers when it is done, with what it notified.
async fn scan_evaluate(State(api): State<Api>) -> Response {
    let Some(tx) = &api.scan else {
        return error(StatusCode::NOT_FOUND, "no `scan:` section in the config");
    };
    let (done, wait) = oneshot::channel();
    match tx.try_send(super::scan::ScanCmd::Evaluate(done)) {
        Ok(()) => {}
        Err(std::sync::mpsc::TrySendError::Full(_)) => {
            return error(StatusCode::TOO_MANY_REQUESTS, "an evaluation is already queued");
        }
        Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping");
        }
    }
    match wait.await {
        Ok(Ok(what)) => Json(json!({ "evaluated": true, "message": what })).into_response(),
        Ok(Err(why)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "evaluated": false, "error": why })))
                .into_response()
        }
        Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "the daemon is stopping"),
    }
}

async fn send(api: &Api, c: Control) -> bool {
    match api.control.upgrade() {
        Some(tx) => tx.send(Msg::Control(c)).await.is_ok(),
        None => false,
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Rejects a request without `Authorization: Bearer TOKEN` (scheme in any case, token
/// compared in constant time).
async fn bearer(State(api): State<Api>, req: Request, next: Next) -> Response {
    if crate::source::intake::bearer_matches(req.headers(), &api.token) {
        next.run(req).await
    } else {
        unauthorized()
    }
}

/// [`bearer`], except when the daemon serves `/metrics` openly (no token configured).
async fn bearer_unless_open(State(api): State<Api>, req: Request, next: Next) -> Response {
    if api.metrics_open || crate::source::intake::bearer_matches(req.headers(), &api.token) {
        next.run(req).await
    } else {
        unauthorized()
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required (`api.token`, or without one the `api.token` file beside \
         the state database)\n",
    )
        .into_response()
}
