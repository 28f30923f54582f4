//! `/websocket`: JSON-RPC over a WebSocket, with `subscribe`, `unsubscribe` and
//! `unsubscribe_all` on event queries (`tm.event='NewBlock'`, `tm.event='Tx' AND …`).
//! Events are pushed as CometBFT does: the subscription's request id, and a result holding
//! the query, the event data and the event's attribute map. Clients and subscriptions per
//! client are capped; a client too slow to keep up loses events, never the node's memory.

use crate::query::Query;
use crate::{dispatch, envelope, Backend, Ctx, RpcError};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

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

pub(crate) async fn handler<B: Backend>(
    State(ctx): State<Arc<Ctx<B>>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let clients = ctx.ws_clients.fetch_add(1, Ordering::SeqCst);
    if clients >= ctx.config.max_ws_clients {
        ctx.ws_clients.fetch_sub(1, Ordering::SeqCst);
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket clients",
        )
            .into_response();
    }
    upgrade
        .max_message_size(ctx.config.max_body_bytes)
        .on_upgrade(move |socket| async move {
            serve(&ctx, socket).await;
            ctx.ws_clients.fetch_sub(1, Ordering::SeqCst);
        })
}

struct Subscription {
    id: Value,
    query: Query,
}

async fn serve<B: Backend>(ctx: &Ctx<B>, mut socket: WebSocket) {
    let mut events = ctx.backend.events();
    let mut subs: Vec<Subscription> = Vec::new();
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => continue,
                    _ => return, // closed, or an error
                };
                let reply = request(ctx, &text, &mut subs).await;
                if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                    return;
                }
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
                        if socket.send(Message::Text(msg.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
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
