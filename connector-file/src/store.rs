//! Storage: a [`StoreRoot`] (any [`ObjectStore`] plus a prefix) and [`ObjectStoreBytes`], the
//! [`ByteSource`] over one object. Store errors are classified by [`crate::store_error`].

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use connector_core::{Error, Location, Result};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

use crate::format::ByteSource;
use crate::store_error::{TransportClassifier, store_error_with};

/// Convert an object-store error into ours, naming the object by `location` (a display string
/// such as `s3://bucket/key` or a local path). See [`crate::store_error`] for the mapping.
#[must_use]
pub fn store_error(e: &object_store::Error, location: &str) -> Error {
    store_error_with(e, location, None)
}

/// Join key parts with `/`, skipping empty ones (`["a/", "", "b"]` → `a/b`).
#[must_use]
pub fn join_key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` relative to the directory `base` (both relative to a root; `path` itself when it is not
/// below `base`).
pub(crate) fn below<'a>(base: &str, path: &'a str) -> &'a str {
    if base.is_empty() {
        return path;
    }
    path.strip_prefix(base)
        .filter(|r| r.is_empty() || r.starts_with('/'))
        .map_or(path, |r| r.trim_start_matches('/'))
}

/// Where files live: an object store, a prefix inside it, and how to show locations in errors.
///
/// Dataset names and write targets are paths relative to the prefix. The display prefix is
/// what error messages put before a relative path (`s3://bucket/prefix`, `/data/in`); it must not
/// contain credentials.
#[derive(Clone)]
pub struct StoreRoot {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    display: String,
    transport: Option<TransportClassifier>,
    /// The directory of a local root (to remove emptied staging directories).
    local_dir: Option<std::path::PathBuf>,
}

impl fmt::Debug for StoreRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreRoot")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix.as_ref())
            .field("display", &self.display)
            .field("transport_classifier", &self.transport.is_some())
            .field("local_dir", &self.local_dir)
            .finish()
    }
}

