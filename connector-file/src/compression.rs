//! Whole-file compression (gzip, zstd) as a layer between storage and formats.
//!
//! Decompression is push-based (`flate2::write::MultiGzDecoder`, `zstd::stream::write::Decoder`):
//! compressed chunks go in as they arrive from the store and decompressed bytes come out, so a
//! file is never held whole in memory and no blocking thread is needed. Input is fed in slices of
//! [`SLICE`] bytes, which bounds the CPU time of one poll and the size of each output chunk.
//! Compression wraps any [`FormatWriter`] the same way.

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use connector_core::{Error, ErrorKind, Location, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::format::{ByteSource, FormatWriter};

/// Compressed input is fed to the decompressor in slices of this many bytes.
pub const SLICE: usize = 64 * 1024;

/// A whole-file compression codec.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Not compressed.
    #[default]
    None,
    /// gzip (RFC 1952); concatenated members are read as one stream.
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The codec a path's last extension names (`.gz`, `.gzip`, `.zst`, `.zstd`), or `None`.
    #[must_use]
    pub fn from_path(path: &str) -> Self {
        Self::split_path(path).1
    }

    /// Split a path into the part before the compression extension and the codec it names.
    /// `data/a.csv.gz` → (`data/a.csv`, `Gzip`); `data/a.csv` → (`data/a.csv`, `None`).
    #[must_use]
    pub fn split_path(path: &str) -> (&str, Self) {
        let file_start = path.rfind('/').map_or(0, |i| i + 1);
        if let Some(dot) = path[file_start..].rfind('.') {
            let ext = path[file_start + dot + 1..].to_ascii_lowercase();
            let c = match ext.as_str() {
                "gz" | "gzip" => Self::Gzip,
                "zst" | "zstd" => Self::Zstd,
                _ => Self::None,
            };
            if c != Self::None {
                return (&path[..file_start + dot], c);
            }
        }
        (path, Self::None)
    }

    /// The file extension this codec appends (without dot).
    #[must_use]
    pub fn extension(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Gzip => Some("gz"),
            Self::Zstd => Some("zst"),
        }
    }

    /// Parse `none`, `gzip`/`gz`, `zstd`/`zst` (case-insensitive).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Self::None),
            "gzip" | "gz" => Ok(Self::Gzip),
            "zstd" | "zst" => Ok(Self::Zstd),
            other => Err(Error::invalid_config(format!(
                "unknown compression {other:?}; expected none, gzip or zstd"
            ))),
        }
    }
}

enum DecoderState {
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Vec<u8>>>),
}

/// A push decompressor: compressed bytes in, decompressed bytes out.
pub struct Decompressor {
    state: DecoderState,
    location: String,
    consumed: u64,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("location", &self.location)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

impl Decompressor {
    /// A decompressor for `compression`, or `None` for [`Compression::None`]. `location` names
    /// the file in errors.
    pub fn new(compression: Compression, location: impl Into<String>) -> Result<Option<Self>> {
        let location = location.into();
        let state = match compression {
            Compression::None => return Ok(None),
            Compression::Gzip => {
                DecoderState::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
            }
            Compression::Zstd => DecoderState::Zstd(Box::new(
                zstd::stream::write::Decoder::new(Vec::new())
                    .map_err(|e| Error::from(e).with_location(Location::file(location.clone())))?,
            )),
        };
        Ok(Some(Self {
            state,
            location,
            consumed: 0,
        }))
    }

    fn error(&self, e: &std::io::Error) -> Error {
        Error::new(ErrorKind::Decode, format!("cannot decompress: {e}"))
            .with_location(Location::file(self.location.clone()).with_byte_offset(self.consumed))
    }

    /// Feed compressed bytes; returns the bytes decompressed so far.
    pub fn push(&mut self, input: &[u8]) -> Result<Bytes> {
        let r = match &mut self.state {
            DecoderState::Gzip(d) => d.write_all(input).and_then(|()| d.flush()),
            DecoderState::Zstd(d) => d.write_all(input).and_then(|()| d.flush()),
        };
        if let Err(e) = r {
            return Err(self.error(&e));
        }
        self.consumed += input.len() as u64;
        Ok(Bytes::from(std::mem::take(self.out())))
    }

    fn out(&mut self) -> &mut Vec<u8> {
        match &mut self.state {
            DecoderState::Gzip(d) => d.get_mut(),
            DecoderState::Zstd(d) => d.get_mut(),
        }
    }

