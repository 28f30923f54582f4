//! Basalt's JSON-RPC server: JSON-RPC 2.0 at `POST /` (single and batch) and the URI form
//! `GET /<method>?arg=value`, with CometBFT v0.38's method names, error codes and response
//! shapes so that existing clients work.
//!
//! The server knows nothing of node internals: it parses requests, enforces limits and
//! hands each call to a [`Backend`] as a method name and named parameters. [`shapes`] holds
//! the helpers that render Basalt's types in CometBFT's JSON.

mod conn;
mod explorer;
pub mod metrics;
pub mod query;
pub mod shapes;
mod ws;

pub use metrics::RpcMetrics;
pub use ws::RpcEvent;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A JSON-RPC error: code, message and a useful `data` string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {data}")]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: String,
}

impl RpcError {
    pub fn parse(data: impl Into<String>) -> Self {
        Self::new(-32700, "Parse error", data)
    }
    pub fn invalid_request(data: impl Into<String>) -> Self {
        Self::new(-32600, "Invalid Request", data)
    }
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            -32601,
            "Method not found",
            format!("unknown method {}", quote(method)),
        )
    }
    pub fn invalid_params(data: impl Into<String>) -> Self {
        Self::new(-32602, "Invalid params", data)
    }
    pub fn internal(data: impl Into<String>) -> Self {
        Self::new(-32603, "Internal error", data)
    }
    /// `data` longer than [`MAX_ERROR_DATA`] is cut there: an error never echoes a large
    /// input back whole, whichever message quoted it.
    fn new(code: i64, message: &str, data: impl Into<String>) -> Self {
        let mut data = data.into();
        if data.len() > MAX_ERROR_DATA {
            let cut = floor_char_boundary(&data, MAX_ERROR_DATA);
            data.truncate(cut);
            data.push('…');
        }
        RpcError {
            code,
            message: message.into(),
            data,
        }
    }
}

/// Longest `data` of an error, in bytes.
pub const MAX_ERROR_DATA: usize = 256;

/// Longest piece of user input quoted in an error.
const MAX_QUOTE: usize = 64;

/// User input for an error message: debug-quoted, cut to a short prefix with the full
/// length said, so that a 100 KB method name does not come back whole.
pub fn quote(input: &str) -> String {
    if input.len() <= MAX_QUOTE {
        return format!("{input:?}");
    }
    let cut = floor_char_boundary(input, MAX_QUOTE);
    format!("{:?}… ({} bytes)", &input[..cut], input.len())
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// What the server needs from the node: answer one method call, a stream of events for
/// WebSocket subscribers, and the metrics text.
pub trait Backend: Send + Sync + 'static {
    fn call(
        &self,
        method: String,
        params: Map<String, Value>,
    ) -> impl Future<Output = Result<Value, RpcError>> + Send;

    /// The calls of one JSON-RPC batch, answered in order. The default makes them one after
    /// another; a backend may share work between them (the node verifies all the batch's
    /// transaction signatures at once).
    fn call_batch(
        &self,
        calls: Vec<(String, Map<String, Value>)>,
    ) -> impl Future<Output = Vec<Result<Value, RpcError>>> + Send {
        async move {
            let mut out = Vec::with_capacity(calls.len());
            for (method, params) in calls {
                out.push(self.call(method, params).await);
            }
            out
        }
    }

    /// A new receiver of the node's events (new blocks, transactions, validator changes).
    fn events(&self) -> tokio::sync::broadcast::Receiver<RpcEvent>;

    /// Everything for `GET /metrics`, in Prometheus text format.
    fn metrics(&self) -> String;

    /// Where to count requests and their latencies.
    fn rpc_metrics(&self) -> Option<&RpcMetrics> {
        None
    }
}

