//! Signed transactions: borsh `SignedTx { body, public_key, signature }`. The signature
//! covers the body under the transaction sign domain, and the body carries the chain id.

use basalt_staking::Ppm;
use basalt_types::{sign_bytes, Address, Hash, PrivateKey, PublicKey, SignDomain, Signature};
use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub enum Msg {
    Transfer {
        to: Address,
        #[serde(with = "basalt_staking::amount")]
        amount: u128,
    },
    CreateValidator {
        consensus_key: PublicKey,
        moniker: String,
        commission: Ppm,
        #[serde(with = "basalt_staking::amount")]
        self_bond: u128,
    },
    EditValidator {
        moniker: Option<String>,
        commission: Option<Ppm>,
    },
    Delegate {
        validator: Address,
        #[serde(with = "basalt_staking::amount")]
        amount: u128,
    },
    Undelegate {
        validator: Address,
        #[serde(with = "basalt_staking::amount")]
        amount: u128,
    },
    Unjail,
}

impl Msg {
    /// The event/action name (`message.action`).
    pub fn action(&self) -> &'static str {
        match self {
            Msg::Transfer { .. } => "transfer",
            Msg::CreateValidator { .. } => "create_validator",
            Msg::EditValidator { .. } => "edit_validator",
            Msg::Delegate { .. } => "delegate",
            Msg::Undelegate { .. } => "undelegate",
            Msg::Unjail => "unjail",
        }
    }

    /// Tokens the message takes from the sender's balance (beyond the fee).
    pub fn spends(&self) -> u128 {
        match self {
            Msg::Transfer { amount, .. } | Msg::Delegate { amount, .. } => *amount,
            Msg::CreateValidator { self_bond, .. } => *self_bond,
            _ => 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct TxBody {
    pub chain_id: String,
    /// Number of transactions the sender has had executed before this one.
    pub nonce: u64,
    #[serde(with = "basalt_staking::amount")]
    pub fee: u128,
    pub msg: Msg,
}

/// The sender's key travels as its 32 encoded bytes: decoding a transaction does no curve
/// arithmetic, and a key that is not a valid point simply fails signature verification.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct SignedTx {
    pub body: TxBody,
    pub public_key: [u8; 32],
    pub signature: Signature,
}

impl TxBody {
    pub fn sign_bytes(&self) -> Vec<u8> {
        sign_bytes(SignDomain::Transaction, &self.chain_id, self)
    }

    pub fn sign(self, key: &PrivateKey) -> SignedTx {
        let signature = key.sign(&self.sign_bytes());
        SignedTx {
            body: self,
            public_key: key.public_key().to_bytes(),
            signature,
        }
    }
}

impl SignedTx {
    pub fn sender(&self) -> Address {
        Address::of_key_bytes(&self.public_key)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("borsh into a Vec is infallible")
    }

    /// Decodes exactly one transaction (trailing bytes are an error).
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, String> {
        borsh::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn verify_signature(&self) -> bool {
        PublicKey::from_bytes(&self.public_key)
            .is_ok_and(|k| k.verify(&self.body.sign_bytes(), &self.signature).is_ok())
    }
}

/// Transaction hash: SHA-256 of the bytes, shown upper-case hex.
pub fn tx_hash(bytes: &[u8]) -> Hash {
    Hash::digest(bytes)
}
