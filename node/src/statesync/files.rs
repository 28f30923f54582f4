//! Snapshots on disk: `<dir>/<height>/meta` and `chunk-<i>`, each snapshot written into
//! `<height>.tmp` and renamed into place once complete, so that a listed snapshot is always
//! whole; the oldest beyond the number to keep are deleted.

use super::{SnapshotInfo, SnapshotMeta};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a snapshot file: {reason}")]
    Corrupt { path: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The snapshots a node keeps.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    keep: usize,
}

/// A snapshot being written: chunks first, the metadata last.
pub struct SnapshotWriter {
    tmp: PathBuf,
    fin: PathBuf,
}

impl SnapshotDir {
    pub fn new(dir: impl Into<PathBuf>, keep: usize) -> SnapshotDir {
        SnapshotDir {
            dir: dir.into(),
            keep: keep.max(1),
        }
    }

    /// The heights of the complete snapshots held, oldest first.
    pub fn heights(&self) -> Result<Vec<u64>, FilesError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for e in entries {
            let e = e.map_err(io(&self.dir))?;
            if let Some(h) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
                out.push(h);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// What peers are offered: each complete snapshot's height and metadata hash.
    /// Peers ask for this every time they look for snapshots: it reads each snapshot's
    /// small `info` file (written with it), not its metadata, which holds a whole block.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, FilesError> {
        let mut out = Vec::new();
        for h in self.heights()? {
            if let Some(info) = self.decoded(h, "info")? {
                out.push(info);
            }
        }
        Ok(out)
    }

    pub fn meta(&self, height: u64) -> Result<Option<SnapshotMeta>, FilesError> {
        self.decoded(height, "meta")
    }

    /// The borsh file `name` of the snapshot of `height`, if there is one.
    fn decoded<T: borsh::BorshDeserialize>(
        &self,
        height: u64,
        name: &str,
    ) -> Result<Option<T>, FilesError> {
        let path = self.dir.join(height.to_string()).join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        crate::wire::decode(&bytes)
            .map(Some)
            .map_err(|reason| FilesError::Corrupt {
                path: path.display().to_string(),
                reason,
            })
    }

    pub fn chunk(&self, height: u64, index: u32) -> Result<Option<Vec<u8>>, FilesError> {
        let path = self
            .dir
            .join(height.to_string())
            .join(format!("chunk-{index}"));
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Starts writing the snapshot of `height` (over any unfinished one).
    pub fn writer(&self, height: u64) -> Result<SnapshotWriter, FilesError> {
        let tmp = self.dir.join(format!("{height}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(SnapshotWriter {
            tmp,
            fin: self.dir.join(height.to_string()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Deletes the oldest complete snapshots beyond the number kept, and unfinished ones.
    pub fn prune(&self) -> Result<(), FilesError> {
        let heights = self.heights()?;
        let drop = heights.len().saturating_sub(self.keep);
        for h in &heights[..drop] {
            let p = self.dir.join(h.to_string());
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
        // Snapshots are taken one at a time: a `.tmp` here is one a crash interrupted.
        for e in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let p = e.map_err(io(&self.dir))?.path();
            if p.extension().is_some_and(|x| x == "tmp") {
                std::fs::remove_dir_all(&p).map_err(io(&p))?;
            }
        }
        Ok(())
    }
}

impl SnapshotWriter {
    /// A directory for the writer's own temporary files (gone with an unfinished snapshot;
    /// the caller empties and removes it before [`SnapshotWriter::finish`]).
    pub fn scratch(&self) -> Result<PathBuf, FilesError> {
        let p = self.tmp.join("scratch");
        std::fs::create_dir_all(&p).map_err(io(&p))?;
        Ok(p)
    }

    pub fn chunk(&self, index: u32, bytes: &[u8]) -> Result<(), FilesError> {
        let p = self.tmp.join(format!("chunk-{index}"));
        std::fs::write(&p, bytes).map_err(io(&p))
    }

    /// Writes the metadata and what peers are listed of it, and makes the snapshot visible.
    pub fn finish(self, meta: &SnapshotMeta) -> Result<(), FilesError> {
        let p = self.tmp.join("meta");
        std::fs::write(&p, crate::wire::encode(meta)).map_err(io(&p))?;
        let p = self.tmp.join("info");
        std::fs::write(&p, crate::wire::encode(&meta.info())).map_err(io(&p))?;
        if self.fin.exists() {
            std::fs::remove_dir_all(&self.fin).map_err(io(&self.fin))?;
        }
        std::fs::rename(&self.tmp, &self.fin).map_err(io(&self.fin))
    }
}

/// A build with the `byzantine` feature started with `BASALT_BAD_CHUNKS=1` serves every
/// chunk with its first byte flipped (tests of state sync's refusal of bad chunks). A
/// default build has no such switch.
fn misbehave(chunk: Vec<u8>) -> Vec<u8> {
    #[cfg(feature = "byzantine")]
    if std::env::var("BASALT_BAD_CHUNKS").as_deref() == Ok("1") {
        let mut chunk = chunk;
        if let Some(b) = chunk.first_mut() {
            *b ^= 0xff;
        }
        return chunk;
    }
    chunk
}

/// A peer's snapshot request answered from `dir` (a read that fails is this node's
/// problem: the peer is told, and the error logged).
pub fn serve(dir: &SnapshotDir, request: &crate::wire::SyncRequest) -> crate::wire::SyncResponse {
    use crate::wire::{SyncRequest, SyncResponse};
    let answer = match request {
        SyncRequest::Snapshots => dir.list().map(SyncResponse::Snapshots),
        SyncRequest::SnapshotMeta { height } => dir.meta(*height).map(|m| match m {
            Some(m) => SyncResponse::SnapshotMeta(Box::new(m)),
            None => SyncResponse::Refused(format!("no snapshot of height {height}")),
        }),
        SyncRequest::Chunk { height, index } => dir.chunk(*height, *index).map(|c| match c {
            Some(c) => SyncResponse::Chunk(misbehave(c)),
            None => {
                SyncResponse::Refused(format!("no chunk {index} of a snapshot of height {height}"))
            }
        }),
        _ => Ok(SyncResponse::Refused("not a snapshot request".into())),
    };
    answer.unwrap_or_else(|e| {
        tracing::error!("cannot serve a snapshot: {e}");
        SyncResponse::Refused("the node could not read its snapshots".into())
    })
}
