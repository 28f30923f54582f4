//! Key files: an ed25519 secret as hex in JSON, written atomically with mode 0600 and refused
//! on load when other users can read it (a leaked consensus key is a slashing waiting to
//! happen).

use basalt_types::{Address, PrivateKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a key file: {reason}")]
    Format { path: String, reason: String },
    #[error("{path}: readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: String, mode: u32 },
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists { path: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    /// Account / validator address (informational; checked on load).
    address: Address,
    /// The 32-byte ed25519 secret seed, hex.
    secret: String,
}

/// A new key from the operating system's randomness.
pub fn generate() -> PrivateKey {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    PrivateKey::from_seed(seed)
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename) with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub fn save(path: &Path, key: &PrivateKey) -> Result<(), KeyError> {
    let p = path.display().to_string();
    if path.exists() {
        return Err(KeyError::Exists { path: p });
    }
    let file = KeyFile {
        address: key.public_key().address(),
        secret: hex_encode(&key.seed()),
    };
    let json = serde_json::to_vec_pretty(&file).expect("key file serialises");
    write_private(path, &json).map_err(|source| KeyError::Io { path: p, source })
}

pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
    let p = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Io {
        path: p.clone(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: p, mode });
        }
    }
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: p.clone(),
        source,
    })?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeyError::Format {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    let bytes = hex_decode(&file.secret).ok_or_else(|| KeyError::Format {
        path: p.clone(),
        reason: "secret is not 64 hex digits".into(),
    })?;
    let key = PrivateKey::from_seed(bytes);
    if key.public_key().address() != file.address {
        return Err(KeyError::Format {
            path: p,
            reason: "address does not match the secret".into(),
        });
    }
    Ok(key)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_with_private_permissions_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/alice.json");
        let key = generate();
        save(&path, &key).unwrap();
        assert_eq!(load(&path).unwrap().seed(), key.seed());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(matches!(
            save(&path, &generate()),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(load(&path).unwrap().seed(), key.seed(), "unchanged");
    }

    #[cfg(unix)]
    #[test]
    fn a_world_readable_key_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        save(&path, &generate()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::Permissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn tampered_key_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        save(&path, &generate()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let other = generate().public_key().address().to_hex();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tampered = text.replace(v["address"].as_str().unwrap(), &other);
        write_private(&path, tampered.as_bytes()).unwrap();
        assert!(matches!(load(&path), Err(KeyError::Format { .. })));
        write_private(&path, b"{}").unwrap();
        assert!(matches!(load(&path), Err(KeyError::Format { .. })));
    }
}
