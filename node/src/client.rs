//! The CLI's JSON-RPC client: `basalt tx` and `basalt query` talk to a node through the same
//! interface wallets use.

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::time::Duration;

pub struct Client {
    url: String,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(url: &str) -> Client {
        let url = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(15))
            .build();
        Client { url, agent }
    }

    /// One JSON-RPC call; an error object becomes an error naming the method.
    pub fn call(&self, method: &str, params: Value) -> Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp: Value = self
            .agent
            .post(&self.url)
            .send_json(body)
            .with_context(|| format!("calling {method} on {}", self.url))?
            .into_json()
            .with_context(|| format!("reading the {method} reply from {}", self.url))?;
        if let Some(e) = resp.get("error") {
            bail!(
                "{method}: {} ({})",
                e["data"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            );
        }
        resp.get("result")
            .cloned()
            .ok_or_else(|| anyhow!("{method}: reply has neither result nor error"))
    }

    /// `abci_query` at `path`, decoded from the base64 JSON value.
    pub fn query(&self, path: &str) -> Result<Value> {
        let r = self.call("abci_query", json!({"path": path}))?;
        let resp = &r["response"];
        if resp["code"].as_u64() != Some(0) {
            bail!("query {path}: {}", resp["log"].as_str().unwrap_or("failed"));
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(resp["value"].as_str().unwrap_or_default())
            .context("query value is not base64")?;
        serde_json::from_slice(&raw).context("query value is not JSON")
    }

    pub fn broadcast_tx_sync(&self, tx: &[u8]) -> Result<Value> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(tx);
        self.call("broadcast_tx_sync", json!({"tx": b64}))
    }
}
