//! A bounded cache of the latest state in front of the versioned records.
//!
//! The runtime reads every account a transaction touches (and the mempool every sender)
//! from the latest state: one reverse range read in sled each, a quarter of a saturated
//! validator's time without the cache (perf). The cache keeps the latest value of recently
//! used keys; a stored block writes its changes through it, so it never holds a value the
//! store does not. It is bounded in bytes by two generations: when the current one fills
//! half the budget it becomes the previous one and the older is dropped; a hit in the
//! previous generation moves the entry back.

use std::collections::HashMap;
use std::sync::Mutex;

type Value = Option<Vec<u8>>;

#[derive(Default)]
struct Generations {
    current: HashMap<Vec<u8>, Value>,
    previous: HashMap<Vec<u8>, Value>,
    current_bytes: usize,
}

pub struct StateCache {
    inner: Mutex<Generations>,
    /// Bytes of keys and values the two generations hold at most (about).
    budget: usize,
}

fn size(key: &[u8], value: &Value) -> usize {
    // Keys, values and the map's own bookkeeping per entry.
    key.len() + value.as_ref().map_or(0, Vec::len) + 64
}

impl StateCache {
    pub fn new(budget: usize) -> StateCache {
        StateCache {
            inner: Mutex::default(),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached latest value of `key`: `None` when not cached, `Some(None)` when the key
    /// is known to be absent.
    pub fn get(&self, key: &[u8]) -> Option<Value> {
        let mut g = self.lock();
        if let Some(v) = g.current.get(key) {
            return Some(v.clone());
        }
        let v = g.previous.remove(key)?;
        Self::put(&mut g, self.budget, key.to_vec(), v.clone());
        Some(v)
    }

    /// Records the latest value of `key` (read from the store, or just written to it).
    pub fn insert(&self, key: Vec<u8>, value: Value) {
        Self::put(&mut self.lock(), self.budget, key, value);
    }

    /// Records a stored block's writes.
    pub fn write_through(&self, changes: &[(Vec<u8>, Value)]) {
        let mut g = self.lock();
        for (k, v) in changes {
            g.previous.remove(k);
            Self::put(&mut g, self.budget, k.clone(), v.clone());
        }
    }

    /// Forgets what is cached of `changes`' keys (written behind the cache's back).
    pub fn forget(&self, changes: &[(Vec<u8>, Value)]) {
        let mut g = self.lock();
        for (k, _) in changes {
            if let Some(old) = g.current.remove(k) {
                g.current_bytes -= size(k, &old);
            }
            g.previous.remove(k);
        }
    }

    /// Forgets everything (after the store was changed behind the cache's back).
    pub fn clear(&self) {
        *self.lock() = Generations::default();
    }

    fn put(g: &mut Generations, budget: usize, key: Vec<u8>, value: Value) {
        // A key written again replaces its entry: only the difference counts.
        g.current_bytes += size(&key, &value);
        let key_len = key.len();
        if let Some(old) = g.current.insert(key, value) {
            g.current_bytes -= size(&[], &old) + key_len;
        }
        if g.current_bytes > budget / 2 {
            g.previous = std::mem::take(&mut g.current);
            g.current_bytes = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_answers_what_was_written_and_stays_within_its_budget() {
        let c = StateCache::new(100 * 1024);
        c.write_through(&[(b"a".to_vec(), Some(b"1".to_vec())), (b"b".to_vec(), None)]);
        assert_eq!(c.get(b"a"), Some(Some(b"1".to_vec())));
        assert_eq!(c.get(b"b"), Some(None), "known absent");
        assert_eq!(c.get(b"c"), None, "not cached");
        c.write_through(&[(b"a".to_vec(), Some(b"2".to_vec()))]);
        assert_eq!(c.get(b"a"), Some(Some(b"2".to_vec())));
        for i in 0..10_000u32 {
            c.insert(i.to_le_bytes().to_vec(), Some(vec![0; 100]));
            // A key in use survives the turnover of generations.
            assert_eq!(c.get(b"a"), Some(Some(b"2".to_vec())));
        }
        // Writing one key again and again replaces its entry: nothing else is pushed out.
        c.insert(b"kept".to_vec(), Some(vec![1]));
        for i in 0..100_000u32 {
            c.insert(b"hot".to_vec(), Some(i.to_le_bytes().to_vec()));
        }
        assert_eq!(c.get(b"kept"), Some(Some(vec![1])));
        let g = c.lock();
        let held: usize = g
            .current
            .iter()
            .chain(&g.previous)
            .map(|(k, v)| size(k, v))
            .sum();
        assert!(held <= 100 * 1024 + 200, "{held} bytes");
    }

    #[test]
    fn forgotten_keys_are_read_again_and_free_their_bytes() {
        let c = StateCache::new(100 * 1024);
        c.insert(b"bucket".to_vec(), None);
        c.insert(b"kept".to_vec(), Some(vec![1; 10]));
        c.forget(&[(b"bucket".to_vec(), Some(b"written".to_vec()))]);
        assert_eq!(
            c.get(b"bucket"),
            None,
            "a stale 'absent' would hide the write"
        );
        assert_eq!(c.get(b"kept"), Some(Some(vec![1; 10])));
        assert_eq!(c.lock().current_bytes, size(b"kept", &Some(vec![1; 10])));
    }
}
