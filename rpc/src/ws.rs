//! `/websocket`: JSON-RPC over a WebSocket, with `subscribe`, `unsubscribe` and
//! `unsubscribe_all` on event queries (`tm.event='NewBlock'`, `tm.event='Tx' AND …`).
//! Events are pushed as CometBFT does: the subscription's request id, and a result holding
//! the query, the event data and the event's attribute map. Clients and subscriptions per
//! client are capped; a client too slow to keep up loses events, never the node's memory.

use crate::query::Query;
use crate::{dispatch, envelope, Backend, Ctx, RpcError};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Instant, MissedTickBehavior};

/// One event for subscribers: its attributes (composite keys such as `tm.event`,
/// `tx.height`, `transfer.recipient`) and its JSON `data` (`{"type": …, "value": …}`).
#[derive(Clone, Debug)]
pub struct RpcEvent {
    pub attributes: Arc<Vec<(String, String)>>,
    pub data: Arc<Value>,
}

impl RpcEvent {
    fn events_map(&self) -> Value {
        let mut m: Map<String, Value> = Map::new();
        for (k, v) in self.attributes.iter() {
            if let Value::Array(a) = m.entry(k.clone()).or_insert_with(|| json!([])) {
                a.push(Value::String(v.clone()));
            }
        }
        Value::Object(m)
    }
}

/// A WebSocket client's place under `max_ws_clients`, given back when dropped: when the
/// session ends, and also when the upgrade never completes (a client that resets its
/// connection during the handshake), because the upgrade callback that owns it is dropped.
struct WsSlot(Arc<AtomicUsize>);

impl WsSlot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| WsSlot(count.clone()))
    }
}

impl Drop for WsSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// RFC 6455 §4.2.1: version 13, and a key that is the base64 of 16 bytes.
fn handshake_error(headers: &HeaderMap) -> Option<&'static str> {
    use base64::Engine;
    let version = headers.get("sec-websocket-version").map(|v| v.as_bytes());
    if version != Some(b"13") {
        return Some("Sec-WebSocket-Version must be 13");
    }
    let key = headers.get("sec-websocket-key").map(|v| v.as_bytes());
    let decoded = key.and_then(|k| base64::engine::general_purpose::STANDARD.decode(k).ok());
    if decoded.is_none_or(|k| k.len() != 16) {
        return Some("Sec-WebSocket-Key must be the base64 encoding of 16 bytes");
    }
    None
}

pub(crate) async fn handler<B: Backend>(
    State(ctx): State<Arc<Ctx<B>>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(why) = handshake_error(&headers) {
        return (StatusCode::BAD_REQUEST, why).into_response();
    }
    let Some(slot) = WsSlot::take(&ctx.ws_clients, ctx.config.max_ws_clients) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket clients",
        )
            .into_response();
    };
    upgrade
        .max_message_size(ctx.config.max_body_bytes)
        .on_upgrade(move |socket| async move {
            // The callback owns the slot: it is given back when the session ends, or when
            // the callback is dropped unrun because the upgrade failed.
            let _slot = slot;
            serve(&ctx, socket).await;
        })
}

struct Subscription {
    id: Value,
    query: Query,
}

/// One client's session. The server pings every 9/10 of `ws_read_wait` and closes a client
/// that sent nothing (not even a pong) for `ws_read_wait`, as CometBFT does; a send that
/// cannot be written within `ws_write_wait` closes it too.
async fn serve<B: Backend>(ctx: &Ctx<B>, mut socket: WebSocket) {
    let read_wait = ctx.config.ws_read_wait;
    let write_wait = ctx.config.ws_write_wait;
    let mut events = ctx.backend.events();
    let mut subs: Vec<Subscription> = Vec::new();
    let mut last_heard = Instant::now();
    let mut ping =
        tokio::time::interval_at(Instant::now() + read_wait * 9 / 10, read_wait * 9 / 10);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = socket.recv() => {
                last_heard = Instant::now();
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                    _ => return, // closed, or an error
                };
                let reply = request(ctx, &text, &mut subs).await;
                if !send(&mut socket, Message::Text(reply.to_string().into()), write_wait).await {
                    return;
                }
            }
            _ = ping.tick() => {
                if !send(&mut socket, Message::Ping(Default::default()), write_wait).await {
                    return;
                }
            }
            _ = tokio::time::sleep_until(last_heard + read_wait) => {
                tracing::debug!("websocket client silent for {read_wait:?}: closed");
                return;
            }
            ev = events.recv(), if !subs.is_empty() => {
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!("websocket client lagged, {n} events dropped");
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                for s in &subs {
                    if s.query.matches(&ev.attributes) {
                        let msg = json!({"jsonrpc": "2.0", "id": s.id, "result": {
                            "query": s.query.text,
                            "data": *ev.data,
                            "events": ev.events_map(),
                        }});
                        if !send(&mut socket, Message::Text(msg.to_string().into()), write_wait).await {
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Sends one message within `wait`; false when the client is gone or does not read.
async fn send(socket: &mut WebSocket, msg: Message, wait: std::time::Duration) -> bool {
    matches!(
        tokio::time::timeout(wait, socket.send(msg)).await,
        Ok(Ok(()))
    )
}

async fn request<B: Backend>(ctx: &Ctx<B>, text: &str, subs: &mut Vec<Subscription>) -> Value {
    let req: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return envelope(Value::from(-1), Err(RpcError::parse(e.to_string()))),
    };
    let id = req.get("id").cloned().unwrap_or(Value::from(-1));
    let method = req.get("method").and_then(Value::as_str).unwrap_or("");
    let params = match req.get("params") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(Value::Array(a)) if a.is_empty() => Map::new(),
        Some(_) => {
            return envelope(id, Err(RpcError::invalid_params("params must be named")));
        }
    };
    let query_param = || -> Result<Query, RpcError> {
        let q = params
            .get("query")
            .and_then(Value::as_str)
            .ok_or_else(|| RpcError::invalid_params("query is required"))?;
        Query::parse(q).map_err(|e| RpcError::invalid_params(e.to_string()))
    };
    let result = match method {
        "subscribe" => query_param().and_then(|query| {
            if subs.len() >= ctx.config.max_subscriptions_per_client {
                Err(RpcError::internal(format!(
                    "max_subscriptions_per_client {} reached",
                    ctx.config.max_subscriptions_per_client
                )))
            } else if subs.iter().any(|s| s.query.text == query.text) {
                Err(RpcError::internal("already subscribed"))
            } else {
                subs.push(Subscription {
                    id: id.clone(),
                    query,
                });
                Ok(json!({}))
            }
        }),
        "unsubscribe" => query_param().and_then(|query| {
            let before = subs.len();
            subs.retain(|s| s.query.text != query.text);
            if subs.len() == before {
                Err(RpcError::internal("subscription not found"))
            } else {
                Ok(json!({}))
            }
        }),
        "unsubscribe_all" => {
            if subs.is_empty() {
                Err(RpcError::internal("subscription not found"))
            } else {
                subs.clear();
                Ok(json!({}))
            }
        }
        _ => dispatch(ctx, method.to_string(), params.clone()).await,
    };
    envelope(id, result)
}
