//! Caches of decoded segment data, independent of PostgreSQL.
//!
//! [`ByteLru`] is the per-backend level: a map bounded by the bytes its
//! values occupy (as the caller measures them), evicting the least recently
//! used entry first. Values are shared (`Rc`): an entry evicted while a
//! reader still holds it stays alive for that reader, so eviction never
//! pulls data from under a scan (the pinning the shared level will need is
//! the reference count here).

pub mod shared;

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::rc::Rc;

/// Counters of a cache since it was made (or last reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub inserts: u64,
    pub evictions: u64,
    /// Values refused because they alone exceed the capacity.
    pub too_large: u64,
}

struct Entry<V> {
    value: Rc<V>,
    bytes: usize,
    tick: u64,
}

/// A least-recently-used map holding at most `capacity` bytes of values.
pub struct ByteLru<K, V> {
    map: HashMap<K, Entry<V>>,
    /// Use order: tick of last use -> key (ticks are unique).
    order: BTreeMap<u64, K>,
    tick: u64,
    used: usize,
    capacity: usize,
    stats: Stats,
}

impl<K: Hash + Eq + Clone, V> ByteLru<K, V> {
    pub fn new(capacity: usize) -> Self {
        ByteLru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            used: 0,
            capacity,
            stats: Stats::default(),
        }
    }

    /// The value under `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<Rc<V>> {
        self.tick += 1;
        match self.map.get_mut(key) {
            Some(e) => {
                self.order.remove(&e.tick);
                e.tick = self.tick;
                self.order.insert(self.tick, key.clone());
                self.stats.hits += 1;
                Some(e.value.clone())
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Keep `value` (occupying `bytes`) under `key`, evicting the least
    /// recently used entries to make room; a value larger than the whole
    /// capacity is not kept. Returns the shared value either way.
    pub fn insert(&mut self, key: K, value: V, bytes: usize) -> Rc<V> {
        let value = Rc::new(value);
        self.remove(&key);
        if bytes > self.capacity {
            self.stats.too_large += 1;
            return value;
        }
        while self.used + bytes > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.map.remove(&oldest) {
                self.used -= e.bytes;
                self.stats.evictions += 1;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(
            key,
            Entry {
                value: value.clone(),
                bytes,
                tick: self.tick,
            },
        );
        self.used += bytes;
        self.stats.inserts += 1;
        value
    }

    pub fn remove(&mut self, key: &K) {
        if let Some(e) = self.map.remove(key) {
            self.order.remove(&e.tick);
            self.used -= e.bytes;
        }
    }

    /// Change the capacity, evicting what no longer fits.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.used > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(e) = self.map.remove(&oldest) {
                self.used -= e.bytes;
                self.stats.evictions += 1;
            }
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.used = 0;
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_first() {
        let mut c = ByteLru::new(30);
        c.insert(1, "a", 10);
        c.insert(2, "b", 10);
        c.insert(3, "c", 10);
        assert!(c.get(&1).is_some()); // 2 is now the oldest
        c.insert(4, "d", 10);
        assert!(c.get(&2).is_none());
        for k in [1, 3, 4] {
            assert!(c.get(&k).is_some(), "{k} evicted");
        }
        assert_eq!(c.used(), 30);
        assert_eq!(c.stats().evictions, 1);
    }

    #[test]
    fn bytes_stay_within_capacity_and_exact() {
        let mut c = ByteLru::new(1000);
        let mut state = 12345u64;
        let mut sizes = HashMap::new();
        for _ in 0..10_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = (state >> 33) % 97;
            let bytes = ((state >> 20) % 300) as usize;
            if state % 5 == 0 {
                c.remove(&key);
                sizes.remove(&key);
            } else if state % 3 == 0 {
                c.get(&key);
            } else {
                c.insert(key, key, bytes);
                sizes.insert(key, bytes);
            }
            sizes.retain(|k, _| c.map.contains_key(k));
            assert!(c.used() <= c.capacity());
            assert_eq!(c.used(), sizes.values().sum::<usize>());
            assert_eq!(c.map.len(), c.order.len());
        }
    }

    #[test]
    fn too_large_is_returned_not_kept() {
        let mut c = ByteLru::new(10);
        c.insert(1, 1, 5);
        let v = c.insert(2, 2, 11);
        assert_eq!(*v, 2);
        assert!(c.get(&2).is_none());
        assert!(c.get(&1).is_some(), "a refused value evicted others");
        assert_eq!(c.stats().too_large, 1);
    }

    #[test]
    fn evicted_value_lives_on_for_its_holder() {
        let mut c = ByteLru::new(10);
        let held = c.insert(1, vec![7u8; 3], 10);
        c.insert(2, vec![8u8; 3], 10);
        assert!(c.get(&1).is_none());
        assert_eq!(*held, vec![7u8; 3]);
    }

    #[test]
    fn shrinking_evicts_oldest() {
        let mut c = ByteLru::new(30);
        for k in 0..3 {
            c.insert(k, k, 10);
        }
        c.set_capacity(15);
        assert_eq!(c.len(), 1);
        assert!(c.get(&2).is_some());
        c.set_capacity(0);
        assert!(c.is_empty());
        assert_eq!(c.used(), 0);
    }

    #[test]
    fn reinsert_replaces_and_accounts() {
        let mut c = ByteLru::new(100);
        c.insert(1, 1, 40);
        c.insert(1, 2, 10);
        assert_eq!(c.used(), 10);
        assert_eq!(*c.get(&1).expect("kept"), 2);
    }
}