#[derive(Clone, Debug)]
pub struct RpcConfig {
    pub listen: SocketAddr,
    /// Largest request body (CometBFT: 1 MB).
    pub max_body_bytes: usize,
    /// Most calls in one batch (CometBFT: 10).
    pub max_batch: usize,
    /// Longest a call may take.
    pub timeout: Duration,
    /// WebSocket clients at once (CometBFT: 100).
    pub max_ws_clients: usize,
    /// Subscriptions per WebSocket client (CometBFT: 5).
    pub max_subscriptions_per_client: usize,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers (CometBFT's default).
    pub cors_allowed_origins: Vec<String>,
    /// Open HTTP connections at once (CometBFT: 900); more are closed on accept.
    pub max_open_connections: usize,
    /// Open HTTP connections from one source address (0: no cap); more are closed on
    /// accept, so that one host cannot take every slot.
    pub max_open_connections_per_ip: usize,
    /// From accept, a client must send its request headers within this time (before its
    /// first byte too), and each request body within this time once its headers are in.
    pub read_timeout: Duration,
    /// A kept-alive connection with no request in progress is closed after this time.
    pub idle_timeout: Duration,
    /// A WebSocket client that sends nothing, not even the pong to the server's pings
    /// (every 9/10 of this), for this long is closed (CometBFT: 30 s).
    pub ws_read_wait: Duration,
    /// A WebSocket message the client does not take within this time closes it
    /// (CometBFT: 10 s).
    pub ws_write_wait: Duration,
}

impl RpcConfig {
    pub fn new(listen: SocketAddr) -> Self {
        RpcConfig {
            listen,
            max_body_bytes: 1_000_000,
            max_batch: 10,
            timeout: Duration::from_secs(10),
            max_ws_clients: 100,
            max_subscriptions_per_client: 5,
            cors_allowed_origins: Vec::new(),
            max_open_connections: 900,
            max_open_connections_per_ip: 300,
            read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            ws_read_wait: Duration::from_secs(30),
            ws_write_wait: Duration::from_secs(10),
        }
    }
}

pub(crate) struct Ctx<B> {
    pub(crate) backend: B,
    pub(crate) config: RpcConfig,
    pub(crate) ws_clients: Arc<AtomicUsize>,
}

/// Binds now (so a port in use is reported at start) and serves in a spawned task. Each
/// connection lives under the deadlines of [`conn`] and takes one of the [`conn::Slots`]
/// (global and per source address); one over either cap is closed on accept.
pub async fn serve<B: Backend>(config: RpcConfig, backend: B) -> std::io::Result<SocketAddr> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let slots = conn::Slots::new(
        config.max_open_connections,
        config.max_open_connections_per_ip,
    );
    let deadlines = conn::Deadlines {
        headers: config.read_timeout,
        idle: config.idle_timeout,
        // Reading the body, the call, writing the answer.
        busy: config.read_timeout * 2 + config.timeout,
    };
    let max_body = config.max_body_bytes as u64;
    let app = router(config, backend);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("rpc accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let slot = match slots.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(why) => {
                    tracing::debug!(%peer, ?why, "rpc connection refused: connection cap reached");
                    continue; // dropping the stream closes it
                }
            };
            let shared = conn::ConnShared::new();
            let io = TokioIo::new(conn::Watched::new(stream, max_body, shared.clone()));
            let service = connection_service(app.clone(), shared.clone());
            tokio::spawn(async move {
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http1().timer(TokioTimer::new());
                let connection = builder.serve_connection_with_upgrades(io, service);
                tokio::select! {
                    _ = connection => {}
                    _ = conn::watchdog(&shared, deadlines) => {
                        tracing::debug!(%peer, "rpc connection closed: past its deadline");
                    }
                }
                drop(slot);
            });
        }
    });
    Ok(addr)
}

/// The router as one connection's hyper service: each request carries the connection's
/// [`conn::ConnShared`] (so the body reader learns of an oversized chunk) and counts as
/// in progress until its response body has been sent.
fn connection_service(
    app: Router,
    shared: Arc<conn::ConnShared>,
) -> impl hyper::service::Service<
    axum::http::Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    use tower::ServiceExt;
    let service = move |req: axum::http::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let shared = shared.clone();
        async move {
            let busy = shared.begin();
            let mut req = req.map(axum::body::Body::new);
            req.extensions_mut().insert(shared);
            let resp = app.oneshot(req).await?;
            Ok(resp.map(|body| axum::body::Body::new(conn::Guarded::new(body, busy))))
        }
    };
    hyper::service::service_fn(service)
}

pub fn router<B: Backend>(config: RpcConfig, backend: B) -> Router {
    let limit = config.max_body_bytes;
    let cors = config.cors_allowed_origins.clone();
    let ctx = Arc::new(Ctx {
        backend,
        config,
        ws_clients: Arc::new(AtomicUsize::new(0)),
    });
    Router::new()
        .route("/", get(explorer::page).post(post_handler::<B>))
        .route("/explorer/{file}", get(explorer::file))
        .route("/websocket", get(ws::handler::<B>))
        .route("/metrics", get(metrics_handler::<B>))
        .route("/{method}", get(get_handler::<B>))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(move |req, next| {
            cors_layer(cors.clone(), req, next)
        }))
        .with_state(ctx)
}

