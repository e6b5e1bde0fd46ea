//! Small helpers shared by the codecs.

#[cfg(any(feature = "csv", feature = "parquet"))]
use std::io::Write;
#[cfg(any(feature = "csv", feature = "parquet"))]
use std::sync::{Arc, Mutex, PoisonError};

#[cfg(any(feature = "csv", feature = "parquet"))]
use bytes::Bytes;

/// An in-memory `Write` target that an encoder owns while the caller drains what it produced.
#[cfg(any(feature = "csv", feature = "parquet"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedBuf(Arc<Mutex<Vec<u8>>>);

#[cfg(any(feature = "csv", feature = "parquet"))]
impl SharedBuf {
    /// Take the bytes written so far.
    pub(crate) fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(
            &mut *self.0.lock().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

#[cfg(any(feature = "csv", feature = "parquet"))]
impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Remove the decoder-relative position (`at line 3`, `for line 3`) that arrow-csv puts in its
/// messages: our caller reports the position in the file instead.
#[cfg(feature = "csv")]
pub(crate) fn strip_relative_line(msg: &str) -> String {
    let mut out = msg.to_owned();
    for marker in [" at line ", " for line "] {
        if let Some(start) = out.find(marker) {
            let rest = &out[start + marker.len()..];
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let end = start + marker.len() + digits;
            out.replace_range(start..end, "");
        }
    }
    out
}

/// Count `\n` bytes.
// The `bytecount` crate would be one more dependency for a loop the compiler vectorizes anyway.
#[allow(clippy::naive_bytecount)]
#[cfg(feature = "csv")]
pub(crate) fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}