impl StoreRoot {
    /// Files under `prefix` (`""` for the whole store) of `store`; `display` is shown in errors.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        display: impl Into<String>,
    ) -> Result<Self> {
        let prefix = Path::parse(prefix.trim_matches('/'))
            .map_err(|e| Error::invalid_config(format!("invalid prefix {prefix:?}: {e}")))?;
        Ok(Self {
            store,
            prefix,
            display: display.into().trim_end_matches('/').to_owned(),
            transport: None,
            local_dir: None,
        })
    }

    /// Files under a local directory, which must exist.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| store_error(&e, &dir.display().to_string()))?;
        let mut root = Self::new(Arc::new(fs), "", dir.display().to_string())?;
        root.local_dir = Some(dir.to_path_buf());
        Ok(root)
    }

    /// Classify transport errors of the store's client with `classifier` (see
    /// [`crate::store_error`]): stores whose HTTP client error type this crate cannot name.
    #[must_use]
    pub fn with_transport_classifier(mut self, classifier: TransportClassifier) -> Self {
        self.transport = Some(classifier);
        self
    }

    /// Remove the directory `relative` of a local root if it is empty; nothing otherwise.
    pub(crate) async fn remove_empty_local_dir(&self, relative: &str) {
        if let Some(dir) = &self.local_dir {
            // Fails when the directory is not empty (another write is staging there): keep it.
            let _ = tokio::fs::remove_dir(dir.join(relative.trim_matches('/'))).await;
        }
    }

    /// Convert an error of the store about `relative` into ours, naming it as [`Self::display`]
    /// does.
    #[must_use]
    pub fn error(&self, e: &object_store::Error, relative: &str) -> Error {
        store_error_with(e, &self.display(relative), self.transport)
    }

    /// Remove the (emptied) directory `relative` of a local root, with what is left in it;
    /// nothing for other stores, which have no directories.
    pub(crate) async fn remove_local_dir(&self, relative: &str) {
        let Some(dir) = &self.local_dir else { return };
        let path = dir.join(relative.trim_matches('/'));
        match tokio::fs::remove_dir_all(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove a staging directory");
            }
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix inside the store.
    #[must_use]
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The store path of a path relative to the root. `..`, `.` and empty segments are rejected.
    pub fn path(&self, relative: &str) -> Result<Path> {
        let relative = relative.trim_matches('/');
        if relative.is_empty() {
            return Ok(self.prefix.clone());
        }
        let rel = Path::parse(relative).map_err(|e| {
            Error::invalid_config(format!("invalid path {relative:?}: {e}"))
                .with_location(Location::file(self.display(relative)))
        })?;
        Ok(self.prefix.parts().chain(rel.parts()).collect())
    }

    /// The path relative to the root of a store path under it.
    #[must_use]
    pub fn relative(&self, path: &Path) -> Option<String> {
        let parts: Vec<String> = path
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_owned())
            .collect();
        Some(parts.join("/"))
    }

    /// How a relative path is shown in errors and reports.
    #[must_use]
    pub fn display(&self, relative: &str) -> String {
        let relative = relative.trim_matches('/');
        match (self.display.is_empty(), relative.is_empty()) {
            (_, true) => self.display.clone(),
            (true, false) => relative.to_owned(),
            (false, false) => format!("{}/{relative}", self.display),
        }
    }

    /// Every object under `relative` (recursively), sorted by path, skipping hidden ones: any
    /// path segment below the root starting with `.` or `_` (temporary and marker files).
    pub async fn list(&self, relative: &str) -> Result<Vec<ObjectMeta>> {
        let base = self.path(relative)?;
        let mut out: Vec<ObjectMeta> = self
            .store
            .list(Some(&base))
            .map_err(|e| self.error(&e, relative))
            .try_filter(|m| {
                let hidden = self.relative(&m.location).is_none_or(|rel| {
                    rel.split('/')
                        .any(|s| s.starts_with('.') || s.starts_with('_'))
                });
                futures::future::ready(!hidden)
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    /// Ask for the first object under `relative`: the store's error, if the listing fails.
    pub async fn probe(&self, relative: &str) -> Result<()> {
        let base = self.path(relative)?;
        match self.store.list(Some(&base)).next().await {
            Some(Err(e)) => Err(self.error(&e, relative)),
            _ => Ok(()),
        }
    }

    /// The metadata of one object, or `None` if it does not exist.
    pub async fn head(&self, relative: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(relative)?;
        match self.store.head(&path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error(&e, relative)),
        }
    }

    /// A [`ByteSource`] over the object at `relative`, whose size is already known.
    #[must_use]
    pub fn bytes(&self, relative: &str, path: Path, size: Option<u64>) -> ObjectStoreBytes {
        let mut b = ObjectStoreBytes::new(self.store.clone(), path, self.display(relative));
        b.transport = self.transport;
        b.local = self.local_dir.is_some();
        match size {
            Some(s) => b.with_size(s),
            None => b,
        }
    }
}

/// A [`ByteSource`] over one object of an [`ObjectStore`]: ranged GETs for random access (Parquet
/// footers and column chunks), one streaming GET for sequential reads (CSV, JSON).
#[derive(Debug, Clone)]
pub struct ObjectStoreBytes {
    store: Arc<dyn ObjectStore>,
    path: Path,
    display: String,
    size: Arc<tokio::sync::OnceCell<u64>>,
    transport: Option<TransportClassifier>,
    /// On the local file system: ranges are read one by one (no request cost to save).
    local: bool,
}

impl ObjectStoreBytes {
    /// The object at `path`; `display` names it in errors (e.g. `s3://bucket/key`).
    pub fn new(store: Arc<dyn ObjectStore>, path: Path, display: impl Into<String>) -> Self {
        Self {
            store,
            path,
            display: display.into(),
            size: Arc::new(tokio::sync::OnceCell::new()),
            transport: None,
            local: false,
        }
    }

    /// Set the size when it is already known (from a listing), saving a HEAD request.
    #[must_use]
    pub fn with_size(self, size: u64) -> Self {
        Self {
            size: Arc::new(tokio::sync::OnceCell::new_with(Some(size))),
            ..self
        }
    }

    /// The object's path in the store.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: &object_store::Error) -> Error {
        store_error_with(e, &self.display, self.transport)
    }
}

#[async_trait]
impl ByteSource for ObjectStoreBytes {
    fn location(&self) -> &str {
        &self.display
    }

    async fn size(&self) -> Result<u64> {
        self.size
            .get_or_try_init(|| async {
                self.store
                    .head(&self.path)
                    .await
                    .map(|m| m.size)
                    .map_err(|e| self.error(&e))
            })
            .await
            .copied()
    }

