//! A hasher for maps keyed by the pool's own integer ids (jobs, workers, groups): one
//! multiplication instead of SipHash. The ids are handed out by the host and the engine in
//! sequence, never chosen by whoever sends data, so the flooding SipHash guards against cannot
//! happen here; the job table alone takes several lookups per job, on both threads.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplicative (Fibonacci) hashing of an integer key: the product's high bits, which
/// hashbrown uses for its control bytes, depend on every bit of the key, and its low bits, the
/// bucket index, run through every value for consecutive keys.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        // Not used by integer keys; any other key still hashes every byte.
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A map keyed by an id.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
/// A set of ids.
pub type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_spread_over_buckets_and_control_bytes() {
        let h = |n: u32| {
            let mut s = IdHasher::default();
            s.write_u32(n);
            s.finish()
        };
        // Low bits (the bucket): 1024 consecutive ids fill 1024 buckets exactly once.
        let mut seen = [false; 1024];
        for n in 5000..6024 {
            seen[(h(n) & 1023) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // High 7 bits (hashbrown's tag): all 128 values appear among consecutive ids.
        let tags: std::collections::BTreeSet<u64> = (0..4096).map(|n| h(n) >> 57).collect();
        assert_eq!(tags.len(), 128);
        // A map of them works as any map does.
        let mut m: IdMap<u32, u32> = IdMap::default();
        for n in 0..10_000 {
            m.insert(n, n * 2);
        }
        assert!((0..10_000).all(|n| m.remove(&n) == Some(n * 2)));
        assert!(m.is_empty());
    }
}
