//! The hyper side of native provider intake (`/webhooks/inbound/{provider}/{key_id}`): the key
//! and provider are checked from the URL before the body is read, like `/webhooks/inbound`'s
//! API key, and the body is received within the same limits.

use std::net::SocketAddr;

use hyper::Request;
use hyper::body::Incoming;

use super::{Edge, HttpResponse, Refused, captured, length_and_target};
use crate::ingest::Trace;
use crate::inspect::{self, Capture};
use crate::providers::{self, Mode, NativeRequest};

pub(super) async fn native(
    edge: &Edge,
    peer: SocketAddr,
    req: Request<Incoming>,
    provider: &str,
    key_id: &str,
) -> HttpResponse {
    let state = &edge.state;
    let deadline = edge.request_deadline();
    let mut trace = Trace::start(peer.ip());
    let (parts, mut incoming) = req.into_parts();
    let (content_length, target) = length_and_target(&parts);
    let received = edge
        .within(deadline, async {
            let (key, provider) =
                providers::authenticate(state, &mut trace, provider, key_id, content_length)
                    .await
                    .map_err(Refused::early)?;
            let (key, body) = edge
                .receive_for(&mut trace, &mut incoming, key, deadline)
                .await?;
            Ok((key, provider, body))
        })
        .await
        .unwrap_or_else(|late| Err(late.answer(|e| trace.fail(e))));
    match received {
        Ok((key, provider, body)) => {
            let headers = captured(&parts.headers);
            if inspect::wanted(state, &key) {
                let mut capture = Capture::new(parts.method.as_str(), &target, headers.clone());
                capture.provider = Some(&provider.name);
                trace.capture = Some(capture);
            }
            let request = NativeRequest {
                method: parts.method.as_str(),
                target: &target,
                headers: &headers,
                body: body.bytes.clone(),
            };
            let reply =
                providers::process(state, &mut trace, key, provider, request, Mode::Live).await;
            drop(body);
            edge.answered(&trace, reply)
        }
        Err(refused) => edge.refused_inbound(&trace, refused, incoming),
    }
}
