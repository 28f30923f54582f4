//! What the server does with a TCP connection before and between requests, so that no
//! client can hold a slot for nothing:
//!
//! - [`Slots`]: at most `max_open_connections` at once, and at most
//!   `max_open_connections_per_ip` from one source address; a connection over either is
//!   closed on accept.
//! - [`watchdog`]: a deadline from accept to the end of the first request's headers
//!   (before its first byte too, HTTP/1 and HTTP/2 alike), an idle deadline between requests
//!   on a kept-alive connection, and a bound on how long requests may keep it busy.
//!   hyper's own header timeout starts only once the first byte has arrived, and hyper-util
//!   waits for that byte with no deadline (to tell HTTP/1 from HTTP/2), which is how silent
//!   connections used to stay open for ever.
//! - [`Watched`]: the socket, read through a [`ChunkSniffer`] that sees an HTTP/1 chunked
//!   body declare a chunk larger than the body limit, so that the request is answered 413 at
//!   once instead of after waiting for bytes that will never fit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};

/// The connection slots: a global count and a count per source address.
pub(crate) struct Slots {
    max_total: usize,
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Why a connection was refused on accept.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Total,
    PerIp,
}

impl Slots {
    /// `max_per_ip = 0` means no per-address cap.
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(Slots {
            max_total,
            max_per_ip,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A slot for a connection from `ip`, given back when the [`Slot`] is dropped.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.0 >= self.max_total {
            return Err(Refused::Total);
        }
        let from_ip = open.1.get(&ip).copied().unwrap_or(0);
        if self.max_per_ip > 0 && from_ip >= self.max_per_ip {
            return Err(Refused::PerIp);
        }
        open.0 += 1;
        open.1.insert(ip, from_ip + 1);
        Ok(Slot {
            slots: self.clone(),
            ip,
        })
    }
}

/// One admitted connection's place in [`Slots`].
pub(crate) struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        open.0 = open.0.saturating_sub(1);
        if let Some(n) = open.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.ip);
            }
        }
    }
}

/// What one connection's requests, its socket reader and its watchdog share.
pub(crate) struct ConnShared {
    /// Requests whose headers have been read and whose response is not yet sent.
    busy: watch::Sender<usize>,
    /// Set once an HTTP/1 chunk larger than the body limit was declared.
    oversized: AtomicBool,
    oversized_notify: Notify,
}

