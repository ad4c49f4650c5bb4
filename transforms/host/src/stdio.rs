//! Where a plugin's stdout and stderr go: a small per-instance buffer keeping the last
//! bytes written, read back for trap messages (a Rust panic prints there) and debug logs.
//! Writes always succeed, so `println!` in a plugin never fails or blocks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes kept per instance (the tail of what the plugin wrote during the current call).
pub(crate) const TAIL_BYTES: usize = 2048;

/// The shared tail buffer behind a plugin's stdout and stderr.
#[derive(Debug, Clone, Default)]
pub(crate) struct OutputTail(Arc<Mutex<VecDeque<u8>>>);

impl OutputTail {
    fn push(&self, bytes: &[u8]) {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let keep = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (buf.len() + keep.len()).saturating_sub(TAIL_BYTES);
        buf.drain(..overflow);
        buf.extend(keep);
    }

    /// Take what was written since the last call, as (lossy) UTF-8 text, trimmed.
    pub(crate) fn take(&self) -> String {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes: Vec<u8> = buf.drain(..).collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

impl IsTerminal for OutputTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for OutputTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(TailWriter(self.clone()))
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(TailStream(self.clone()))
    }
}

/// The WASI 0.2 output stream: always ready, never full, never failing.
struct TailStream(OutputTail);

#[wasmtime_wasi::async_trait]
impl Pollable for TailStream {
    async fn ready(&mut self) {}
}

impl OutputStream for TailStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

/// The same sink as a tokio writer (used by WASI 0.3 bindings, which this host does not
/// link; provided because the trait requires it).
struct TailWriter(OutputTail);

impl tokio::io::AsyncWrite for TailWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let tail = OutputTail::default();
        tail.push(b"hello ");
        tail.push(b"world");
        assert_eq!(tail.take(), "hello world");
        assert_eq!(tail.take(), "");
        tail.push(&vec![b'a'; TAIL_BYTES]);
        tail.push(b"end");
        let text = tail.take();
        assert_eq!(text.len(), TAIL_BYTES);
        assert!(text.ends_with("aend"));
    }
}