    /// End of input: returns the last bytes, or a [`ErrorKind::Decode`] error if the compressed
    /// stream is truncated.
    pub fn finish(mut self) -> Result<Bytes> {
        let r = match &mut self.state {
            DecoderState::Gzip(d) => d.try_finish(),
            DecoderState::Zstd(d) => d.flush(),
        };
        if let Err(e) = r {
            return Err(self.error(&e));
        }
        let out = std::mem::take(self.out());
        if let DecoderState::Zstd(d) = self.state {
            // `into_inner` does not say whether a frame was cut short; `finish` does.
            if let Err(e) = d.finish() {
                return Err(
                    Error::new(ErrorKind::Decode, format!("truncated zstd stream: {e}"))
                        .with_location(
                            Location::file(self.location).with_byte_offset(self.consumed),
                        ),
                );
            }
        }
        Ok(Bytes::from(out))
    }
}

/// Decompress a stream of compressed chunks.
pub fn decompress_stream(
    input: BoxStream<'static, Result<Bytes>>,
    compression: Compression,
    location: impl Into<String>,
) -> Result<BoxStream<'static, Result<Bytes>>> {
    struct State {
        input: BoxStream<'static, Result<Bytes>>,
        decoder: Option<Decompressor>,
        chunk: Bytes,
    }
    let Some(decoder) = Decompressor::new(compression, location)? else {
        return Ok(input);
    };
    let state = State {
        input,
        decoder: Some(decoder),
        chunk: Bytes::new(),
    };
    Ok(futures::stream::unfold(state, |mut st| async move {
        loop {
            let decoder = st.decoder.as_mut()?;
            if !st.chunk.is_empty() {
                let take = st.chunk.len().min(SLICE);
                let slice = st.chunk.split_to(take);
                match decoder.push(&slice) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Some((Ok(out), st)),
                    Err(e) => {
                        st.decoder = None;
                        return Some((Err(e), st));
                    }
                }
            }
            match st.input.next().await {
                Some(Ok(chunk)) => st.chunk = chunk,
                Some(Err(e)) => {
                    st.decoder = None;
                    return Some((Err(e), st));
                }
                None => {
                    let decoder = st.decoder.take()?;
                    return match decoder.finish() {
                        Ok(out) if out.is_empty() => None,
                        other => Some((other, st)),
                    };
                }
            }
        }
    })
    .boxed())
}

/// A [`ByteSource`] that decompresses another one. Only sequential access ([`ByteSource::stream`],
/// [`ByteSource::get_all`]) is possible; sizes and ranges of decompressed data are unknown.
#[derive(Debug, Clone)]
pub struct DecompressedSource {
    inner: Arc<dyn ByteSource>,
    compression: Compression,
}

impl DecompressedSource {
    /// Decompress `inner` with `compression`.
    #[must_use]
    pub fn new(inner: Arc<dyn ByteSource>, compression: Compression) -> Self {
        Self { inner, compression }
    }

    /// `inner` itself for [`Compression::None`], else a decompressing wrapper.
    #[must_use]
    pub fn wrap(inner: Arc<dyn ByteSource>, compression: Compression) -> Arc<dyn ByteSource> {
        if compression == Compression::None {
            inner
        } else {
            Arc::new(Self::new(inner, compression))
        }
    }

    fn random_access(&self) -> Error {
        Error::unsupported(format!(
            "{:?}-compressed files can only be read sequentially (this format needs random access)",
            self.compression
        ))
        .with_location(Location::file(self.inner.location()))
    }
}

#[async_trait]
impl ByteSource for DecompressedSource {
    fn location(&self) -> &str {
        self.inner.location()
    }

    async fn size(&self) -> Result<u64> {
        Err(self.random_access())
    }

    async fn get_range(&self, _range: Range<u64>) -> Result<Bytes> {
        Err(self.random_access())
    }

    async fn stream(&self) -> Result<BoxStream<'static, Result<Bytes>>> {
        decompress_stream(
            self.inner.stream().await?,
            self.compression,
            self.inner.location(),
        )
    }

    async fn get_all(&self) -> Result<Bytes> {
        let mut s = self.stream().await?;
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }
}

enum EncoderState {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

/// A [`FormatWriter`] whose output is compressed.
struct CompressedWriter {
    inner: Box<dyn FormatWriter>,
    encoder: EncoderState,
}

impl CompressedWriter {
    fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        match &mut self.encoder {
            EncoderState::Gzip(e) => e.write_all(bytes),
            EncoderState::Zstd(e) => e.write_all(bytes),
        }
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot compress: {e}")))
    }
}

