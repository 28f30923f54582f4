//! Token amounts in JSON as decimal strings (as the Cosmos SDK writes them): JavaScript
//! clients lose precision on numbers above 2^53.

use serde::{de::Error, Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(u64),
    }
    match Either::deserialize(d)? {
        Either::Text(t) => t
            .parse()
            .map_err(|_| D::Error::custom(format!("not a token amount: {t:?}"))),
        Either::Number(n) => Ok(n as u128),
    }
}
