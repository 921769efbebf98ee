//! Where the Delta tables live: a local directory, or a bucket on S3 or an S3-compatible
//! server. Commits on S3 rely on conditional puts (`If-None-Match: *`), which S3 and the usual
//! compatible servers honour, so no lock service is needed: a second writer of the same version
//! loses the race instead of overwriting it.

use std::sync::{Arc, Once};

use deltalake::logstore::object_store::aws::AmazonS3Builder;
use deltalake::logstore::{
    default_logstore, logstore_factories, LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig,
};
use deltalake::{DeltaResult, DeltaTableBuilder};
use url::Url;

use crate::config::{LakeSinkConfig, Location};
use crate::error::LakeError;

/// The root of the sink's tables and how to reach it.
#[derive(Clone)]
pub struct Storage {
    /// The root, ending in `/`.
    root: Url,
    /// The bucket's store for S3; local directories use Delta's own file store.
    s3: Option<ObjectStoreRef>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root.as_str())
            .finish()
    }
}

impl Storage {
    /// The storage of `config`; builds clients without contacting anything.
    pub fn new(config: &LakeSinkConfig) -> Result<Storage, LakeError> {
        match &config.location {
            Location::Local(path) => {
                let root = Url::from_directory_path(path).map_err(|()| {
                    LakeError::Storage(format!("{} is not a usable directory", path.display()))
                })?;
                Ok(Storage { root, s3: None })
            }
            Location::S3 { bucket, prefix } => {
                register_s3_log_stores();
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(s3) = &config.s3 {
                    builder = builder
                        .with_region(&s3.region)
                        .with_virtual_hosted_style_request(!s3.path_style);
                    if let Some(endpoint) = &s3.endpoint {
                        builder = builder
                            .with_endpoint(endpoint)
                            .with_allow_http(endpoint.starts_with("http://"));
                    }
                    if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
                        builder = builder
                            .with_access_key_id(id)
                            .with_secret_access_key(secret.expose());
                    }
                }
                let store = builder
                    .build()
                    .map_err(|e| LakeError::Storage(format!("s3 client: {e}")))?;
                let mut root = Url::parse(&format!("s3://{bucket}/"))
                    .map_err(|e| LakeError::Storage(format!("bucket {bucket:?}: {e}")))?;
                if !prefix.is_empty() {
                    root = root
                        .join(&format!("{prefix}/"))
                        .map_err(|e| LakeError::Storage(format!("prefix {prefix:?}: {e}")))?;
                }
                Ok(Storage {
                    root,
                    s3: Some(Arc::new(store)),
                })
            }
        }
    }

    /// The location of the table directory `name` under the root.
    pub fn table_url(&self, name: &str) -> Url {
        let mut url = self.root.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(name).push("");
        }
        url
    }

    /// A builder for the table at `url`, reaching it through this storage.
    pub fn builder(&self, url: &Url) -> DeltaResult<DeltaTableBuilder> {
        let builder = DeltaTableBuilder::from_url(url.clone())?;
        Ok(match &self.s3 {
            Some(store) => builder.with_storage_backend(store.clone(), url.clone()),
            None => builder,
        })
    }
}

/// Delta's plain log store (commits by conditional put) for `s3://` locations; registered once
/// per process, as Delta looks log stores up by scheme.
fn register_s3_log_stores() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let scheme = Url::parse("s3://").expect("a valid scheme");
        logstore_factories().insert(scheme, Arc::new(ConditionalPutLogStores));
    });
}

struct ConditionalPutLogStores;

impl LogStoreFactory for ConditionalPutLogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_directories_are_named_segments_under_the_root() {
        let config = crate::config::RawLakeSinkConfig {
            location: Some("s3://bucket/some/prefix".into()),
            ..Default::default()
        }
        .validate("s")
        .unwrap();
        let storage = Storage::new(&config).unwrap();
        assert_eq!(
            storage.table_url("public.items").as_str(),
            "s3://bucket/some/prefix/public.items/"
        );
        assert_eq!(
            storage.table_url("odd name/x").as_str(),
            "s3://bucket/some/prefix/odd%20name%2Fx/"
        );
    }
}