impl FormatWriter for CompressedWriter {
    fn write(&mut self, batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        self.inner.write(batch)?;
        let bytes = self.inner.take_bytes();
        self.feed(&bytes)
    }

    fn take_bytes(&mut self) -> Bytes {
        let out = match &mut self.encoder {
            EncoderState::Gzip(e) => e.get_mut(),
            EncoderState::Zstd(e) => e.get_mut(),
        };
        Bytes::from(std::mem::take(out))
    }

    fn finish(mut self: Box<Self>) -> Result<Bytes> {
        let rest = std::mem::replace(&mut self.inner, Box::new(NoWriter)).finish()?;
        self.feed(&rest)?;
        let out = match self.encoder {
            EncoderState::Gzip(e) => e.finish(),
            EncoderState::Zstd(e) => e.finish(),
        }
        .map_err(|e| Error::new(ErrorKind::Internal, format!("cannot compress: {e}")))?;
        Ok(Bytes::from(out))
    }
}

/// Placeholder left behind when the inner writer is finished.
struct NoWriter;

impl FormatWriter for NoWriter {
    fn write(&mut self, _batch: &arrow::record_batch::RecordBatch) -> Result<()> {
        Err(Error::internal("writer already finished"))
    }
    fn take_bytes(&mut self) -> Bytes {
        Bytes::new()
    }
    fn finish(self: Box<Self>) -> Result<Bytes> {
        Ok(Bytes::new())
    }
}

/// Wrap `inner` so that its output is compressed with `compression` (unchanged for `None`).
pub fn compress_writer(
    inner: Box<dyn FormatWriter>,
    compression: Compression,
) -> Result<Box<dyn FormatWriter>> {
    let encoder = match compression {
        Compression::None => return Ok(inner),
        Compression::Gzip => EncoderState::Gzip(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        )),
        Compression::Zstd => EncoderState::Zstd(
            zstd::stream::write::Encoder::new(Vec::new(), zstd::DEFAULT_COMPRESSION_LEVEL)
                .map_err(|e| Error::internal(format!("cannot start zstd: {e}")))?,
        ),
    };
    Ok(Box::new(CompressedWriter { inner, encoder }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_by_extension() {
        assert_eq!(
            Compression::split_path("d/a.csv.gz"),
            ("d/a.csv", Compression::Gzip)
        );
        assert_eq!(
            Compression::split_path("a.json.ZST"),
            ("a.json", Compression::Zstd)
        );
        assert_eq!(
            Compression::split_path("a.gz/b"),
            ("a.gz/b", Compression::None)
        );
        assert_eq!(
            Compression::split_path("a.csv"),
            ("a.csv", Compression::None)
        );
    }

    async fn roundtrip(c: Compression) {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut w = compress_writer(Box::new(Raw(data.clone())), c).unwrap();
        let mut compressed = w.take_bytes().to_vec();
        compressed.extend_from_slice(&w.finish().unwrap());
        // Feed the compressed bytes in odd-sized chunks.
        let chunks: Vec<Result<Bytes>> = compressed
            .chunks(7777)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let s = decompress_stream(futures::stream::iter(chunks).boxed(), c, "x").unwrap();
        let out: Vec<Bytes> = s.map(|b| b.unwrap()).collect().await;
        assert_eq!(out.concat(), data);
        // A truncated stream is a decode error.
        let cut = Bytes::copy_from_slice(&compressed[..compressed.len() / 2]);
        let s = decompress_stream(futures::stream::iter([Ok(cut)]).boxed(), c, "x.gz").unwrap();
        let results: Vec<Result<Bytes>> = s.collect().await;
        let err = results.into_iter().find_map(Result::err).unwrap();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert_eq!(err.location().unwrap().file.as_deref(), Some("x.gz"));
    }

    struct Raw(Vec<u8>);
    impl FormatWriter for Raw {
        fn write(&mut self, _batch: &arrow::record_batch::RecordBatch) -> Result<()> {
            Ok(())
        }
        fn take_bytes(&mut self) -> Bytes {
            Bytes::new()
        }
        fn finish(self: Box<Self>) -> Result<Bytes> {
            Ok(Bytes::from(self.0))
        }
    }

    #[tokio::test]
    async fn gzip_and_zstd_roundtrip_and_truncation() {
        roundtrip(Compression::Gzip).await;
        roundtrip(Compression::Zstd).await;
    }
}
