//! `abci_query` from the stored state, off the consensus path: at the latest height or at
//! any retained one (`height`), with a Merkle proof of the raw stored value (`prove`).
//!
//! The proof is one `proofOps` op of type [`PROOF_OP`]: `key` is the state key, `data` the
//! borsh of [`StateQueryProof`], which carries the raw value (absent for an absent key) and
//! the [`StateProof`] against the app hash of the next block's header (CometBFT's
//! convention: the state after height H is committed in header H+1).

use super::reads::ReadView;
use crate::api::{abci_path, internal};
use basalt_rpc::{param_u64, shapes, RpcError};
use basalt_runtime::{state::keys, Runtime, StateProof, StateStore};
use basalt_types::Address;
use borsh::{BorshDeserialize, BorshSerialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The `type` of Basalt's proof op.
pub const PROOF_OP: &str = "basalt:state";

/// What a proof op's `data` holds.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct StateQueryProof {
    /// The raw stored value (borsh), `None` when the key is absent.
    pub value: Option<Vec<u8>>,
    pub proof: StateProof,
}

/// The state key a provable query path reads: `/account/ADDR`.
pub fn provable_key(path: &str) -> Option<Result<Vec<u8>, String>> {
    let addr = path.trim_matches('/').strip_prefix("account/")?;
    Some(Address::from_hex(addr).map(|a| keys::account(&a).to_vec()))
}

fn param_bool(params: &Map<String, Value>, name: &str) -> Result<bool, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(_) => Err(RpcError::invalid_params(format!(
            "{name} must be true or false"
        ))),
    }
}

impl ReadView<'_> {
    pub(super) fn abci_query(&self, params: &Map<String, Value>) -> Result<Value, RpcError> {
        let path = abci_path(params)?;
        let asked = param_u64(params, "height")?.unwrap_or(0);
        let prove = param_bool(params, "prove")?;
        let latest = self
            .store
            .state_height()
            .map_err(internal)?
            .ok_or_else(|| RpcError::internal("the node has no state yet"))?;
        let height = if asked == 0 { latest } else { asked };
        if height > latest {
            return Err(RpcError::invalid_params(format!(
                "height {height} must be less than or equal to the current blockchain height {latest}"
            )));
        }
        let earliest = self.store.earliest_state().map_err(internal)?;
        if height < earliest {
            return Err(RpcError::invalid_params(format!(
                "height {height} is not available, lowest height is {earliest}"
            )));
        }
        let state = self.store.state_at(height);
        let runtime = Runtime::view(self.genesis, Arc::new(state.clone())).map_err(internal)?;
        let (mut code, mut log, mut value) = match runtime.query(&path) {
            Ok(v) => (0, String::new(), shapes::b64(v.to_string().as_bytes())),
            Err(e) => (1, e.to_string(), String::new()),
        };
        let mut proof_ops = Value::Null;
        if prove && code == 0 {
            match provable_key(&path) {
                Some(Ok(key)) => {
                    let proof = StateQueryProof {
                        value: state.get(&key).map_err(internal)?,
                        proof: StateProof::build(&state, &key).map_err(internal)?,
                    };
                    let data = borsh::to_vec(&proof).map_err(internal)?;
                    proof_ops = json!({"ops": [{"type": PROOF_OP, "key": shapes::b64(&key), "data": shapes::b64(&data)}]});
                }
                Some(Err(e)) => (code, log) = (1, format!("bad address: {e}")),
                None => {
                    (code, log, value) = (
                        1,
                        "proofs are served for /account/ADDR paths".into(),
                        String::new(),
                    )
                }
            }
        }
        Ok(
            json!({"response": {"code": code, "log": log, "info": "", "index": "0",
            "key": shapes::b64(path.as_bytes()), "value": value, "proofOps": proof_ops,
            "height": height.to_string(), "codespace": ""}}),
        )
    }
}
