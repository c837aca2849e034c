//! The load generator's HTTP/1.1 client: one keep-alive connection, one request in flight.
//!
//! It writes each request with one `write_all` and parses only the status line and the
//! `Content-Length`/`Connection` headers, so it costs far less CPU than a general client
//! (reqwest, hyper's) would take away from the server on a small machine.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::BoxError;

/// An exchange slower than this counts as an error (and the connection is replaced), so that a
/// wedged server fails the run instead of hanging it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A keep-alive HTTP/1.1 client connection with one request in flight at a time.
pub struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: BytesMut,
    /// Bytes of `buf` that belong to the last response (dropped before the next exchange).
    consumed: usize,
    /// Start of the last response's body in `buf`.
    body_start: usize,
}

pub struct Response {
    pub status: u16,
    /// The server sent `Connection: close`: the connection must not be reused.
    pub close: bool,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        // As the server does: no small write should wait on Nagle's algorithm.
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr,
            stream,
            buf: BytesMut::with_capacity(4096),
            consumed: 0,
            body_start: 0,
        })
    }

    /// `count` connections to `addrs`, taken in turn (several nodes: requests round-robin).
    pub async fn connect_all(addrs: &[SocketAddr], count: usize) -> std::io::Result<Vec<Conn>> {
        let mut conns = Vec::with_capacity(count);
        for i in 0..count {
            conns.push(Conn::connect(addrs[i % addrs.len()]).await?);
        }
        Ok(conns)
    }

    pub async fn reconnect(&mut self) -> std::io::Result<()> {
        *self = Conn::connect(self.addr).await?;
        Ok(())
    }

    /// Body of the last response.
    pub fn body(&self) -> &[u8] {
        &self.buf[self.body_start..self.consumed]
    }

    /// Writes `request` and reads the complete response.
    pub async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Response> {
        self.buf.advance(self.consumed);
        self.consumed = 0;
        self.stream.write_all(request).await?;
        loop {
            if let Some((response, header_len, body_len)) = parse_head(&self.buf)? {
                while self.buf.len() < header_len + body_len {
                    self.fill().await?;
                }
                self.body_start = header_len;
                self.consumed = header_len + body_len;
                return Ok(response);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "server closed the connection mid-response",
            ));
        }
        Ok(())
    }

    /// One exchange that must answer within [`REQUEST_TIMEOUT`]: the status and the body as
    /// JSON (or as a JSON string when it is not JSON).
    pub async fn call(&mut self, request: &[u8]) -> Result<(u16, serde_json::Value), BoxError> {
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(request))
            .await
            .map_err(|_| format!("no response within {REQUEST_TIMEOUT:?}"))??;
        let json = serde_json::from_slice(self.body()).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(self.body()).into_owned())
        });
        Ok((response.status, json))
    }

    /// A management API call (`/api/v1/...`) with a bearer token: the status and JSON body.
    pub async fn rest(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), BoxError> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.call(request.as_bytes()).await
    }
}

/// A `GET` of the management API with a bearer token, as raw bytes.
pub fn rest_get(addr: SocketAddr, path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

/// Parses the status line and headers once they are complete: the response, the header length
/// and the body length. Only `Content-Length` bodies are supported (hyper sends one for every
/// response of this server, whose bodies are all in memory).
fn parse_head(buf: &[u8]) -> std::io::Result<Option<(Response, usize, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let head =
        std::str::from_utf8(&buf[..end]).map_err(|_| invalid("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| invalid("malformed status line"))?;
    let mut body_len = 0;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value
                .parse()
                .map_err(|_| invalid("malformed Content-Length"))?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(
                "chunked responses are not supported by the bench client",
            ));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(Some((Response { status, close }, end + 4, body_len)))
}
