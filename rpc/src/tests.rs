//! The protocol layer against a backend that echoes: envelopes, batches, the URI form,
//! limits and the standard error codes.

use super::*;
use crate::RpcEvent;
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

#[derive(Clone)]
struct Echo;

impl Backend for Echo {
    async fn call(&self, method: String, params: Map<String, Value>) -> Result<Value, RpcError> {
        match method.as_str() {
            "echo" => Ok(Value::Object(params)),
            "height" => Ok(json!(param_u64(&params, "height")?)),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(Value::Null)
            }
            m => Err(RpcError::method_not_found(m)),
        }
    }
    fn events(&self) -> tokio::sync::broadcast::Receiver<RpcEvent> {
        tokio::sync::broadcast::channel(1).1
    }
    fn metrics(&self) -> String {
        "# EOF\n".into()
    }
}

fn app() -> Router {
    let mut c = RpcConfig::new("127.0.0.1:0".parse().unwrap());
    c.max_body_bytes = 4096;
    c.timeout = Duration::from_millis(200);
    router(c, Echo)
}

async fn post_json(body: impl Into<String>) -> (StatusCode, Value) {
    let req = Request::post("/")
        .header("content-type", "application/json")
        .body(Body::from(body.into()))
        .unwrap();
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn get_uri(uri: &str) -> Value {
    let resp = app()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn single_requests_keep_their_id_and_named_params() {
    let (_, v) = post_json(r#"{"jsonrpc":"2.0","id":7,"method":"echo","params":{"a":"b"}}"#).await;
    assert_eq!(v, json!({"jsonrpc":"2.0","id":7,"result":{"a":"b"}}));
    let (_, v) =
        post_json(r#"{"jsonrpc":"2.0","id":"x","method":"height","params":{"height":"12"}}"#).await;
    assert_eq!(v["result"], json!(12));
}

#[tokio::test]
async fn errors_carry_the_standard_codes_and_a_reason() {
    let (_, v) = post_json("{not json").await;
    assert_eq!(v["error"]["code"], -32700);
    let (_, v) = post_json(r#"{"jsonrpc":"1.0","id":1,"method":"echo"}"#).await;
    assert_eq!(v["error"]["code"], -32600);
    let (_, v) = post_json(r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#).await;
    assert_eq!(v["error"]["code"], -32601);
    assert!(v["error"]["data"].as_str().unwrap().contains("nope"));
    let (_, v) =
        post_json(r#"{"jsonrpc":"2.0","id":1,"method":"height","params":{"height":"x"}}"#).await;
    assert_eq!(v["error"]["code"], -32602);
    let (_, v) = post_json(r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}"#).await;
    assert_eq!(v["error"]["code"], -32602);
    let (_, v) = post_json(r#"{"jsonrpc":"2.0","id":1,"method":"slow"}"#).await;
    assert_eq!(v["error"]["code"], -32603);
    assert!(v["error"]["data"].as_str().unwrap().contains("timed out"));
}

#[tokio::test]
async fn batches_answer_in_order_up_to_the_limit() {
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"height","params":{"height":i}}))
        .collect();
    let (_, v) = post_json(serde_json::to_string(&batch).unwrap()).await;
    let ids: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![0, 1, 2]);
    let big: Vec<Value> = (0..11)
        .map(|i| json!({"jsonrpc":"2.0","id":i,"method":"echo"}))
        .collect();
    let (_, v) = post_json(serde_json::to_string(&big).unwrap()).await;
    assert_eq!(v["error"]["code"], -32600);
}

#[tokio::test]
async fn a_batch_with_malformed_entries_answers_each_in_its_place() {
    let batch = json!([
        {"jsonrpc":"2.0","id":"a","method":"height","params":{"height":7}},
        5,
        {"jsonrpc":"1.0","id":"b","method":"height"},
        {"jsonrpc":"2.0","id":"c","method":"nope"},
        {"jsonrpc":"2.0","id":"d","method":"echo","params":{"x":1}},
    ]);
    let (_, v) = post_json(batch.to_string()).await;
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(
        (v[0]["id"].clone(), v[0]["result"].clone()),
        (json!("a"), json!(7))
    );
    assert_eq!(v[1]["error"]["code"], -32600, "not an object");
    assert_eq!(
        (v[2]["id"].clone(), v[2]["error"]["code"].clone()),
        (json!("b"), json!(-32600))
    );
    assert_eq!(
        (v[3]["id"].clone(), v[3]["error"]["code"].clone()),
        (json!("c"), json!(-32601))
    );
    assert_eq!(v[4]["result"], json!({"x": 1}));
    // A batch that outlives the timeout: every call in it says so, in place.
    let slow = json!([
        {"jsonrpc":"2.0","id":1,"method":"slow"},
        {"jsonrpc":"2.0","id":2,"method":"echo"},
    ]);
    let (_, v) = post_json(slow.to_string()).await;
    for (i, r) in v.as_array().unwrap().iter().enumerate() {
        assert_eq!(r["id"], json!(i + 1));
        assert!(
            r["error"]["data"].as_str().unwrap().contains("timed out"),
            "{r}"
        );
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"echo","params":{{"a":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let (status, _) = post_json(body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn the_uri_form_strips_quotes() {
    let v = get_uri("/echo?hash=%22abc%22&height=5").await;
    assert_eq!(v["result"], json!({"hash":"abc","height":"5"}));
    let v = get_uri("/nope").await;
    assert_eq!(v["error"]["code"], -32601);
}

#[test]
fn hashes_come_as_hex_or_base64() {
    let raw = [0xABu8; 32];
    let mut p = Map::new();
    p.insert("hash".into(), json!(hex::encode_upper(raw)));
    assert_eq!(param_hash(&p, "hash").unwrap(), Some(raw));
    p.insert("hash".into(), json!(format!("0x{}", hex::encode(raw))));
    assert_eq!(param_hash(&p, "hash").unwrap(), Some(raw));
    p.insert("hash".into(), json!(shapes::b64(&raw)));
    assert_eq!(param_hash(&p, "hash").unwrap(), Some(raw));
    p.insert("hash".into(), json!("zz"));
    assert!(param_hash(&p, "hash").is_err());
}
