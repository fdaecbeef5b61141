//! Where inputs are read and outputs written: a store (`object_store`) and a prefix in it, from a
//! URL or a plain path.
//!
//! | URL | store | configuration |
//! |---|---|---|
//! | `s3://bucket/prefix` (`s3a://`) | Amazon S3 or any S3-compatible server | `AWS_*` variables: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (MinIO, moto, R2...), `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint, web identity and instance metadata |
//! | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_SERVICE_ACCOUNT` (or `GOOGLE_APPLICATION_CREDENTIALS`), `GOOGLE_*` |
//! | `az://container/prefix` (`azure://`, `abfs://`) | Azure Blob Storage | `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` or a SAS / managed identity, `AZURE_*` |
//! | `file:///abs/dir`, `dir`, `/abs/dir` | a local folder | none |
//!
//! Every cloud request is retried by object_store itself on transient errors (connection
//! errors, timeouts, HTTP 5xx and 429) with exponential backoff: [`retry_config`].

use std::path::{Component, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use crate::error::BatchError;

/// The retry policy of every cloud request (object_store's `RetryConfig`): up to 10 retries of a
/// transient error, waiting 100 ms, then twice as long each time up to 15 s (with jitter), and
/// giving up 3 minutes after the first attempt. After that the image is recorded as failed and
/// the shard goes on; rerunning the shard retries it.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: Duration::from_secs(180),
    }
}

/// The retry policy of the checks before any work (the first listing, the output's reachability):
/// two quick retries, so a wrong endpoint or an unreachable store is reported in seconds, not
/// after [`retry_config`]'s 3 minutes.
pub fn preflight_retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
    }
}

/// What a location is, for the overlap check: the store (`file` for local folders, otherwise
/// the scheme and bucket) and the path's segments in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    root: String,
    segments: Vec<String>,
}

/// A store and a prefix in it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// The prefix under which keys are read or written (empty for the store's root).
    pub prefix: StorePath,
    /// The URL or path as the user gave it (for messages and reports).
    pub url: String,
    /// Whether the store is a cloud one (requests go over the network and are retried; uploads
    /// carry a content type).
    pub cloud: bool,
    identity: Identity,
}

impl Location {
    /// Opens the location `url` names (see the module's table); cloud stores retry as `retry`
    /// says ([`retry_config`]). A local output folder is created when `create` is set; a local
    /// input folder must exist.
    ///
    /// # Errors
    /// [`BatchError::BadUrl`] for an unknown scheme or a local path that is not a folder,
    /// [`BatchError::Open`] when object_store refuses the configuration.
    pub fn open(url: &str, retry: RetryConfig, create: bool) -> Result<Self, BatchError> {
        let bad = |message: String| BatchError::BadUrl {
            url: url.to_string(),
            message,
        };
        if !url.contains("://") {
            return Self::local(url, PathBuf::from(url), create);
        }
        let parsed = Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
        if parsed.scheme() == "file" {
            let path = parsed
                .to_file_path()
                .map_err(|()| bad("not a local path".into()))?;
            return Self::local(url, path, create);
        }
        let (scheme, prefix) =
            ObjectStoreScheme::parse(&parsed).map_err(|e| bad(format!("unsupported URL: {e}")))?;
        let open = |error| BatchError::Open {
            url: url.to_string(),
            error,
        };
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::AmazonS3 => Arc::new(
                AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()
                    .map_err(open)?,
            ),
            ObjectStoreScheme::GoogleCloudStorage => Arc::new(
                GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()
                    .map_err(open)?,
            ),
            ObjectStoreScheme::MicrosoftAzure => Arc::new(
                MicrosoftAzureBuilder::from_env()
                    .with_url(url)
                    .with_retry(retry)
                    .build()
                    .map_err(open)?,
            ),
            _ => {
                return Err(bad(
                    "unsupported scheme (use s3://, gs://, az://, file:// or a path)".into(),
                ));
            }
        };
        let root = match parsed.scheme() {
            "s3a" => "s3",
            "azure" | "abfs" | "abfss" | "adl" => "az",
            s => s,
        };
        let identity = Identity {
            root: format!("{root}://{}", parsed.host_str().unwrap_or("")),
            segments: prefix.parts().map(|p| p.as_ref().to_string()).collect(),
        };
        Ok(Self {
            store,
            prefix,
            url: url.to_string(),
            cloud: true,
            identity,
        })
    }

    fn local(url: &str, path: PathBuf, create: bool) -> Result<Self, BatchError> {
        let bad = |message: String| BatchError::BadUrl {
            url: url.to_string(),
            message,
        };
        let absolute = absolute(&path).map_err(|e| bad(format!("cannot resolve the path: {e}")))?;
        let identity = local_identity(&absolute);
        if create {
            std::fs::create_dir_all(&absolute)
                .map_err(|e| bad(format!("cannot create the folder: {e}")))?;
        } else if !absolute.is_dir() {
            return Err(bad("no such folder".into()));
        }
        let store =
            LocalFileSystem::new_with_prefix(&absolute).map_err(|error| BatchError::Open {
                url: url.to_string(),
                error,
            })?;
        Ok(Self {
            store: Arc::new(store),
            prefix: StorePath::default(),
            url: url.to_string(),
            cloud: false,
            identity,
        })
    }

    /// A location over a store made by the caller (an in-memory store in tests); `name` stands
    /// for the store in the overlap check and in messages.
    pub fn from_store(store: Arc<dyn ObjectStore>, name: &str, prefix: &str) -> Self {
        let prefix = StorePath::from(prefix);
        let identity = Identity {
            root: name.to_string(),
            segments: prefix.parts().map(|p| p.as_ref().to_string()).collect(),
        };
        Self {
            store,
            url: format!("{name}/{prefix}"),
            prefix,
            cloud: false,
            identity,
        }
    }

    /// The location of the same URL with another retry policy (a local folder is shared as it
    /// is).
    ///
    /// # Errors
    /// As [`Location::open`].
    pub fn with_retry(&self, retry: RetryConfig) -> Result<Self, BatchError> {
        if self.cloud {
            Self::open(&self.url, retry, false)
        } else {
            Ok(self.clone())
        }
    }

    /// Whether the location `url` names would overlap this one ([`Location::overlaps`]), found
    /// without opening it (so a local output folder is not created before the check).
    ///
    /// # Errors
    /// [`BatchError::BadUrl`] as [`Location::open`].
    pub fn overlaps_url(&self, url: &str) -> Result<bool, BatchError> {
        let bad = |message: String| BatchError::BadUrl {
            url: url.to_string(),
            message,
        };
        let local = if !url.contains("://") {
            Some(PathBuf::from(url))
        } else {
            let parsed = Url::parse(url).map_err(|e| bad(format!("not a URL: {e}")))?;
            if parsed.scheme() == "file" {
                Some(
                    parsed
                        .to_file_path()
                        .map_err(|()| bad("not a local path".into()))?,
                )
            } else {
                None
            }
        };
        let identity = match local {
            Some(path) => local_identity(
                &absolute(&path).map_err(|e| bad(format!("cannot resolve the path: {e}")))?,
            ),
            None => Self::open(url, preflight_retry_config(), false)?.identity,
        };
        let (a, b) = (&self.identity, &identity);
        let n = a.segments.len().min(b.segments.len());
        Ok(a.root == b.root && a.segments[..n] == b.segments[..n])
    }

    /// Whether one of the two locations is inside the other (or they are the same): the same
    /// store and one prefix's segments begin the other's.
    pub fn overlaps(&self, other: &Location) -> bool {
        let (a, b) = (&self.identity, &other.identity);
        let n = a.segments.len().min(b.segments.len());
        a.root == b.root && a.segments[..n] == b.segments[..n]
    }

    /// The full key of `relative` (a key relative to this location's prefix), taken as it is
    /// (a key listed from the store) when it is a valid key, otherwise with object_store's
    /// encoding of the characters keys should avoid.
    pub fn path(&self, relative: &str) -> StorePath {
        let prefix = self.prefix.as_ref();
        let full = if prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{prefix}/{relative}")
        };
        StorePath::parse(&full).unwrap_or_else(|_| StorePath::from(full.as_str()))
    }

    /// `key` relative to this location's prefix, or `None` when it is not under it.
    pub fn relative(&self, key: &StorePath) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

