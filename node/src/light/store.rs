//! The light client's trusted light blocks on disk: one JSON file per verified height in the
//! light client's home (readable, and written atomically: a temporary file renamed into
//! place), the newest [`KEEP`] kept, as CometBFT's light store prunes.

use super::verify::LightBlock;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Trusted light blocks kept.
pub const KEEP: usize = 1_000;

pub struct TrustedStore {
    dir: PathBuf,
}

impl TrustedStore {
    pub fn open(home: &Path) -> Result<TrustedStore> {
        let dir = home.join("trusted");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TrustedStore { dir })
    }

    fn path(&self, height: u64) -> PathBuf {
        self.dir.join(format!("{height:020}.json"))
    }

    /// The heights held, ascending.
    pub fn heights(&self) -> Result<Vec<u64>> {
        let mut hs: Vec<u64> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        hs.sort_unstable();
        Ok(hs)
    }

    pub fn get(&self, height: u64) -> Result<Option<LightBlock>> {
        let path = self.path(height);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is damaged; remove it to trust again", path.display())
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn latest(&self) -> Result<Option<LightBlock>> {
        match self.heights()?.last() {
            Some(&h) => self.get(h),
            None => Ok(None),
        }
    }

    /// Stores a verified light block (fsynced before the rename), then prunes the oldest.
    pub fn save(&self, lb: &LightBlock) -> Result<()> {
        let path = self.path(lb.height());
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(lb)?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        let heights = self.heights()?;
        for h in heights.iter().take(heights.len().saturating_sub(KEEP)) {
            std::fs::remove_file(self.path(*h))?;
        }
        Ok(())
    }
}
