//! One HTTP/1.1 exchange on a connection the client owns: the request written in one piece,
//! the answer read into the connection's buffer and parsed with `httparse`, its body framed by
//! `Content-Length`, chunked transfer coding, or the end of the connection.
//!
//! A delivery is one small POST and one answer, so the exchange runs inside the sending task:
//! no connection task, no channel to it, no waking of a second task per request and answer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Answer, KEPT_BODY_BYTES, Target};

/// The most an answer's status line and headers may take.
const MOST_HEAD_BYTES: usize = 64 * 1024;
/// The most headers an answer may have.
const MOST_HEADERS: usize = 100;
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A connection's byte stream, plain or TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection and what has been read from it and not yet parsed.
pub(super) struct Connection {
    stream: Stream,
    buffer: Vec<u8>,
}

impl Connection {
    pub(super) fn new(stream: Stream) -> Connection {
        Connection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
        }
    }

    /// Whether an idle connection can carry another request: the receiver has not closed it,
    /// and has sent nothing unasked. Looks without waiting. (A pooled connection's buffer is
    /// empty: only a connection left at the end of an answer is pooled.)
    pub(super) fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = ReadBuf::new(&mut byte);
        Pin::new(&mut self.stream)
            .poll_read(&mut cx, &mut probe)
            .is_pending()
    }

    /// Whether nothing was read that is not yet parsed (no answer was sent unasked).
    pub(super) fn is_drained(&self) -> bool {
        self.buffer.is_empty()
    }

    /// Reads more into the buffer; how many bytes (0 at the end of the stream).
    async fn fill(&mut self) -> io::Result<usize> {
        self.buffer.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.buffer).await
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// Nothing of an answer arrived: the connection failed or closed before its first byte.
    #[error("the connection closed before an answer: {0}")]
    NothingReceived(String),
    #[error("{0}")]
    Broken(String),
}

fn broken(text: impl std::fmt::Display) -> Error {
    Error::Broken(text.to_string())
}

