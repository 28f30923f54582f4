//! Append-only segment files beside the key space, for what is written once per height and
//! deleted oldest-first: block bodies with their results, the state history (each
//! height's undo record), and the latest values of the state's Merkle tree (compacted by
//! copying the live ones forward, see `store::tree_log`).
//!
//! Why not sled: in sled that insert-then-delete FIFO left the deleted pages' space to its
//! segment cleaner, which fell behind: with 1,000,000 accounts and `retain_blocks = 1000`
//! the data grew ~5.5 MiB a second for ever, most of it undo records already deleted; and
//! sled rewrote and cached the blocks' pages on the commit path. Here a height's record is
//! appended to the current file of its [`SegKind`], found by its offset (kept in the key
//! space), and pruning deletes whole files: the space comes back at once.
//!
//! A segment is named by a number (the first height written to it; for the tree, a
//! sequence number). Appended bytes become durable at [`Segments::seg_sync`]; the store
//! syncs before it applies the batch that records where they are, so the key space never
//! points past what is on disk, and a crash in between leaves bytes past the recorded end,
//! which the store cuts off when it opens.

use crate::kv::KvError;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The series of segments the store keeps, each in its own directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SegKind {
    /// Each height's undo record (kept for `[storage] state_versions` heights).
    History,
    /// Each height's block and results (kept for `[storage] retain_blocks` heights).
    Blocks,
    /// The latest values of the state's Merkle buckets and nodes, compacted by the store.
    Tree,
    /// The transaction index's sorted runs, merged by the indexer (`store::index_runs`).
    Index,
}

impl SegKind {
    pub const ALL: [SegKind; 4] = [
        SegKind::History,
        SegKind::Blocks,
        SegKind::Tree,
        SegKind::Index,
    ];

    /// The directory's name, and what an error calls the kind.
    pub fn name(self) -> &'static str {
        match self {
            SegKind::History => "history",
            SegKind::Blocks => "blocks",
            SegKind::Tree => "tree",
            SegKind::Index => "index",
        }
    }
}

/// The operations the store needs of its segment files.
pub trait Segments {
    /// Appends `bytes` to segment `seg` (created if missing); returns the offset they start at.
    fn seg_append(&self, kind: SegKind, seg: u64, bytes: &[u8]) -> Result<u64, KvError>;
    /// Makes everything appended to `seg` durable.
    fn seg_sync(&self, kind: SegKind, seg: u64) -> Result<(), KvError>;
    /// `len` bytes of `seg` from `offset`.
    fn seg_read(&self, kind: SegKind, seg: u64, offset: u64, len: u64) -> Result<Vec<u8>, KvError>;
    /// Cuts `seg` to `len` bytes, durably.
    fn seg_truncate(&self, kind: SegKind, seg: u64, len: u64) -> Result<(), KvError>;
    /// Deletes `seg` (a missing one is not an error).
    fn seg_remove(&self, kind: SegKind, seg: u64) -> Result<(), KvError>;
    /// Every segment of `kind` with its length, in number order.
    fn seg_list(&self, kind: SegKind) -> Result<Vec<(u64, u64)>, KvError>;
}

fn io(kind: SegKind, what: &str, seg: u64, e: std::io::Error) -> KvError {
    KvError(format!("{} segment {seg}: {what}: {e}", kind.name()))
}

/// Open files kept at most: a long unpruned chain has hundreds of block segments, and a
/// process has about a thousand descriptors (a handle dropped here stays valid for a read
/// that holds it).
const OPEN_FILES: usize = 32;

/// Segments as files `<dir>/<kind>/<number>.seg`.
pub struct FileSegments {
    dir: PathBuf,
    /// Open handles (reads come from RPC threads while blocks are appended), at most
    /// [`OPEN_FILES`]: the oldest segments' go first.
    open: Mutex<BTreeMap<(SegKind, u64), Arc<File>>>,
}

impl FileSegments {
    pub fn new(dir: PathBuf) -> Result<FileSegments, KvError> {
        for kind in SegKind::ALL {
            let d = dir.join(kind.name());
            std::fs::create_dir_all(&d)
                .map_err(|e| KvError(format!("segment directory {}: {e}", d.display())))?;
        }
        Ok(FileSegments {
            dir,
            open: Mutex::new(BTreeMap::new()),
        })
    }