impl ConnShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ConnShared {
            busy: watch::Sender::new(0),
            oversized: AtomicBool::new(false),
            oversized_notify: Notify::new(),
        })
    }

    /// Marks a request as started (its headers are in); the guard marks it done when
    /// dropped, which the server does once the response body has been sent.
    pub(crate) fn begin(self: &Arc<Self>) -> BusyGuard {
        self.busy.send_modify(|n| *n += 1);
        BusyGuard(self.clone())
    }

    /// Resolves once the request body being read declared a chunk over the limit.
    pub(crate) async fn oversized(&self) {
        loop {
            let notified = self.oversized_notify.notified();
            if self.oversized.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    fn flag_oversized(&self) {
        self.oversized.store(true, Ordering::SeqCst);
        self.oversized_notify.notify_waiters();
    }
}

/// A request in progress on its connection (see [`ConnShared::begin`]).
pub(crate) struct BusyGuard(Arc<ConnShared>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that keeps its request counted as in progress until it has been sent
/// (hyper drops it then), so that the idle deadline starts when the answer is out.
pub(crate) struct Guarded {
    inner: axum::body::Body,
    _busy: BusyGuard,
}

impl Guarded {
    pub(crate) fn new(inner: axum::body::Body, busy: BusyGuard) -> Self {
        Guarded { inner, _busy: busy }
    }
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The deadlines a connection lives under.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadlines {
    /// From accept to the end of the first request's headers.
    pub(crate) headers: Duration,
    /// From the end of a response to the end of the next request's headers.
    pub(crate) idle: Duration,
    /// How long the connection may go without a request starting or ending while requests
    /// are in progress (reading the body, the call itself, writing the answer).
    pub(crate) busy: Duration,
}

/// Returns when the connection has outlived its deadline: the caller drops the connection,
/// which closes the socket. Never returns while the connection keeps to its deadlines.
pub(crate) async fn watchdog(shared: &ConnShared, deadlines: Deadlines) {
    let mut busy = shared.busy.subscribe();
    let mut served_one = false;
    loop {
        let in_progress = *busy.borrow_and_update();
        let limit = match (in_progress, served_one) {
            (0, false) => deadlines.headers,
            (0, true) => deadlines.idle,
            _ => deadlines.busy,
        };
        if in_progress > 0 {
            served_one = true;
        }
        match tokio::time::timeout(limit, busy.changed()).await {
            Ok(Ok(())) => continue,
            // `shared` holds the sender, so this cannot close while we run; be safe.
            Ok(Err(_)) => return,
            Err(_elapsed) => return,
        }
    }
}

/// The connection's socket, with every byte read shown to a [`ChunkSniffer`].
pub(crate) struct Watched<S> {
    inner: S,
    sniffer: ChunkSniffer,
    shared: Arc<ConnShared>,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, max_body: u64, shared: Arc<ConnShared>) -> Self {
        Watched {
            inner,
            sniffer: ChunkSniffer::new(max_body),
            shared,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            if this.sniffer.feed(&buf.filled()[before..]) {
                this.shared.flag_oversized();
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Follows the framing of an HTTP/1 request stream (heads, `Content-Length` bodies, chunked
/// bodies, trailers) far enough to read each declared chunk size. It never changes the
/// bytes; hyper parses them for real. Anything it does not follow (HTTP/2, an upgrade, a
/// head larger than it keeps) turns it off for the rest of the connection.
#[derive(Debug)]
pub(crate) struct ChunkSniffer {
    state: Sniff,
    /// The head or the line being collected.
    line: Vec<u8>,
    max_body: u64,
    /// The connection's first bytes, up to the length of the HTTP/2 preface.
    start: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Sniff {
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data: how many of its two bytes are still to come.
    ChunkEnd(u8),
    Trailers,
    Off,
}

/// Longest head or line it keeps; hyper refuses larger heads anyway.
const MAX_HEAD: usize = 64 * 1024;
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl ChunkSniffer {
    pub(crate) fn new(max_body: u64) -> Self {
        ChunkSniffer {
            state: Sniff::Head,
            line: Vec::new(),
            max_body,
            start: Vec::new(),
        }
    }

    /// Shows the sniffer the next bytes read; true when they declared a chunk over the
    /// body limit (once per such chunk).
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> bool {
        if self.start.len() < H2_PREFACE.len() {
            let need = H2_PREFACE.len() - self.start.len();
            self.start
                .extend_from_slice(&bytes[..need.min(bytes.len())]);
            if self.start == H2_PREFACE {
                self.state = Sniff::Off;
            }
        }
        let mut oversized = false;
        while !bytes.is_empty() {
            match self.state {
                Sniff::Off => return oversized,
                Sniff::Body(n) => {
                    let take = (n.min(bytes.len() as u64)) as usize;
                    bytes = &bytes[take..];
                    self.state = match n - take as u64 {
                        0 => Sniff::Head,
                        left => Sniff::Body(left),
                    };
                }
                Sniff::ChunkData(n) => {
                    let take = (n.min(bytes.len() as u64)) as usize;
                    bytes = &bytes[take..];
                    self.state = match n - take as u64 {
                        0 => Sniff::ChunkEnd(2),
                        left => Sniff::ChunkData(left),
                    };
                }
                Sniff::ChunkEnd(n) => {
                    bytes = &bytes[1..];
                    self.state = if n == 1 {
                        Sniff::ChunkSize
                    } else {
                        Sniff::ChunkEnd(1)
                    };
                }
                Sniff::Head | Sniff::ChunkSize | Sniff::Trailers => {
                    let (taken, done) = self.collect(bytes);
                    bytes = &bytes[taken..];
                    if self.line.len() > MAX_HEAD {
                        self.state = Sniff::Off;
                        continue;
                    }
                    if done {
                        oversized |= self.finish_line();
                        self.line.clear();
                    }
                }
            }
        }
        oversized
    }

    /// Collects bytes into `line` up to the end of what the state waits for: a blank line
    /// for a head or trailers, one CRLF for a chunk-size line. Returns how many bytes it
    /// took and whether the end was reached.
    fn collect(&mut self, bytes: &[u8]) -> (usize, bool) {
        for (i, &b) in bytes.iter().enumerate() {
            self.line.push(b);
            let done = match self.state {
                Sniff::ChunkSize => self.line.ends_with(b"\r\n"),
                // Trailers: a lone CRLF (none) or a blank line after some.
                Sniff::Trailers => self.line == b"\r\n" || self.line.ends_with(b"\r\n\r\n"),
                _ => self.line.ends_with(b"\r\n\r\n"),
            };
            if done {
                return (i + 1, true);
            }
            if self.line.len() > MAX_HEAD {
                return (i + 1, false);
            }
        }
        (bytes.len(), false)
    }

    /// A complete head, chunk-size line or trailer section is in `line`: the next state,
    /// and whether a chunk over the limit was declared.
    fn finish_line(&mut self) -> bool {
        match self.state {
            Sniff::Head => {
                let head = String::from_utf8_lossy(&self.line).to_ascii_lowercase();
                let header = |name: &str| {
                    head.lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim() == name)
                        .map(|(_, v)| v.trim().to_string())
                };
                self.state = if header("upgrade").is_some() {
                    Sniff::Off
                } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                    Sniff::ChunkSize
                } else {
                    match header("content-length").map(|v| v.parse::<u64>()) {
                        Some(Ok(n)) if n > 0 => Sniff::Body(n),
                        Some(Err(_)) => Sniff::Off,
                        _ => Sniff::Head,
                    }
                };
                false
            }
            Sniff::ChunkSize => {
                let text = String::from_utf8_lossy(&self.line);
                let digits = text.split(';').next().unwrap_or("").trim();
                match u64::from_str_radix(digits, 16) {
                    Ok(0) => {
                        self.state = Sniff::Trailers;
                        false
                    }
                    Ok(n) => {
                        self.state = Sniff::ChunkData(n);
                        n > self.max_body
                    }
                    // Too many digits for any size: as impossible as a chunk can be.
                    Err(_)
                        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        self.state = Sniff::Off;
                        true
                    }
                    Err(_) => {
                        self.state = Sniff::Off;
                        false
                    }
                }
            }
            Sniff::Trailers => {
                self.state = Sniff::Head;
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_over_the_limit_is_seen_whatever_the_bytes_are_split_into() {
        let stream: &[u8] = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n\
POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n2\r\nab\r\nFFFFFF;ext=1\r\n";
        for split in [1, 2, 3, 7, 64, stream.len()] {
            let mut s = ChunkSniffer::new(1000);
            let flagged: Vec<bool> = stream.chunks(split).map(|c| s.feed(c)).collect();
            assert_eq!(
                flagged.iter().filter(|f| **f).count(),
                1,
                "split {split}: {flagged:?}"
            );
            assert!(*flagged.last().unwrap(), "split {split}");
            assert_eq!(s.state, Sniff::ChunkData(0xFF_FFFF));
        }
    }

    #[test]
    fn chunks_within_the_limit_trailers_and_pipelined_requests_are_not_flagged() {
        let mut s = ChunkSniffer::new(10);
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
a\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n\
GET /health HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 20\r\n\r\n\
0123456789abcdefghij";
        assert!(!s.feed(stream));
        assert_eq!(s.state, Sniff::Head);
    }

    #[test]
    fn a_size_with_more_digits_than_fit_is_flagged_and_http2_and_upgrades_turn_it_off() {
        let mut s = ChunkSniffer::new(10);
        assert!(s.feed(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFFFF\r\n"
        ));
        let mut s = ChunkSniffer::new(10);
        s.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(s.state, Sniff::Off);
        let mut s = ChunkSniffer::new(10);
        s.feed(b"GET /websocket HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
        assert_eq!(s.state, Sniff::Off);
    }

    #[test]
    fn slots_cap_the_total_and_each_address_and_come_back_when_dropped() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = slots.admit(a).unwrap();
        let _a2 = slots.admit(a).unwrap();
        assert_eq!(slots.admit(a).err(), Some(Refused::PerIp));
        let _b1 = slots.admit(b).unwrap();
        assert_eq!(slots.admit(b).err(), Some(Refused::Total));
        drop(a1);
        assert!(slots.admit(a).is_ok(), "a dropped slot is given back");
        let unlimited = Slots::new(10, 0);
        let held: Vec<_> = (0..10).map(|_| unlimited.admit(a).unwrap()).collect();
        assert_eq!(unlimited.admit(a).err(), Some(Refused::Total));
        drop(held);
    }
}