/// CORS: echo an allowed `Origin` back; answer preflight requests.
async fn cors_layer(
    allowed: Vec<String>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = req
        .headers()
        .get(axum::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(String::from);
    let ok = origin
        .as_deref()
        .filter(|o| allowed.iter().any(|a| a == "*" || a == o))
        .map(String::from);
    let preflight = req.method() == axum::http::Method::OPTIONS;
    let mut resp = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    if let Some(o) = ok {
        let h = resp.headers_mut();
        if let Ok(v) = o.parse() {
            h.insert(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(
            axum::http::header::ACCESS_CONTROL_ALLOW_METHODS,
            axum::http::HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            axum::http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            axum::http::HeaderValue::from_static("Content-Type, Origin, Accept"),
        );
    }
    resp
}

async fn metrics_handler<B: Backend>(State(ctx): State<Arc<Ctx<B>>>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.backend.metrics(),
    )
        .into_response()
}

pub(crate) fn envelope(id: Value, result: Result<Value, RpcError>) -> Value {
    match result {
        Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": e.code, "message": e.message, "data": e.data}}),
    }
}

pub(crate) async fn dispatch<B: Backend>(
    ctx: &Ctx<B>,
    method: String,
    params: Map<String, Value>,
) -> Result<Value, RpcError> {
    let started = Instant::now();
    let label = method.clone();
    let call = ctx.backend.call(method, params);
    let result = match tokio::time::timeout(ctx.config.timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(RpcError::internal("request timed out")),
    };
    if let Some(m) = ctx.backend.rpc_metrics() {
        m.observe(&label, started.elapsed().as_secs_f64(), result.is_ok());
    }
    result
}

/// One JSON-RPC request object → its response (None for a notification without id? CometBFT
/// answers every request, so we do too).
async fn one<B: Backend>(ctx: &Ctx<B>, req: Value) -> Value {
    match parse_call(req) {
        Ok((id, method, params)) => envelope(id, dispatch(ctx, method, params).await),
        Err(answer) => answer,
    }
}

/// A request object's id, method and named parameters, or the error envelope to answer.
fn parse_call(req: Value) -> Result<(Value, String, Map<String, Value>), Value> {
    let Value::Object(mut obj) = req else {
        return Err(envelope(
            Value::from(-1),
            Err(RpcError::invalid_request("request must be an object")),
        ));
    };
    let id = obj.remove("id").unwrap_or(Value::from(-1));
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(envelope(
            id,
            Err(RpcError::invalid_request("jsonrpc must be \"2.0\"")),
        ));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str).map(String::from) else {
        return Err(envelope(
            id,
            Err(RpcError::invalid_request("method is missing")),
        ));
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(Value::Array(a)) if a.is_empty() => Map::new(),
        Some(_) => {
            return Err(envelope(
                id,
                Err(RpcError::invalid_params(
                    "params must be an object of named parameters",
                )),
            ))
        }
    };
    Ok((id, method, params))
}

/// A batch: malformed entries are answered at once, the others go to the backend together
/// (under one timeout), and the answers come back in the batch's order.
async fn batch<B: Backend>(ctx: &Ctx<B>, items: Vec<Value>) -> Vec<Value> {
    let started = Instant::now();
    let mut out: Vec<Option<Value>> = Vec::with_capacity(items.len());
    let mut ids = Vec::new();
    let mut calls = Vec::new();
    for item in items {
        match parse_call(item) {
            Ok((id, method, params)) => {
                ids.push((out.len(), id));
                calls.push((method, params));
                out.push(None);
            }
            Err(answer) => out.push(Some(answer)),
        }
    }
    let methods: Vec<String> = calls.iter().map(|(m, _)| m.clone()).collect();
    let results =
        match tokio::time::timeout(ctx.config.timeout, ctx.backend.call_batch(calls)).await {
            Ok(r) => r,
            Err(_) => methods
                .iter()
                .map(|_| Err(RpcError::internal("request timed out")))
                .collect(),
        };
    let elapsed = started.elapsed().as_secs_f64();
    for (((slot, id), result), method) in ids.into_iter().zip(results).zip(&methods) {
        if let Some(m) = ctx.backend.rpc_metrics() {
            m.observe(method, elapsed, result.is_ok());
        }
        out[slot] = Some(envelope(id, result));
    }
    out.into_iter()
        .map(|v| {
            v.unwrap_or_else(|| envelope(Value::from(-1), Err(RpcError::internal("no answer"))))
        })
        .collect()
}

fn too_large(limit: usize) -> Response {
    let e = RpcError::invalid_request(format!("request body exceeds {limit} bytes"));
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(envelope(Value::from(-1), Err(e))),
    )
        .into_response()
}

