//! [`S3Blobs`]: blobs as objects in an S3-compatible bucket (AWS S3, MinIO, moto…), through
//! the `object_store` crate, under `<blob_s3_prefix><key>`.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::{
    BackoffConfig, ObjectStoreExt, PutPayload, RetryConfig,
    aws::{AmazonS3, AmazonS3Builder},
    path::Path,
};

use super::BlobStore;
use crate::config::Config;

/// Retries of one S3 call: few and short, since a request waits on them (a request times out
/// after `request_timeout_s`).
const RETRY: RetryConfig = RetryConfig {
    backoff: BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        base: 2.0,
    },
    max_retries: 3,
    retry_timeout: Duration::from_secs(10),
};

/// The S3 blob store (`blob_store = "s3"`).
pub struct S3Blobs {
    store: AmazonS3,
    bucket: String,
    prefix: String,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Blobs {
    /// A client of `blob_s3_bucket` from the `blob_s3_*` keys (validated by
    /// `Config::validate`): path-style requests to `blob_s3_endpoint` when set (plain http
    /// allowed there, as validation allows it only on loopback), else AWS S3 in
    /// `blob_s3_region`; static credentials when `blob_s3_access_key_id` is set, else the
    /// standard AWS chain (`AWS_*` variables, web identity, instance metadata). Errors: the
    /// client cannot be built from these settings.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&config.blob_s3_bucket)
            .with_region(&config.blob_s3_region)
            .with_retry(RETRY);
        if !config.blob_s3_endpoint.is_empty() {
            b = b
                .with_endpoint(config.blob_s3_endpoint.trim_end_matches('/'))
                .with_allow_http(config.blob_s3_endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if !config.blob_s3_access_key_id.is_empty() {
            b = b
                .with_access_key_id(&config.blob_s3_access_key_id)
                .with_secret_access_key(config.blob_s3_secret_access_key.expose());
        }
        let store = b.build().map_err(|e| {
            anyhow::anyhow!(
                "blob store s3 (bucket `{}`): cannot build the client: {e}",
                config.blob_s3_bucket
            )
        })?;
        Ok(Self {
            store,
            bucket: config.blob_s3_bucket.clone(),
            prefix: config.blob_s3_prefix.clone(),
        })
    }

    /// The object path of `key`. Errors: `key` has an empty segment or a character
    /// `object_store` refuses.
    fn path(&self, key: &str) -> anyhow::Result<Path> {
        Path::parse(format!("{}{key}", self.prefix))
            .map_err(|e| anyhow::anyhow!("blob key `{key}` is not a valid object path: {e}"))
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn put(&self, key: &str, data: Bytes) -> anyhow::Result<()> {
        let path = self.path(key)?;
        self.store
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map_err(|e| anyhow::anyhow!("s3 put `{path}` in bucket `{}`: {e}", self.bucket))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Bytes>> {
        let path = self.path(key)?;
        let fail = |e| anyhow::anyhow!("s3 get `{path}` in bucket `{}`: {e}", self.bucket);
        match self.store.get(&path).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(fail)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(fail(e)),
        }
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(anyhow::anyhow!(
                "s3 delete `{path}` in bucket `{}`: {e}",
                self.bucket
            )),
        }
    }
}