/// The request's bytes: request line, `Host`, `User-Agent`, the URL's credentials unless
/// `headers` has `Authorization`, `headers` (names in lower case, values checked with
/// [`super::is_header_value`]), `Content-Length`, and the body.
pub(super) fn request(
    target: &Target,
    headers: &[(&str, &[u8])],
    body: &[u8],
    user_agent: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + headers.len() * 64 + body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(target.path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(target.authority.as_bytes());
    out.extend_from_slice(b"\r\nuser-agent: ");
    out.extend_from_slice(user_agent.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut header = |name: &str, value: &[u8]| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    if let Some(credentials) = &target.url_credentials
        && !headers.iter().any(|(name, _)| *name == "authorization")
    {
        header("authorization", credentials.as_bytes());
    }
    for (name, value) in headers {
        header(name, value);
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Sends `request` and reads the answer; the answer, and whether the connection can carry
/// another request.
pub(super) async fn exchange(
    connection: &mut Connection,
    request: &[u8],
) -> Result<(Answer, bool), Error> {
    write(connection, request).await?;
    let (answer, reusable) = read_answer(connection).await?;
    Ok((answer, reusable && connection.buffer.is_empty()))
}

/// Writes requests (one, or several pipelined) in one piece; a failure is
/// [`Error::NothingReceived`].
pub(super) async fn write(connection: &mut Connection, requests: &[u8]) -> Result<(), Error> {
    let written = async {
        connection.stream.write_all(requests).await?;
        connection.stream.flush().await
    };
    written
        .await
        .map_err(|e| Error::NothingReceived(e.to_string()))
}

/// Reads the next answer; the answer, and whether the connection is left at the start of the
/// next one (bytes of it may already be in the buffer: a pipelined request's answer).
pub(super) async fn read_answer(connection: &mut Connection) -> Result<(Answer, bool), Error> {
    let head = read_head(connection).await?;
    let (body, complete) = read_body(connection, &head).await?;
    Ok((
        Answer {
            status: head.status,
            headers: head.headers,
            body,
        },
        complete && head.keep_alive,
    ))
}

/// An answer's status line and headers, and how its body is framed.
struct Head {
    status: u16,
    headers: HeaderMap,
    framing: Framing,
    /// Whether the receiver keeps the connection open after this answer.
    keep_alive: bool,
}

#[derive(Debug, PartialEq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the receiver closes the connection.
    Close,
}

/// Reads until a final (not 1xx) answer's head is complete; it is taken off the buffer.
async fn read_head(connection: &mut Connection) -> Result<Head, Error> {
    let mut received = false;
    loop {
        if !connection.buffer.is_empty() {
            received = true;
            let mut slots = [httparse::EMPTY_HEADER; MOST_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&connection.buffer) {
                Ok(httparse::Status::Complete(length)) => {
                    let status = parsed.code.unwrap_or(0);
                    let head = head_of(&parsed, status)?;
                    connection.buffer.drain(..length);
                    // 100 Continue and the other informational answers precede the real one.
                    if (100..200).contains(&status) && status != 101 {
                        continue;
                    }
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {
                    if connection.buffer.len() > MOST_HEAD_BYTES {
                        return Err(broken("the answer's headers are too large"));
                    }
                }
                Err(e) => return Err(broken(format!("invalid HTTP answer: {e}"))),
            }
        }
        match connection.fill().await {
            Ok(0) if !received => {
                return Err(Error::NothingReceived("end of stream".into()));
            }
            Ok(0) => return Err(broken("the connection closed during the answer's headers")),
            Ok(_) => {}
            Err(e) if !received => return Err(Error::NothingReceived(e.to_string())),
            Err(e) => return Err(broken(e)),
        }
    }
}

fn head_of(parsed: &httparse::Response<'_, '_>, status: u16) -> Result<Head, Error> {
    let mut headers = HeaderMap::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|e| broken(format!("invalid header name in the answer: {e}")))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|e| broken(format!("invalid header value in the answer: {e}")))?;
        headers.append(name, value);
    }
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let http11 = parsed.version == Some(1);
    let keep_alive = if http11 {
        !has_token(http::header::CONNECTION, "close")
    } else {
        has_token(http::header::CONNECTION, "keep-alive")
    };
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Empty
    } else if let Some(coding) = headers.get(http::header::TRANSFER_ENCODING) {
        let last = coding.to_str().unwrap_or("").rsplit(',').next();
        if last.is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked")) {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if let Some(length) = headers.get(http::header::CONTENT_LENGTH) {
        let length = length
            .to_str()
            .ok()
            .and_then(|l| l.trim().parse::<u64>().ok())
            .ok_or_else(|| broken("invalid Content-Length in the answer"))?;
        Framing::Length(length)
    } else {
        Framing::Close
    };
    Ok(Head {
        status,
        headers,
        keep_alive: keep_alive && framing != Framing::Close && status != 101,
        framing,
    })
}

/// The first [`KEPT_BODY_BYTES`] of the body, and whether all of it was read (the connection
/// is left at the next answer). A body longer than what is kept is not read to its end.
async fn read_body(connection: &mut Connection, head: &Head) -> Result<(Vec<u8>, bool), Error> {
    let mut kept = Vec::new();
    match head.framing {
        Framing::Empty => Ok((kept, true)),
        Framing::Length(length) => {
            let length = usize::try_from(length).unwrap_or(usize::MAX);
            if length > KEPT_BODY_BYTES {
                take_up_to(connection, &mut kept, KEPT_BODY_BYTES).await?;
                return Ok((kept, false));
            }
            take_up_to(connection, &mut kept, length).await?;
            if kept.len() < length {
                return Err(broken("the connection closed during the answer's body"));
            }
            Ok((kept, true))
        }
        Framing::Chunked => read_chunked(connection, kept).await,
        Framing::Close => {
            take_up_to(connection, &mut kept, KEPT_BODY_BYTES).await?;
            Ok((kept, false))
        }
    }
}

/// Moves up to `limit` bytes in all into `kept`, reading as needed; stops early at the end of
/// the stream.
async fn take_up_to(
    connection: &mut Connection,
    kept: &mut Vec<u8>,
    limit: usize,
) -> Result<(), Error> {
    loop {
        let wanted = limit - kept.len();
        let available = connection.buffer.len().min(wanted);
        kept.extend(connection.buffer.drain(..available));
        if kept.len() >= limit {
            return Ok(());
        }
        if connection.fill().await.map_err(broken)? == 0 {
            return Ok(());
        }
    }
}

