//! A small seeded random generator (SplitMix64), so that an input is a pure function of
//! `(seed, execution index)` and any crash can be regenerated from those two numbers, on any
//! machine, by any version of this crate's dependencies.

/// SplitMix64 (Steele, Lea and Flood 2014): 64 bits of state, fast, statistically fine for
/// choosing mutations.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The generator for execution `index` of a campaign seeded with `seed`.
    pub fn for_exec(seed: u64, index: u64) -> Self {
        let mut r = Self::new(seed ^ 0x9e37_79b9_7f4a_7c15);
        let s = r.next_u64() ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93);
        let mut r = Self::new(s);
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// One element of a non-empty slice.
    ///
    /// # Panics
    /// If `items` is empty.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A small size biased towards short lengths: `1..=max`.
    pub fn small_len(&mut self, max: usize) -> usize {
        let max = max.max(1);
        match self.below(4) {
            0 => 1,
            1 => self.range(1, 4.min(max)),
            2 => self.range(1, 32.min(max)),
            _ => self.range(1, max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_seed_and_index() {
        let a: Vec<u64> = (0..4).map(|i| Rng::for_exec(7, i).next_u64()).collect();
        let b: Vec<u64> = (0..4).map(|i| Rng::for_exec(7, i).next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        assert_ne!(Rng::for_exec(8, 0).next_u64(), a[0]);
    }
}
