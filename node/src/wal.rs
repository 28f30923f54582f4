//! The consensus write-ahead log: every input the engine accepted at the current height, so a
//! restarted node rebuilds its exact pre-crash state (CometBFT's WAL).
//!
//! Format: the magic `BSLTWAL2` (`BSLTWAL1` held votes without timestamps), then records
//! `[len: u32 LE][crc32: u32 LE][borsh payload]`. Every record is checksummed (CometBFT
//! users lost nodes to silently corrupted WALs). On open, a torn tail — a last record cut short or with a bad checksum, what a crash mid-write
//! leaves — is truncated away and reported; damage followed by valid records is not a crash
//! artefact and fails loudly instead. Own signed messages are appended with `durable = true`
//! (fsync) before they leave the node.

use borsh::{BorshDeserialize, BorshSerialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"BSLTWAL2";
/// No legitimate record is this large; a bigger length field means damage.
const MAX_RECORD: u32 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("WAL {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("WAL {path} is not a Basalt WAL (bad magic); refusing to touch it")]
    BadMagic { path: String },
    #[error("WAL {path} is corrupt at byte {offset}: {reason}; valid records follow, so this is not a torn write. Move the file aside to start without it (the double-sign guard still protects you)")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
}

/// What `open` found.
#[derive(Debug)]
pub struct Replay<T> {
    pub records: Vec<T>,
    /// Bytes cut from a torn tail, if any.
    pub repaired_tail: Option<u64>,
}

pub struct Wal<T> {
    file: File,
    path: PathBuf,
    /// Records were appended since the last reset (a reset of an empty log costs no fsync,
    /// which matters when block sync commits hundreds of blocks a second).
    dirty: bool,
    _record: PhantomData<T>,
}

enum Scan {
    Record { len: u32, next: u64 },
    End,
    Torn,
    Corrupt(String),
}

fn scan_one(data: &[u8], at: usize) -> Scan {
    let rest = &data[at..];
    if rest.is_empty() {
        return Scan::End;
    }
    if rest.len() < 8 {
        return Scan::Torn;
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        // A wild length at the very end is a torn header; anywhere else it is damage.
        return Scan::Corrupt(format!("record length {len} is implausible"));
    }
    let end = 8 + len as usize;
    if rest.len() < end {
        return Scan::Torn;
    }
    if crc32fast::hash(&rest[8..end]) != crc {
        return if rest.len() == end {
            Scan::Torn
        } else {
            Scan::Corrupt("checksum mismatch".into())
        };
    }
    Scan::Record {
        len,
        next: (at + end) as u64,
    }
}

/// The records of a WAL image (magic included) and the length of a torn tail, or the
/// offset and reason of damage that is not a torn tail. The file WAL and [`MemWal`] both
/// read through this.
struct Parsed<T> {
    records: Vec<T>,
    torn: Option<u64>,
}

fn parse<T: BorshDeserialize>(data: &[u8]) -> Result<Parsed<T>, (u64, String)> {
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    loop {
        match scan_one(data, at) {
            Scan::Record { len, next } => {
                let payload = &data[at + 8..at + 8 + len as usize];
                let record = T::try_from_slice(payload)
                    .map_err(|e| (at as u64, format!("record does not decode: {e}")))?;
                records.push(record);
                at = next as usize;
            }
            Scan::End => {
                return Ok(Parsed {
                    records,
                    torn: None,
                })
            }
            Scan::Torn => {
                return Ok(Parsed {
                    records,
                    torn: Some((data.len() - at) as u64),
                })
            }
            Scan::Corrupt(reason) => return Err((at as u64, reason)),
        }
    }
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(8 + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    buf.extend_from_slice(payload);
    buf
}

/// What the node's decision logic needs of its WAL: the file [`Wal`] in `basalt`, a
/// [`MemWal`] under the simulator.
pub trait ConsensusWal<T>: Send {
    /// Appends one record; with `durable`, it survives a crash once this returns.
    fn append(&mut self, record: &T, durable: bool) -> Result<(), WalError>;
    /// Makes every appended record durable.
    fn sync(&mut self) -> Result<(), WalError>;
    /// Empties the log (durably).
    fn reset(&mut self) -> Result<(), WalError>;
}

impl<T: BorshSerialize + BorshDeserialize + Send> ConsensusWal<T> for Wal<T> {
    fn append(&mut self, record: &T, durable: bool) -> Result<(), WalError> {
        Wal::append(self, record, durable)
    }
    fn sync(&mut self) -> Result<(), WalError> {
        Wal::sync(self)
    }
    fn reset(&mut self) -> Result<(), WalError> {
        Wal::reset(self)
    }
}

/// A WAL in memory with the file's exact byte format, for the simulator: a crash keeps what
/// was made durable, loses the rest, and may leave a torn piece of the next record, which
/// the replay cuts off as the file WAL does. Clones share one log (the "disk").
#[derive(Clone)]
pub struct MemWal<T> {
    image: std::sync::Arc<std::sync::Mutex<(Vec<u8>, usize)>>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Default for MemWal<T> {
    fn default() -> Self {
        MemWal {
            image: std::sync::Arc::new(std::sync::Mutex::new((MAGIC.to_vec(), MAGIC.len()))),
            _record: PhantomData,
        }
    }
}

impl<T: BorshSerialize + BorshDeserialize> MemWal<T> {
    fn image(&self) -> std::sync::MutexGuard<'_, (Vec<u8>, usize)> {
        self.image.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A crash: the bytes past the durable length are lost, except the first `keep` of
    /// them (a torn write when that cuts a record).
    pub fn crash(&self, keep: usize) {
        let mut img = self.image();
        let durable = img.1;
        let len = img.0.len().min(durable + keep);
        img.0.truncate(len);
    }

    /// Bytes written since the last durable point.
    pub fn unsynced_bytes(&self) -> usize {
        let img = self.image();
        img.0.len() - img.1
    }

    /// What a restart reads back, and the torn tail it cut (as [`Wal::open`]).
    pub fn replay(&self) -> Result<Replay<T>, WalError> {
        let mut img = self.image();
        let parsed = parse::<T>(&img.0).map_err(|(offset, reason)| WalError::Corrupt {
            path: "memory".into(),
            offset,
            reason,
        })?;
        if let Some(cut) = parsed.torn {
            let len = img.0.len() - cut as usize;
            img.0.truncate(len);
        }
        img.1 = img.0.len();
        Ok(Replay {
            records: parsed.records,
            repaired_tail: parsed.torn,
        })
    }
}

impl<T: BorshSerialize + BorshDeserialize> ConsensusWal<T> for MemWal<T> {
    fn append(&mut self, record: &T, durable: bool) -> Result<(), WalError> {
        let payload = borsh::to_vec(record).expect("borsh into a Vec is infallible");
        let mut img = self.image();
        img.0.extend_from_slice(&frame(&payload));
        if durable {
            img.1 = img.0.len();
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<(), WalError> {
        let mut img = self.image();
        img.1 = img.0.len();
        Ok(())
    }
    fn reset(&mut self) -> Result<(), WalError> {
        let mut img = self.image();
        img.0.truncate(MAGIC.len());
        img.1 = MAGIC.len();
        Ok(())
    }
}

impl<T: BorshSerialize + BorshDeserialize> Wal<T> {
    /// Opens (creating if needed) and replays the WAL at `path`.
    pub fn open(path: &Path) -> Result<(Wal<T>, Replay<T>), WalError> {
        let p = path.display().to_string();
        let io = |source| WalError::Io {
            path: p.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;
        let mut repaired_tail = None;
        if data.len() < MAGIC.len() && MAGIC.starts_with(&data) {
            // New, or torn while its header was being written: nothing was logged yet.
            if !data.is_empty() {
                repaired_tail = Some(data.len() as u64);
            }
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            file.write_all(MAGIC).map_err(io)?;
            file.sync_all().map_err(io)?;
            data.clear();
            data.extend_from_slice(MAGIC);
        } else if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
            return Err(WalError::BadMagic { path: p });
        }
        let parsed = parse::<T>(&data).map_err(|(offset, reason)| WalError::Corrupt {
            path: p.clone(),
            offset,
            reason,
        })?;
        if let Some(cut) = parsed.torn {
            repaired_tail = Some(cut);
            file.set_len((data.len() as u64) - cut).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let records = parsed.records;
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((
            Wal {
                file,
                path: path.to_path_buf(),
                dirty: !records.is_empty(),
                _record: PhantomData,
            },
            Replay {
                records,
                repaired_tail,
            },
        ))
    }

    fn io(&self, source: std::io::Error) -> WalError {
        WalError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Appends one record; with `durable`, it is on disk when this returns.
    pub fn append(&mut self, record: &T, durable: bool) -> Result<(), WalError> {
        let payload = borsh::to_vec(record).expect("borsh into a Vec is infallible");
        self.file
            .write_all(&frame(&payload))
            .map_err(|e| self.io(e))?;
        self.dirty = true;
        if durable {
            self.file.sync_data().map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    /// Makes every appended record durable (graceful shutdown: gossiped votes are appended
    /// without an fsync of their own).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.file.sync_data().map_err(|e| self.io(e))
    }

    /// Empties the log (a new height begins: everything before it is in the block store).
    pub fn reset(&mut self) -> Result<(), WalError> {
        if !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        self.file
            .set_len(MAGIC.len() as u64)
            .map_err(|e| self.io(e))?;
        self.file.seek(SeekFrom::End(0)).map_err(|e| self.io(e))?;
        self.file.sync_all().map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Rec = (u64, String);

    fn write(path: &Path, n: u64) {
        let (mut wal, _) = Wal::<Rec>::open(path).unwrap();
        for i in 0..n {
            wal.append(&(i, format!("record {i}")), i % 2 == 0).unwrap();
        }
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cs.wal");
        write(&path, 5);
        let (mut wal, replay) = Wal::<Rec>::open(&path).unwrap();
        assert_eq!(replay.records.len(), 5);
        assert_eq!(replay.records[3], (3, "record 3".to_string()));
        assert!(replay.repaired_tail.is_none());
        wal.append(&(5, "more".into()), true).unwrap();
        wal.reset().unwrap();
        wal.append(&(9, "after reset".into()), true).unwrap();
        let (_, replay) = Wal::<Rec>::open(&path).unwrap();
        assert_eq!(replay.records, vec![(9, "after reset".to_string())]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_reported_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cs.wal");
        write(&path, 4);
        let full = std::fs::metadata(&path).unwrap().len();
        for cut in [1u64, 5, 9] {
            let copy = dir.path().join(format!("cut{cut}.wal"));
            std::fs::copy(&path, &copy).unwrap();
            let f = OpenOptions::new().write(true).open(&copy).unwrap();
            f.set_len(full - cut).unwrap();
            let (mut wal, replay) = Wal::<Rec>::open(&copy).unwrap();
            assert_eq!(
                replay.records.len(),
                3,
                "cut {cut}: the partial last record is dropped"
            );
            assert!(replay.repaired_tail.is_some());
            wal.append(&(7, "new".into()), true).unwrap();
            let (_, again) = Wal::<Rec>::open(&copy).unwrap();
            assert_eq!(again.records.len(), 4);
            assert_eq!(again.records[3], (7, "new".to_string()));
            assert!(again.repaired_tail.is_none());
        }
        // A garbled last record (complete length, bad bytes) is a torn write too.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, replay) = Wal::<Rec>::open(&path).unwrap();
        assert_eq!(replay.records.len(), 3);
    }

    #[test]
    fn a_wal_torn_inside_its_header_starts_empty_and_works() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cs.wal");
        for keep in [1usize, 4, 7] {
            std::fs::write(&path, &MAGIC[..keep]).unwrap();
            let (mut wal, replay) = Wal::<Rec>::open(&path).unwrap();
            assert!(replay.records.is_empty());
            assert_eq!(replay.repaired_tail, Some(keep as u64));
            wal.append(&(1, "one".into()), true).unwrap();
            let (_, again) = Wal::<Rec>::open(&path).unwrap();
            assert_eq!(again.records, vec![(1, "one".to_string())]);
        }
        // A reset of a log with nothing appended since the last one leaves it as it is.
        let (mut wal, _) = Wal::<Rec>::open(&path).unwrap();
        wal.reset().unwrap();
        wal.reset().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
    }

    #[test]
    fn damage_before_valid_records_fails_loudly_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cs.wal");
        write(&path, 4);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[MAGIC.len() + 10] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::<Rec>::open(&path).err().expect("corrupt");
        assert!(matches!(err, WalError::Corrupt { offset: 8, .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "not truncated");

        std::fs::write(&path, b"something else entirely").unwrap();
        assert!(matches!(
            Wal::<Rec>::open(&path),
            Err(WalError::BadMagic { .. })
        ));
    }
}
