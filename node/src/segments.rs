//! Append-only segment files beside the key space, for the state history (each height's
//! undo record).
//!
//! Why not sled: a history is written once, read rarely, and deleted oldest-first a window
//! later. In sled that insert-then-delete FIFO left the deleted pages' space to its segment
//! cleaner, which fell behind: with 1,000,000 accounts and `retain_blocks = 1000` the data
//! grew ~5.5 MiB a second for ever, most of it undo records already deleted. Here a height's
//! record is appended to the current file, found by its offset (kept in the key space), and
//! pruning deletes whole files: the space comes back at once.
//!
//! A segment is named by a number (the first height written to it). Appended bytes become
//! durable at [`Segments::seg_sync`]; the store syncs before it applies the batch that
//! records where they are, so the key space never points past what is on disk, and a crash
//! in between leaves bytes past the recorded end, which the store cuts off when it opens.

use crate::kv::KvError;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The operations the store needs of its segment files.
pub trait Segments {
    /// Appends `bytes` to segment `seg` (created if missing); returns the offset they start at.
    fn seg_append(&self, seg: u64, bytes: &[u8]) -> Result<u64, KvError>;
    /// Makes everything appended to `seg` durable.
    fn seg_sync(&self, seg: u64) -> Result<(), KvError>;
    /// `len` bytes of `seg` from `offset`.
    fn seg_read(&self, seg: u64, offset: u64, len: u64) -> Result<Vec<u8>, KvError>;
    /// Cuts `seg` to `len` bytes, durably.
    fn seg_truncate(&self, seg: u64, len: u64) -> Result<(), KvError>;
    /// Deletes `seg` (a missing one is not an error).
    fn seg_remove(&self, seg: u64) -> Result<(), KvError>;
    /// Every segment with its length, in number order.
    fn seg_list(&self) -> Result<Vec<(u64, u64)>, KvError>;
}

fn io(what: &str, seg: u64, e: std::io::Error) -> KvError {
    KvError(format!("state history segment {seg}: {what}: {e}"))
}

/// Segments as files `<dir>/<number>.undo`.
pub struct FileSegments {
    dir: PathBuf,
    /// Open handles (reads come from RPC threads while blocks are appended).
    open: Mutex<BTreeMap<u64, Arc<File>>>,
}

impl FileSegments {
    pub fn new(dir: PathBuf) -> Result<FileSegments, KvError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| KvError(format!("state history directory {}: {e}", dir.display())))?;
        Ok(FileSegments {
            dir,
            open: Mutex::new(BTreeMap::new()),
        })
    }

    fn path(&self, seg: u64) -> PathBuf {
        self.dir.join(format!("{seg:020}.undo"))
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<File>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The open handle of `seg`; `create` makes a missing file (and syncs the directory,
    /// so the new name survives a power cut with its synced contents).
    fn handle(&self, seg: u64, create: bool) -> Result<Arc<File>, KvError> {
        if let Some(f) = self.handles().get(&seg) {
            return Ok(f.clone());
        }
        let path = self.path(seg);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&path)
            .map_err(|e| io("open", seg, e))?;
        if !existed {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io("sync directory", seg, e))?;
        }
        let file = Arc::new(file);
        self.handles().insert(seg, file.clone());
        Ok(file)
    }
}

impl Segments for FileSegments {
    fn seg_append(&self, seg: u64, bytes: &[u8]) -> Result<u64, KvError> {
        let f = self.handle(seg, true)?;
        let at = f.metadata().map_err(|e| io("size", seg, e))?.len();
        f.write_all_at(bytes, at)
            .map_err(|e| io("append", seg, e))?;
        Ok(at)
    }
    fn seg_sync(&self, seg: u64) -> Result<(), KvError> {
        self.handle(seg, false)?
            .sync_data()
            .map_err(|e| io("sync", seg, e))
    }
    fn seg_read(&self, seg: u64, offset: u64, len: u64) -> Result<Vec<u8>, KvError> {
        let f = self.handle(seg, false)?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| io("read", seg, e))?;
        Ok(buf)
    }
    fn seg_truncate(&self, seg: u64, len: u64) -> Result<(), KvError> {
        let f = self.handle(seg, false)?;
        f.set_len(len).map_err(|e| io("truncate", seg, e))?;
        f.sync_all().map_err(|e| io("sync", seg, e))
    }
    fn seg_remove(&self, seg: u64) -> Result<(), KvError> {
        self.handles().remove(&seg);
        match std::fs::remove_file(self.path(seg)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("delete", seg, e)),
            _ => Ok(()),
        }
    }
    fn seg_list(&self) -> Result<Vec<(u64, u64)>, KvError> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| KvError(format!("state history {}: {e}", self.dir.display())))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(seg) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".undo"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let len = entry.metadata().map_err(|e| io("size", seg, e))?.len();
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
        let dir = tempfile::tempdir().unwrap();
        let s = FileSegments::new(dir.path().join("h")).unwrap();
        assert_eq!(s.seg_append(7, b"hello").unwrap(), 0);
        assert_eq!(s.seg_append(7, b" world").unwrap(), 5);
        s.seg_sync(7).unwrap();
        assert_eq!(s.seg_append(12, b"x").unwrap(), 0);
        assert_eq!(s.seg_read(7, 6, 5).unwrap(), b"world");
        assert_eq!(s.seg_list().unwrap(), vec![(7, 11), (12, 1)]);
        s.seg_truncate(7, 5).unwrap();
        assert!(s.seg_read(7, 3, 5).is_err(), "past the end");
        s.seg_remove(12).unwrap();
        s.seg_remove(12).unwrap();
        // A fresh handle on the same directory sees the same files.
        let again = FileSegments::new(dir.path().join("h")).unwrap();
        assert_eq!(again.seg_list().unwrap(), vec![(7, 5)]);
        assert_eq!(again.seg_read(7, 0, 5).unwrap(), b"hello");
        assert!(again.seg_read(12, 0, 1).is_err(), "removed");
    }
}