fn local_identity(absolute: &std::path::Path) -> Identity {
    Identity {
        root: "file".into(),
        segments: absolute
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect(),
    }
}

/// `path` made absolute, with `.` and `..` resolved lexically and the longest existing ancestor
/// canonicalised (links resolved), so that two spellings of one folder compare equal even when
/// the folder does not exist yet.
fn absolute(path: &std::path::Path) -> std::io::Result<PathBuf> {
    let joined = std::env::current_dir()?.join(path);
    let mut clean = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            c => clean.push(c),
        }
    }
    let mut existing = clean.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match existing.file_name() {
            Some(name) => rest.push(name.to_owned()),
            None => break,
        }
        existing.pop();
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for name in rest.into_iter().rev() {
        out.push(name);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_is_by_whole_segments_and_store() {
        let mem: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let loc = |name: &str, p: &str| Location::from_store(mem.clone(), name, p);
        assert!(loc("m", "scans").overlaps(&loc("m", "scans/colour")));
        assert!(loc("m", "scans/colour").overlaps(&loc("m", "scans")));
        assert!(loc("m", "scans").overlaps(&loc("m", "scans")));
        assert!(!loc("m", "scans").overlaps(&loc("m", "scans-colour")));
        assert!(!loc("m", "scans").overlaps(&loc("other", "scans/colour")));
        assert!(loc("m", "").overlaps(&loc("m", "out")));
    }

    #[test]
    fn local_paths_compare_by_absolute_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let input = tmp.path().join("in");
        std::fs::create_dir(&input).unwrap();
        let a = Location::open(input.to_str().unwrap(), retry_config(), false).unwrap();
        let inside = format!("{}/../in/out", input.display());
        let b = Location::open(&inside, retry_config(), false);
        // Not created (create = false) and not there: refused as a missing input folder.
        assert!(b.is_err());
        assert!(a.overlaps_url(&inside).unwrap());
        assert!(
            !std::path::Path::new(&inside).exists(),
            "not created by the check"
        );
        let b = Location::open(&inside, retry_config(), true).unwrap();
        assert!(a.overlaps(&b));
        let url = format!("file://{}", tmp.path().join("out").display());
        let c = Location::open(&url, retry_config(), true).unwrap();
        assert!(!a.overlaps(&c));
    }

    #[test]
    fn cloud_urls_parse_and_compare_by_bucket() {
        let a = Location::open("s3://bucket/scans", retry_config(), false).unwrap();
        let b = Location::open("s3a://bucket/scans/out", retry_config(), false).unwrap();
        let c = Location::open("s3://other/scans/out", retry_config(), false).unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert_eq!(a.path("x/y.jpg").as_ref(), "scans/x/y.jpg");
        assert_eq!(
            a.relative(&StorePath::from("scans/x/y.jpg")).as_deref(),
            Some("x/y.jpg")
        );
        assert!(Location::open("ftp://host/x", retry_config(), false).is_err());
    }
}
