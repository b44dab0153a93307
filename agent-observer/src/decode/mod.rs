//! Decoders: bytes in, meaning out. Pure: no I/O, no clock.
//!
//! - [`stream`] reassembles the kernel's chunks into one [`Segment`] per call (one SSL_write,
//!   one send...), in order per connection and direction, and says what was lost.
//! - [`tls_hello`] reads the server name and ALPN from a TLS ClientHello.
//!
//! Segments are the input of protocol decoders (HTTP/1.1, HTTP/2, SSE) and of the debug views.

pub mod stream;
pub mod tls_hello;

use crate::{
    intake::{Conn, Direction},
    span::UnixNanos,
};

/// One call's bytes on one connection, in one direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// When its first chunk was sent by the kernel.
    pub ts: UnixNanos,
    pub tgid: u32,
    pub conn: Conn,
    pub dir: Direction,
    /// `tls::LIB_*` of TLS plaintext, 0 for socket bytes.
    pub library: u32,
    pub bytes: Vec<u8>,
    /// Bytes of this call that were not captured (chunk limit, full ring buffer, unreadable
    /// memory); the stream has a hole of this size after `bytes`.
    pub lost: u64,
}