async fn post_handler<B: Backend>(
    State(ctx): State<Arc<Ctx<B>>>,
    req: axum::extract::Request,
) -> Response {
    let limit = ctx.config.max_body_bytes;
    // A declared length over the limit is refused before reading (and so before hyper
    // sends `100 Continue` to a client that asked for it).
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let conn = req.extensions().get::<Arc<conn::ConnShared>>().cloned();
    // The body must arrive within the read timeout and fit the limit; a chunk declared
    // larger than the limit ends the wait at once.
    let read = tokio::time::timeout(
        ctx.config.read_timeout,
        axum::body::to_bytes(req.into_body(), limit),
    );
    let oversized = async {
        match &conn {
            Some(c) => c.oversized().await,
            None => std::future::pending().await,
        }
    };
    let read = tokio::select! {
        r = read => r,
        _ = oversized => return too_large(limit),
    };
    let body = match read {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => return too_large(limit),
        Err(_) => {
            let e = RpcError::invalid_request("request body not received in time");
            return (
                StatusCode::REQUEST_TIMEOUT,
                Json(envelope(Value::from(-1), Err(e))),
            )
                .into_response();
        }
    };
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Json(envelope(
                Value::from(-1),
                Err(RpcError::parse(e.to_string())),
            ))
            .into_response()
        }
    };
    match req {
        Value::Array(items) => {
            if items.is_empty() {
                return Json(envelope(
                    Value::from(-1),
                    Err(RpcError::invalid_request("empty batch")),
                ))
                .into_response();
            }
            if items.len() > ctx.config.max_batch {
                let e = RpcError::invalid_request(format!(
                    "batch of {} requests exceeds the limit of {}",
                    items.len(),
                    ctx.config.max_batch
                ));
                return Json(envelope(Value::from(-1), Err(e))).into_response();
            }
            Json(Value::Array(batch(&ctx, items).await)).into_response()
        }
        other => Json(one(&ctx, other).await).into_response(),
    }
}

/// URI form: every query argument is a string; CometBFT quotes strings (`?hash="..."` or
/// `?hash=0x...`), numbers come bare. Quotes are stripped here; the backend parses numbers.
async fn get_handler<B: Backend>(
    State(ctx): State<Arc<Ctx<B>>>,
    Path(method): Path<String>,
    Query(args): Query<HashMap<String, String>>,
) -> Response {
    let params: Map<String, Value> = args
        .into_iter()
        .map(|(k, v)| {
            let v = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .map(String::from)
                .unwrap_or(v);
            (k, Value::String(v))
        })
        .collect();
    let body = envelope(Value::from(-1), dispatch(&ctx, method, params).await);
    let status = StatusCode::OK;
    (status, Json(body)).into_response()
}

/// Reads a named parameter that may come as a JSON number or a decimal string.
pub fn param_u64(params: &Map<String, Value>, name: &str) -> Result<Option<u64>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            RpcError::invalid_params(format!("{name} must be a non-negative integer"))
        }),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
            RpcError::invalid_params(format!(
                "{name} must be a non-negative integer, got {}",
                quote(s)
            ))
        }),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{name} must be an integer"
        ))),
    }
}

pub fn param_str<'a>(
    params: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RpcError::invalid_params(format!("{name} must be a string"))),
    }
}

/// Bytes given as base64 (JSON body, CometBFT's encoding for `tx`) or as `0x`-prefixed hex
/// (the URI form).
pub fn param_bytes(params: &Map<String, Value>, name: &str) -> Result<Option<Vec<u8>>, RpcError> {
    let Some(s) = param_str(params, name)? else {
        return Ok(None);
    };
    if let Some(h) = s.strip_prefix("0x") {
        return hex::decode(h)
            .map(Some)
            .map_err(|e| RpcError::invalid_params(format!("{name}: bad hex: {e}")));
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map(Some)
        .map_err(|e| RpcError::invalid_params(format!("{name}: bad base64: {e}")))
}

/// A hash given as hex (64 digits, optionally `0x`-prefixed, either case, the URI form) or
/// as base64 (what CometBFT's JSON form and tendermint-rpc send).
pub fn param_hash(params: &Map<String, Value>, name: &str) -> Result<Option<[u8; 32]>, RpcError> {
    let Some(s) = param_str(params, name)? else {
        return Ok(None);
    };
    let bytes =
        match s.strip_prefix("0x") {
            Some(h) => hex::decode(h)
                .map_err(|e| RpcError::invalid_params(format!("{name}: bad hex: {e}")))?,
            None if s.len() == 64 => hex::decode(s)
                .map_err(|e| RpcError::invalid_params(format!("{name}: bad hex: {e}")))?,
            None => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| {
                        RpcError::invalid_params(format!("{name}: neither hex nor base64: {e}"))
                    })?
            }
        };
    bytes
        .try_into()
        .map(Some)
        .map_err(|_| RpcError::invalid_params(format!("{name} must be 32 bytes")))
}

#[cfg(test)]
mod tests;