/// A chunked body (RFC 9112 7.1): chunks until the last, then the trailer section.
async fn read_chunked(
    connection: &mut Connection,
    mut kept: Vec<u8>,
) -> Result<(Vec<u8>, bool), Error> {
    loop {
        let size = loop {
            match httparse::parse_chunk_size(&connection.buffer) {
                Ok(httparse::Status::Complete((used, size))) => {
                    connection.buffer.drain(..used);
                    break size;
                }
                Ok(httparse::Status::Partial) => {
                    if connection.buffer.len() > MOST_HEAD_BYTES {
                        return Err(broken("invalid chunk size line in the answer"));
                    }
                    more(connection).await?;
                }
                Err(_) => return Err(broken("invalid chunk size in the answer")),
            }
        };
        if size == 0 {
            return read_trailers(connection).await.map(|()| (kept, true));
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if kept.len().saturating_add(size) > KEPT_BODY_BYTES {
            take_up_to(connection, &mut kept, KEPT_BODY_BYTES).await?;
            return Ok((kept, false));
        }
        let end = kept.len() + size;
        take_up_to(connection, &mut kept, end).await?;
        if kept.len() < end {
            return Err(broken("the connection closed during a chunk"));
        }
        while connection.buffer.len() < 2 {
            more(connection).await?;
        }
        if &connection.buffer[..2] != b"\r\n" {
            return Err(broken("a chunk of the answer does not end with CRLF"));
        }
        connection.buffer.drain(..2);
    }
}

/// Skips the trailer fields after the last chunk, up to the empty line.
async fn read_trailers(connection: &mut Connection) -> Result<(), Error> {
    loop {
        if let Some(end) = connection.buffer.windows(2).position(|w| w == b"\r\n") {
            connection.buffer.drain(..end + 2);
            if end == 0 {
                return Ok(());
            }
            continue;
        }
        if connection.buffer.len() > MOST_HEAD_BYTES {
            return Err(broken("the answer's trailers are too large"));
        }
        more(connection).await?;
    }
}

/// Reads more; the end of the stream here is an error (the answer is not complete).
async fn more(connection: &mut Connection) -> Result<(), Error> {
    match connection.fill().await {
        Ok(0) => Err(broken("the connection closed during the answer's body")),
        Ok(_) => Ok(()),
        Err(e) => Err(broken(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Answers each request on one connection with the next of `answers`, written in pieces
    /// split at `|`; what the receiver read.
    async fn receiver(
        answers: Vec<&'static str>,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                // One request: its head, then Content-Length bytes.
                let mut request = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = socket.read(&mut chunk).await.unwrap();
                    request.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |l| l.trim().parse().unwrap());
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                seen.extend_from_slice(&request);
                for piece in answer.split('|') {
                    socket.write_all(piece.as_bytes()).await.unwrap();
                    socket.flush().await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
            seen
        });
        (address, task)
    }

    /// `exchange` with a deadline: a client that never finishes writing or reading fails the
    /// test instead of hanging it.
    async fn within<T>(exchange: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
            .await
            .expect("the exchange finished within 10 s")
    }

    async fn connect(address: std::net::SocketAddr) -> Connection {
        Connection::new(Stream::Plain(TcpStream::connect(address).await.unwrap()))
    }

    fn target(address: std::net::SocketAddr) -> Target {
        Target::parse(&format!("http://user:pw@{address}/hook?x=1"), true).unwrap()
    }

    #[tokio::test]
    async fn a_request_is_written_whole_and_answers_are_framed_every_way() {
        let (address, seen) = receiver(vec![
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhe|llo",
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n|2;ext=1\r\nde\r\n0\r\nx-trailer: t\r\n\r\n",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 500 Oops\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno",
        ])
        .await;
        let target = target(address);
        let body = br#"{"a":1}"#;
        let request = request(
            &target,
            &[("x-webhook-id", b"evt_1")],
            body,
            "hookgate/test",
        );
        let mut connection = connect(address).await;

        let (answer, reusable) = within(exchange(&mut connection, &request)).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice(), reusable),
            (200, &b"hello"[..], true)
        );
        assert_eq!(answer.headers["x-a"], "1");
        let (answer, reusable) = within(exchange(&mut connection, &request)).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice(), reusable),
            (201, &b"abcde"[..], true)
        );
        let (answer, reusable) = within(exchange(&mut connection, &request)).await.unwrap();
        assert_eq!((answer.status, answer.body.len(), reusable), (204, 0, true));
        let (answer, reusable) = within(exchange(&mut connection, &request)).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice(), reusable),
            (500, &b"no"[..], false)
        );

        let seen = String::from_utf8(seen.await.unwrap()).unwrap();
        let first = &seen[..seen.find(r#"{"a":1}"#).unwrap() + 7];
        assert_eq!(
            first,
            "POST /hook?x=1 HTTP/1.1\r\nhost: ".to_string()
                + &address.to_string()
                + "\r\nuser-agent: hookgate/test\r\nauthorization: Basic dXNlcjpwdw==\r\n\
                   x-webhook-id: evt_1\r\ncontent-length: 7\r\n\r\n{\"a\":1}"
        );
    }

    #[tokio::test]
    async fn bodies_past_what_is_kept_and_unframed_bodies_leave_the_connection() {
        let long = "x".repeat(KEPT_BODY_BYTES + 10);
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{long}",
                long.len()
            )
            .into_boxed_str(),
        );
        let (address, _seen) = receiver(vec![answer]).await;
        let request = request(&target(address), &[], b"{}", "t");
        let mut connection = connect(address).await;
        let (answer, reusable) = within(exchange(&mut connection, &request)).await.unwrap();
        assert_eq!((answer.body.len(), reusable), (KEPT_BODY_BYTES, false));

        // HTTP/1.0 without keep-alive: the body runs to the end of the connection.
        let (address, _seen) = receiver(vec!["HTTP/1.0 200 OK\r\n\r\nall of it"]).await;
        let mut connection = connect(address).await;
        let exchanged =
            tokio::spawn(async move { within(exchange(&mut connection, &request)).await });
        let (answer, reusable) = exchanged.await.unwrap().unwrap();
        assert_eq!(
            (answer.body.as_slice(), reusable),
            (&b"all of it"[..], false)
        );
    }

    #[tokio::test]
    async fn a_closed_connection_is_seen_before_it_is_used_and_fails_as_nothing_received() {
        let (address, seen) = receiver(vec!["HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]).await;
        let request = request(&target(address), &[], b"{}", "t");
        let mut connection = connect(address).await;
        within(exchange(&mut connection, &request)).await.unwrap();
        assert!(connection.is_open());
        seen.await.unwrap(); // the receiver has closed its end
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!connection.is_open());
        let failed = within(exchange(&mut connection, &request))
            .await
            .unwrap_err();
        assert!(matches!(failed, Error::NothingReceived(_)), "{failed}");
    }

    #[tokio::test]
    async fn malformed_answers_are_errors_not_answers() {
        for (answer, expected) in [
            (
                "HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                "invalid chunk size",
            ),
            ("NOT HTTP\r\n\r\n", "invalid HTTP answer"),
            (
                "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort",
                "closed during the answer's body",
            ),
        ] {
            let (address, _seen) = receiver(vec![answer]).await;
            let request = request(&target(address), &[], b"{}", "t");
            let mut connection = connect(address).await;
            let failed = within(exchange(&mut connection, &request))
                .await
                .unwrap_err();
            assert!(
                failed.to_string().contains(expected),
                "{answer:?}: {failed}"
            );
        }
    }

    /// A test CA, and a certificate for `localhost` it signed with its key (PKCS#8), base64 DER;
    /// made with openssl for this test, valid until 2126.
    const TEST_CA: &[&str] = &[
        "MIIBjDCCATOgAwIBAgIUTfkvdqEAMrPzvwM9OO1Tqlrau0owCgYIKoZIzj0EAwIwGzEZMBcGA1UEAwwQaG9va2dh",
        "dGUtdGVzdC1jYTAgFw0yNjEyMDExNjMwNDNaGA8yMTI2MTEwNzE2MzA0M1owGzEZMBcGA1UEAwwQaG9va2dhdGUt",
        "dGVzdC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABErDB3us8SEN/ZaWjJ4d2P7GEp73/cSSx3wiuzqR4m/u",
        "pGm037yhkxDd3HLRsDPRbqMo84gIszD79BWDQ8MIuwejUzBRMB0GA1UdDgQWBBT7CBEDcEk8YVIXvW9nefwb4Q9/",
        "WDAfBgNVHSMEGDAWgBT7CBEDcEk8YVIXvW9nefwb4Q9/WDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA",
        "MEQCIDzX0B6IhrYx8iiblUJAziEZoCTT1SOg//DnIidF9aDFAiAPcRXjVJeBng0lg1id/jCpPTJklWR8q74zlhxi",
        "BnZNlQ==",
    ];
    const TEST_LOCALHOST_CERT: &[&str] = &[
        "MIIBujCCAWCgAwIBAgIUFxmOBwKNsjMK169Vs3ROKdkvANcwCgYIKoZIzj0EAwIwGzEZMBcGA1UEAwwQaG9va2dh",
        "dGUtdGVzdC1jYTAgFw0yNjEyMDExNjMwNDNaGA8yMTI2MTEwNzE2MzA0M1owFDESMBAGA1UEAwwJbG9jYWxob3N0",
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEDSeBKniJqq9sjZ90ki/ihBXEdhHHmK0+2Ncf1MXhfik24bJ7MsTz",
        "t5m7WrB2hIZKEXSm8vo6RZeXtAjQmcf+aKOBhjCBgzAUBgNVHREEDTALgglsb2NhbGhvc3QwCQYDVR0TBAIwADAL",
        "BgNVHQ8EBAMCB4AwEwYDVR0lBAwwCgYIKwYBBQUHAwEwHQYDVR0OBBYEFGjGBmRIgztqTPs0dZcUXNrR+9R2MB8G",
        "A1UdIwQYMBaAFPsIEQNwSTxhUhe9b2d5/BvhD39YMAoGCCqGSM49BAMCA0gAMEUCIQCKjNx/mRMxaHRw6ZW401AC",
        "P1UzMJpZ76m5SxnM1s4cbgIgfszhSfLfI7/yVVRli50KMmMDFuCLNXFW7H6wdDgOSTg=",
    ];
    const TEST_LOCALHOST_KEY: &[&str] = &[
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2OfzmYBZQNdB/cjZPY8DBX0csprucVH5WjNhWnOU",
        "Zy6hRANCAAQNJ4EqeImqr2yNn3SSL+KEFcR2EceYrT7Y1x/UxeF+KTbhsnsyxPO3mbtasHaEhkoRdKby+jpFl5e0",
        "CNCZx/5o",
    ];

    fn der(parts: &[&str]) -> Vec<u8> {
        crate::crypto::base64_decode(&parts.concat()).unwrap()
    }

    #[tokio::test]
    async fn answers_come_back_over_tls_and_the_connection_is_kept_for_the_next() {
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let server_config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(der(TEST_LOCALHOST_CERT))],
                PrivateKeyDer::try_from(der(TEST_LOCALHOST_KEY)).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(socket).await.unwrap();
            for answer in [
                "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
            ] {
                let mut request = Vec::new();
                while !request.ends_with(b"{}") {
                    let mut chunk = [0u8; 2048];
                    let n = tls.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "the client closed early");
                    request.extend_from_slice(&chunk[..n]);
                }
                tls.write_all(answer.as_bytes()).await.unwrap();
                tls.flush().await.unwrap();
            }
            tls.shutdown().await.unwrap();
        });

        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(der(TEST_CA))).unwrap();
        let client_config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config));
        let socket = TcpStream::connect(address).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, socket).await.unwrap();
        let mut connection = Connection::new(Stream::Tls(Box::new(tls)));
        let target =
            Target::parse(&format!("https://localhost:{}/hook", address.port()), true).unwrap();
        let request = request(&target, &[], b"{}", "t");

        let (answer, reusable) = within(exchange(&mut connection, &request)).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice(), reusable),
            (200, &b"ok"[..], true)
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            connection.is_open(),
            "open between answers (TLS 1.3 tickets included)"
        );
        let (answer, reusable) = within(exchange(&mut connection, &request)).await.unwrap();
        assert_eq!((answer.status, reusable), (202, true));
        server.await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!connection.is_open(), "the server's close_notify is seen");
    }
}
