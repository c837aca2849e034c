//! Reading request bodies with a size limit enforced while streaming.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;

pub enum BodyError {
    TooLarge,
    Io(hyper::Error),
}

/// Reads the whole body, failing as soon as it exceeds `limit` bytes.
pub async fn read_limited(body: &mut Incoming, limit: usize) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Io)?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Keeps reading (and discarding) what the client is still sending while the early answer is
/// written, so that it can read that answer instead of getting a connection reset. Bounded in
/// bytes and time so that a client cannot hold the connection open forever.
pub fn drain_in_background(mut body: Incoming, limit: usize) {
    let budget = limit.saturating_mul(16).max(16 << 20);
    tokio::spawn(async move {
        let mut seen = 0usize;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    seen += data.len();
                    if seen > budget {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
    });
}
