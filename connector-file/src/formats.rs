//! [`FormatRegistry`]: which [`FileFormat`] reads a path, chosen by extension.

use std::fmt;
use std::sync::Arc;

use crate::compression::Compression;
use crate::format::FileFormat;

/// File formats by name and extension. A later registration wins for a shared extension.
/// [`crate::default_formats`] holds every format this build includes.
#[derive(Clone, Default)]
pub struct FormatRegistry {
    formats: Vec<Arc<dyn FileFormat>>,
}

impl fmt::Debug for FormatRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.formats.iter().map(|f| f.name()))
            .finish()
    }
}

impl FormatRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a format.
    pub fn register(&mut self, format: Arc<dyn FileFormat>) -> &mut Self {
        self.formats.push(format);
        self
    }

    /// Builder form of [`Self::register`].
    #[must_use]
    pub fn with(mut self, format: Arc<dyn FileFormat>) -> Self {
        self.register(format);
        self
    }

    /// Every registered format, in registration order.
    #[must_use]
    pub fn formats(&self) -> &[Arc<dyn FileFormat>] {
        &self.formats
    }

    /// The format named `name` (`"csv"`, `"parquet"`, …).
    #[must_use]
    pub fn by_name(&self, name: &str) -> Option<Arc<dyn FileFormat>> {
        self.formats
            .iter()
            .rev()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .cloned()
    }

    /// The format claiming extension `ext` (without dot, case-insensitive).
    #[must_use]
    pub fn by_extension(&self, ext: &str) -> Option<Arc<dyn FileFormat>> {
        self.formats
            .iter()
            .rev()
            .find(|f| f.extensions().iter().any(|e| e.eq_ignore_ascii_case(ext)))
            .cloned()
    }

    /// The format and compression of `path`, from its extensions (`a.csv.gz` → csv, gzip).
    #[must_use]
    pub fn for_path(&self, path: &str) -> Option<(Arc<dyn FileFormat>, Compression)> {
        let (stem, compression) = Compression::split_path(path);
        let ext = extension(stem)?;
        Some((self.by_extension(ext)?, compression))
    }
}

/// The last extension of the file name of `path`, without dot.
#[must_use]
pub fn extension(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let dot = name.rfind('.')?;
    (dot > 0 && dot + 1 < name.len()).then(|| &name[dot + 1..])
}

/// Whether `format` claims the extension of `path` (after a compression extension).
#[must_use]
pub fn claims(format: &dyn FileFormat, path: &str) -> bool {
    let (stem, _) = Compression::split_path(path);
    extension(stem).is_some_and(|ext| {
        format
            .extensions()
            .iter()
            .any(|e| e.eq_ignore_ascii_case(ext))
    })
}