    fn path(&self, kind: SegKind, seg: u64) -> PathBuf {
        self.dir.join(kind.name()).join(format!("{seg:020}.seg"))
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, BTreeMap<(SegKind, u64), Arc<File>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open handle of `seg`; `create` makes a missing file (and syncs the directory,
    /// so the new name survives a power cut with its synced contents).
    fn handle(&self, kind: SegKind, seg: u64, create: bool) -> Result<Arc<File>, KvError> {
        if let Some(f) = self.handles().get(&(kind, seg)) {
            return Ok(f.clone());
        }
        let path = self.path(kind, seg);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(kind, "open", seg, e))?;
        if !existed {
            File::open(self.dir.join(kind.name()))
                .and_then(|d| d.sync_all())
                .map_err(|e| io(kind, "sync directory", seg, e))?;
        }
        let file = Arc::new(file);
        let mut open = self.handles();
        while open.len() >= OPEN_FILES {
            let Some(oldest) = open
                .keys()
                .find(|k| k.0 == kind)
                .or(open.keys().next())
                .copied()
            else {
                break;
            };
            open.remove(&oldest);
        }
        open.insert((kind, seg), file.clone());
        Ok(file)
    }
}

impl Segments for FileSegments {
    fn seg_append(&self, kind: SegKind, seg: u64, bytes: &[u8]) -> Result<u64, KvError> {
        let f = self.handle(kind, seg, true)?;
        let at = f.metadata().map_err(|e| io(kind, "size", seg, e))?.len();
        f.write_all_at(bytes, at)
            .map_err(|e| io(kind, "append", seg, e))?;
        Ok(at)
    }
    fn seg_sync(&self, kind: SegKind, seg: u64) -> Result<(), KvError> {
        self.handle(kind, seg, false)?
            .sync_data()
            .map_err(|e| io(kind, "sync", seg, e))
    }
    fn seg_read(&self, kind: SegKind, seg: u64, offset: u64, len: u64) -> Result<Vec<u8>, KvError> {
        let f = self.handle(kind, seg, false)?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| io(kind, "read", seg, e))?;
        Ok(buf)
    }
    fn seg_truncate(&self, kind: SegKind, seg: u64, len: u64) -> Result<(), KvError> {
        let f = self.handle(kind, seg, false)?;
        f.set_len(len).map_err(|e| io(kind, "truncate", seg, e))?;
        f.sync_all().map_err(|e| io(kind, "sync", seg, e))
    }
    fn seg_remove(&self, kind: SegKind, seg: u64) -> Result<(), KvError> {
        self.handles().remove(&(kind, seg));
        match std::fs::remove_file(self.path(kind, seg)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(kind, "delete", seg, e)),
            _ => Ok(()),
        }
    }
    fn seg_list(&self, kind: SegKind) -> Result<Vec<(u64, u64)>, KvError> {
        let dir = self.dir.join(kind.name());
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| KvError(format!("segment directory {}: {e}", dir.display())))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(seg) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".seg"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry
                .metadata()
                .map_err(|e| io(kind, "size", seg, e))?
                .len();
            out.push((seg, len));
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// One in-memory segment: its bytes, and how many of them a power cut keeps.
#[derive(Default, Clone)]
pub(crate) struct MemSegment {
    pub bytes: Vec<u8>,
    pub synced: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_append_read_truncate_list_and_remove() {
        use SegKind::*;
        let dir = tempfile::tempdir().unwrap();
        let s = FileSegments::new(dir.path().join("h")).unwrap();
        assert_eq!(s.seg_append(History, 7, b"hello").unwrap(), 0);
        assert_eq!(s.seg_append(History, 7, b" world").unwrap(), 5);
        s.seg_sync(History, 7).unwrap();
        assert_eq!(s.seg_append(History, 12, b"x").unwrap(), 0);
        assert_eq!(s.seg_append(Blocks, 7, b"block").unwrap(), 0);
        assert_eq!(s.seg_read(History, 7, 6, 5).unwrap(), b"world");
        assert_eq!(s.seg_list(History).unwrap(), vec![(7, 11), (12, 1)]);
        assert_eq!(s.seg_list(Blocks).unwrap(), vec![(7, 5)], "kinds apart");
        s.seg_truncate(History, 7, 5).unwrap();
        assert!(s.seg_read(History, 7, 3, 5).is_err(), "past the end");
        s.seg_remove(History, 12).unwrap();
        s.seg_remove(History, 12).unwrap();
        // A fresh handle on the same directory sees the same files.
        let again = FileSegments::new(dir.path().join("h")).unwrap();
        assert_eq!(again.seg_list(History).unwrap(), vec![(7, 5)]);
        assert_eq!(again.seg_read(History, 7, 0, 5).unwrap(), b"hello");
        assert!(again.seg_read(History, 12, 0, 1).is_err(), "removed");
        assert_eq!(again.seg_read(Blocks, 7, 0, 5).unwrap(), b"block");
    }

    #[test]
    fn open_files_stay_bounded_and_every_segment_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileSegments::new(dir.path().to_path_buf()).unwrap();
        let n = OPEN_FILES as u64 * 3;
        for seg in 0..n {
            s.seg_append(SegKind::Blocks, seg, &seg.to_le_bytes())
                .unwrap();
        }
        assert!(s.handles().len() <= OPEN_FILES);
        for seg in (0..n).rev() {
            let bytes = s.seg_read(SegKind::Blocks, seg, 0, 8).unwrap();
            assert_eq!(bytes, seg.to_le_bytes());
        }
        assert!(s.handles().len() <= OPEN_FILES);
    }
}
