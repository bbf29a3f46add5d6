//! The S3-compatible blob backend (object_store's `AmazonS3`): objects `PREFIX/ab/cdef…` named
//! by SHA-256, so several hub processes can serve the same content. S3 writes are atomic (a
//! reader never sees half an object); large blobs go up as multipart uploads streamed from the
//! staged file, never whole in memory. The backend owns a small tokio runtime, so its blocking
//! calls work from the hub's blocking pool and its reads from any executor.

use std::fmt;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use edetail_bundle::Sha256Digest;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;

use super::{BlobBackend, BoxFuture, ByteStream, StagedBlob};
use crate::error::{Error, Result};

/// Worker threads of the backend's runtime.
const RUNTIME_WORKERS: usize = 2;
/// Blobs up to this size are uploaded with one PUT; larger ones as multipart uploads.
const SINGLE_PUT_MAX: u64 = 8 * 1024 * 1024;
/// Bytes read from a staged file per multipart write.
const UPLOAD_CHUNK: usize = 1024 * 1024;
/// Chunks buffered between the S3 response and the device's response.
const READ_QUEUE: usize = 8;

/// How to reach a bucket. Credentials are never logged nor shown by `describe`.
#[derive(Clone, Default)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`), may be empty.
    pub prefix: String,
    /// Endpoint URL for S3-compatible servers (MinIO, moto, Ceph); `None` for AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow `http://` endpoints (local servers and tests).
    pub allow_http: bool,
    /// Explicit credentials; `None` reads the `AWS_*` environment variables.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    config: S3Config,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Blobs").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Drop for S3Blobs {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn s3_err(what: &str) -> impl FnOnce(object_store::Error) -> Error + '_ {
    move |e| Error::Internal(format!("object store, {what}: {e}"))
}

impl S3Blobs {
    pub fn new(config: S3Config) -> Result<Self> {
        if config.bucket.is_empty() {
            return Err(Error::BadRequest("S3 blob store needs a bucket name".into()));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&config.bucket).with_allow_http(config.allow_http);
        if let Some(e) = &config.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &config.region {
            b = b.with_region(r);
        }
        if let Some(k) = &config.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &config.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let store = b.build().map_err(|e| Error::BadRequest(format!("S3 blob store: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .thread_name("edetail-hub-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("runtime: {e}")))?;
        Ok(S3Blobs { store: Arc::new(store), config, runtime: Some(runtime) })
    }

    /// Parses `BUCKET[/PREFIX][?endpoint=URL&region=R&allow_http=true]` (the part after `s3://`).
    pub fn from_url(rest: &str) -> Result<Self> {
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let mut config = S3Config { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string(), ..S3Config::default() };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "endpoint" => config.endpoint = Some(v.to_string()),
                "region" => config.region = Some(v.to_string()),
                "allow_http" => config.allow_http = v == "true" || v == "1",
                other => {
                    return Err(Error::BadRequest(format!(
                        "unknown S3 blob store option {other:?} (endpoint, region, allow_http; credentials come from AWS_* variables)"
                    )));
                }
            }
        }
        S3Blobs::new(config)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime lives until drop")
    }

    fn key(&self, d: &Sha256Digest) -> ObjectPath {
        let hex = d.to_hex();
        let name = format!("{}/{}", &hex[..2], &hex[2..]);
        if self.config.prefix.is_empty() { ObjectPath::from(name) } else { ObjectPath::from(format!("{}/{name}", self.config.prefix)) }
    }

    /// Runs `fut` on the backend's runtime and blocks the calling thread until it is done.
    /// Works from plain threads and from another runtime's blocking pool alike (the result
    /// comes back over a thread-blocking channel; no nested `block_on`).
    fn block_on<T: Send + 'static>(&self, fut: impl std::future::Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime().spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Error::Internal("object store task lost".into()))?
    }
}

