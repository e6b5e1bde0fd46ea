//! Shared driver of the fuzz targets: feed bytes through `FileFormat::infer_schema` and
//! `FileFormat::read` on a current-thread runtime and drain the stream. A panic anywhere is a
//! finding; errors are the expected outcome for garbage.

use std::sync::Arc;

use connector_core::{Error, ErrorKind};
use connector_file::{FileFormat, FormatReadOptions, InMemoryBytes};
use futures::StreamExt;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
}

/// Decode `data` as a file named `name` with `format`. With `located`, every error about the
/// input (invalid input, decode) must name the file: an error without it is a finding too.
pub fn run(format: &dyn FileFormat, name: &str, data: &[u8], located: bool) {
    let check = |e: &Error| {
        if located && matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Decode) {
            assert_eq!(
                e.location().and_then(|l| l.file.as_deref()),
                Some(name),
                "error without the file: {e}"
            );
        }
    };
    RUNTIME.with(|rt| {
        rt.block_on(async {
            let input = Arc::new(InMemoryBytes::new(name, data.to_vec()));
            if let Err(e) = format.infer_schema(input.clone()).await {
                check(&e);
            }
            let options = FormatReadOptions {
                batch_rows: 64,
                ..FormatReadOptions::default()
            };
            match format.read(input, options).await {
                Ok(mut stream) => {
                    while let Some(item) = stream.next().await {
                        if let Err(e) = item {
                            check(&e);
                            break;
                        }
                    }
                }
                Err(e) => check(&e),
            }
        });
    });
}
