//! Which keys a shard takes: FNV-1a 64 of the key (relative to the input prefix, as UTF-8 bytes)
//! modulo the shard count. The hash is fixed by its definition (Fowler, Noll & Vo; offset basis
//! 0xcbf29ce484222325, prime 0x100000001b3), never std's randomised `DefaultHasher`, so every
//! machine, run and version agrees on the split; shards can run anywhere, in any order, and be
//! retried.

use crate::error::BatchError;

/// FNV-1a, 64 bits, of `bytes` (the FNV specification's offset basis and prime).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// One share of a job: shard `index` of `count` (indexes from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: u64,
    /// How many shards the job has.
    pub count: u64,
}

/// The variables batch engines set to a worker's index, in the order they are looked at:
/// Kubernetes Indexed Jobs and AWS Batch array jobs.
pub const INDEX_VARIABLES: [&str; 2] = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// The variable that gives the shard count when `--shard-count` is not given.
pub const COUNT_VARIABLE: &str = "COLORIZE_SHARD_COUNT";

impl Shard {
    /// The whole job as one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// [`BatchError::BadShard`] when `count` is 0 or `index >= count`.
    pub fn new(index: u64, count: u64) -> Result<Self, BatchError> {
        if count == 0 || index >= count {
            return Err(BatchError::BadShard { index, count });
        }
        Ok(Self { index, count })
    }

    /// The shard from flags, falling back to the environment: the index from `index` or the first
    /// of [`INDEX_VARIABLES`] that is set (0 when none is), the count from `count` or
    /// [`COUNT_VARIABLE`] (1 when neither is). `env` looks a variable up (`std::env::var` in the
    /// binary).
    ///
    /// # Errors
    /// [`BatchError::BadUrl`] for a variable that is not a number (naming it),
    /// [`BatchError::BadShard`] as [`Shard::new`].
    pub fn resolve(
        index: Option<u64>,
        count: Option<u64>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, BatchError> {
        let number = |name: &str| -> Result<Option<u64>, BatchError> {
            match env(name) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| BatchError::BadUrl {
                    url: format!("{name}={v}"),
                    message: "not a shard number".into(),
                }),
            }
        };
        let index = match index {
            Some(i) => i,
            None => {
                let mut found = None;
                for name in INDEX_VARIABLES {
                    if let Some(i) = number(name)? {
                        found = Some(i);
                        break;
                    }
                }
                found.unwrap_or(0)
            }
        };
        let count = match count {
            Some(c) => c,
            None => number(COUNT_VARIABLE)?.unwrap_or(1),
        };
        Self::new(index, count)
    }

    /// Whether this shard takes `key` (relative to the input prefix).
    pub fn contains(&self, key: &str) -> bool {
        fnv1a64(key.as_bytes()) % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        // From the FNV reference test suite (isthe.com/chongo/tech/comp/fnv).
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn every_key_falls_in_exactly_one_shard() {
        for count in 1..6 {
            for k in 0..200 {
                let key = format!("scans/box-{k}/page.tif");
                let n = (0..count)
                    .filter(|&i| Shard::new(i, count).unwrap().contains(&key))
                    .count();
                assert_eq!(n, 1);
            }
        }
    }

    #[test]
    fn resolve_reads_the_engines_variables() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let k8s = env(&[("JOB_COMPLETION_INDEX", "2"), ("COLORIZE_SHARD_COUNT", "4")]);
        assert_eq!(
            Shard::resolve(None, None, k8s).unwrap(),
            Shard { index: 2, count: 4 }
        );
        let aws = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "1")]);
        assert_eq!(
            Shard::resolve(None, Some(3), aws).unwrap(),
            Shard { index: 1, count: 3 }
        );
        assert_eq!(Shard::resolve(None, None, env(&[])).unwrap(), Shard::ALL);
        assert!(matches!(
            Shard::resolve(Some(3), Some(3), env(&[])),
            Err(BatchError::BadShard { index: 3, count: 3 })
        ));
        assert!(Shard::resolve(None, None, env(&[("JOB_COMPLETION_INDEX", "x")])).is_err());
    }
}