    async fn get_range(&self, range: Range<u64>) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let ctx = |e: &object_store::Error| {
            self.error(e)
                .with_context("range", format!("{}..{}", range.start, range.end))
        };
        let options = object_store::GetOptions {
            range: Some(range.clone().into()),
            ..object_store::GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&self.path, options)
            .await
            .map_err(|e| ctx(&e))?;
        if let object_store::GetResultPayload::File(file, _) = got.payload {
            // object_store zero-fills the buffer of a local ranged read before reading into it
            // (3 % of a local Parquet read's instructions); this reads into spare capacity.
            let display = self.display.clone();
            let (_, buf) = tokio::task::spawn_blocking(move || {
                read_file_range(file, got.range.start, got.range.end - got.range.start)
            })
            .await
            .map_err(|e| Error::internal(format!("local read task failed: {e}")))?
            .map_err(|e| Error::from(e).with_location(Location::file(display)))?;
            return Ok(Bytes::from(buf));
        }
        got.bytes().await.map_err(|e| ctx(&e))
    }

    async fn get_ranges(&self, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        if self.local || ranges.iter().any(|r| r.start >= r.end) {
            return futures::future::try_join_all(ranges.iter().map(|r| self.get_range(r.clone())))
                .await;
        }
        // Ranges that touch are fetched in one request: a row group's column chunks, contiguous
        // when every column is read, come in one GET instead of one per column (each costing a
        // signed request and a round trip). Not object_store's `get_ranges`: it also merges
        // ranges up to 1 MiB apart, fetching the chunks of columns the projection left out.
        let merged = merge_touching(ranges);
        let fetched =
            futures::future::try_join_all(merged.iter().map(|(r, _)| self.get_range(r.clone())))
                .await?;
        let mut out = vec![Bytes::new(); ranges.len()];
        for ((range, members), bytes) in merged.iter().zip(fetched) {
            for &i in members {
                let r = &ranges[i];
                out[i] =
                    bytes.slice((r.start - range.start) as usize..(r.end - range.start) as usize);
            }
        }
        Ok(out)
    }

    async fn stream(&self) -> Result<BoxStream<'static, Result<Bytes>>> {
        let got = self
            .store
            .get(&self.path)
            .await
            .map_err(|e| self.error(&e))?;
        let display = self.display.clone();
        let transport = self.transport;
        if let object_store::GetResultPayload::File(file, _) = got.payload {
            return Ok(local_file_stream(file, got.range, display));
        }
        Ok(got
            .into_stream()
            .map_err(move |e| store_error_with(&e, &display, transport))
            .boxed())
    }
}

/// `ranges` merged where they touch or overlap: each merged range with the indices of the
/// ranges it covers.
fn merge_touching(ranges: &[Range<u64>]) -> Vec<(Range<u64>, Vec<usize>)> {
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].start, ranges[i].end));
    let mut merged: Vec<(Range<u64>, Vec<usize>)> = Vec::new();
    for i in order {
        let r = &ranges[i];
        match merged.last_mut() {
            Some((m, members)) if r.start <= m.end => {
                m.end = m.end.max(r.end);
                members.push(i);
            }
            _ => merged.push((r.clone(), vec![i])),
        }
    }
    merged
}

/// Read exactly `len` bytes of `file` from `pos`, into a buffer that is not zero-filled first.
fn read_file_range(
    mut file: std::fs::File,
    pos: u64,
    len: u64,
) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(pos))?;
    let mut buf = Vec::with_capacity(len as usize);
    (&mut file).take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) < len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "the file ended {} bytes into a {len}-byte read at offset {pos}",
                buf.len()
            ),
        ));
    }
    Ok((file, buf))
}

/// Bytes per blocking read of a local file.
const LOCAL_CHUNK: u64 = 1 << 20;

/// Read `range` of a local file in 1 MiB blocks on the blocking pool.
///
/// object_store streams a local file 8 KiB per blocking task; at that size the hand-offs between
/// threads, not the reads, dominated a CSV read's profile (about 30 % in the scheduler).
fn local_file_stream(
    file: std::fs::File,
    range: Range<u64>,
    display: String,
) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold((file, range.start), move |(file, pos)| {
        let display = display.clone();
        let end = range.end;
        async move {
            if pos >= end {
                return Ok(None);
            }
            let len = (end - pos).min(LOCAL_CHUNK);
            let (file, buf) = tokio::task::spawn_blocking(move || read_file_range(file, pos, len))
                .await
                .map_err(|e| Error::internal(format!("local read task failed: {e}")))?
                .map_err(|e| Error::from(e).with_location(Location::file(display.clone())))?;
            Ok(Some((Bytes::from(buf), (file, pos + len))))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::merge_touching;

    #[test]
    fn only_touching_or_overlapping_ranges_merge() {
        let merged = merge_touching(&[20..30, 0..10, 10..20, 31..40, 35..38]);
        assert_eq!(
            merged,
            vec![(0..30, vec![1, 2, 0]), (31..40, vec![3, 4])],
            "a gap of one byte is not fetched"
        );
        assert!(merge_touching(&[]).is_empty());
    }
}