async fn upload(store: Arc<dyn ObjectStore>, key: ObjectPath, blob: StagedBlob) -> Result<()> {
    let path = blob.file.path().to_path_buf();
    let mut file = blob.file.reopen().map_err(Error::io(&path))?;
    if blob.size <= SINGLE_PUT_MAX {
        let mut bytes = Vec::with_capacity(blob.size as usize);
        file.read_to_end(&mut bytes).map_err(Error::io(&path))?;
        store.put(&key, PutPayload::from(bytes)).await.map_err(s3_err("put"))?;
        return Ok(());
    }
    let mut w = BufWriter::new(store, key);
    let mut buf = vec![0u8; UPLOAD_CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(Error::io(&path))?;
        if n == 0 {
            break;
        }
        if let Err(e) = w.put(Bytes::copy_from_slice(&buf[..n])).await {
            let _ = w.abort().await;
            return Err(s3_err("multipart upload")(e));
        }
    }
    w.shutdown().await.map_err(|e| Error::Internal(format!("object store, completing multipart upload: {e}")))?;
    Ok(())
}

impl BlobBackend for S3Blobs {
    fn contains(&self, d: &Sha256Digest) -> Result<bool> {
        let store = self.store.clone();
        let key = self.key(d);
        self.block_on(async move {
            match store.head(&key).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(s3_err("head")(e)),
            }
        })
    }

    fn commit(&self, staged: Vec<StagedBlob>) -> Result<()> {
        for blob in staged {
            let store = self.store.clone();
            let key = self.key(&blob.sha256);
            self.block_on(async move {
                // Content-addressed: an object already under this name holds these bytes.
                match store.head(&key).await {
                    Ok(_) => Ok(()),
                    Err(object_store::Error::NotFound { .. }) => upload(store, key, blob).await,
                    Err(e) => Err(s3_err("head")(e)),
                }
            })?;
        }
        Ok(())
    }

    fn delete(&self, d: &Sha256Digest) -> Result<()> {
        let store = self.store.clone();
        let key = self.key(d);
        self.block_on(async move {
            match store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(s3_err("delete")(e)),
            }
        })
    }

    fn read(&self, d: Sha256Digest, offset: u64, len: u64) -> BoxFuture<'static, Result<ByteStream>> {
        let store = self.store.clone();
        let key = self.key(&d);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(READ_QUEUE);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<()>>();
        // The whole S3 exchange runs on the backend's runtime; bytes cross over a channel.
        self.runtime().spawn(async move {
            if len == 0 {
                let _ = ready_tx.send(Ok(()));
                return;
            }
            let opts = GetOptions { range: Some(GetRange::Bounded(offset..offset + len)), ..GetOptions::default() };
            let result = match store.get_opts(&key, opts).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => {
                    let _ = ready_tx.send(Err(Error::Internal(format!("blob {d} is recorded but missing from the object store"))));
                    return;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(s3_err("get")(e)));
                    return;
                }
            };
            if ready_tx.send(Ok(())).is_err() {
                return;
            }
            let mut stream = result.into_stream();
            while let Some(chunk) = stream.next().await {
                let item = chunk.map_err(std::io::Error::other);
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Box::pin(async move {
            ready_rx.await.map_err(|_| Error::Internal("object store task lost".into()))??;
            let stream: ByteStream =
                Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }));
            Ok(stream)
        })
    }

    fn count(&self) -> Result<u64> {
        let store = self.store.clone();
        let prefix = (!self.config.prefix.is_empty()).then(|| ObjectPath::from(self.config.prefix.clone()));
        self.block_on(async move {
            let mut listing = store.list(prefix.as_ref());
            let mut n = 0;
            while let Some(item) = listing.next().await {
                item.map_err(s3_err("list"))?;
                n += 1;
            }
            Ok(n)
        })
    }

    fn describe(&self) -> String {
        let c = &self.config;
        let endpoint = c.endpoint.as_deref().map(|e| format!(" at {e}")).unwrap_or_default();
        if c.prefix.is_empty() { format!("s3://{}{endpoint}", c.bucket) } else { format!("s3://{}/{}{endpoint}", c.bucket, c.prefix) }
    }
}
