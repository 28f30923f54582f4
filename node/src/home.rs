//! Where a node keeps its files (CometBFT's layout, so operators find their way):
//!
//! ```text
//! HOME/config/config.toml              settings (commented TOML)
//! HOME/config/genesis.json             the chain's genesis
//! HOME/config/priv_validator_key.json  consensus key (signs votes), mode 0600
//! HOME/keys/<name>.json                account keys (sign transactions), mode 0600
//! HOME/data/priv_validator_state.json  last signed height/round/step (double-sign guard)
//! HOME/data/cs.wal                     consensus write-ahead log
//! ```

use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }
    pub fn config_file(&self) -> PathBuf {
        self.config_dir().join("config.toml")
    }
    pub fn genesis_file(&self) -> PathBuf {
        self.config_dir().join("genesis.json")
    }
    pub fn validator_key_file(&self) -> PathBuf {
        self.config_dir().join("priv_validator_key.json")
    }
    pub fn validator_state_file(&self) -> PathBuf {
        self.data_dir().join("priv_validator_state.json")
    }
    pub fn wal_file(&self) -> PathBuf {
        self.data_dir().join("cs.wal")
    }
    pub fn account_key_file(&self, name: &str) -> PathBuf {
        self.keys_dir().join(format!("{name}.json"))
    }
}
