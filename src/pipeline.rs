//! An inbound request from the edge to its answer, for both inbound routes:
//! `POST /webhooks/inbound` (the envelope pipeline of [`crate::ingest`]) and
//! `/webhooks/inbound/{provider}/{key_id}` (native intake, [`crate::providers`]).
//!
//! The same steps for both: authenticate from the headers, read the body (only then, and within
//! its bounds), run the route's stages, then record the answer (metrics, ingest-log row, info
//! line) and keep the request for `inspect` and `replay`. The HTTP edge calls [`inbound`] and
//! sends back the [`Reply`]; it knows nothing of the stages.

use std::sync::Arc;

use crate::ingest::{self, Trace};
use crate::inspect::{self, Capture};
use crate::keys::ApiKey;
use crate::providers::{self, Mode, NativeRequest, Provider};
use crate::request::{self, BodyReader, Head, Reply};
use crate::state::AppState;
use crate::verify::Headers;

/// Which inbound route a request came in on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Route<'a> {
    /// `POST /webhooks/inbound`: a signed envelope.
    Envelope,
    /// A provider's own request, at the key's URL for it.
    Native { provider: &'a str, key_id: &'a str },
}

/// Runs one inbound request and returns its answer.
pub(crate) async fn inbound<H: Headers + Sync>(
    state: &AppState,
    head: &Head<'_, H>,
    route: Route<'_>,
    body: &mut impl BodyReader,
) -> Reply {
    let mut trace = Trace::start(head.client);
    let admitted = request::admit(body, state.config.max_body_bytes, async {
        let (key, provider) = authenticate(state, &mut trace, head, route).await?;
        trace.key = Some(key.clone());
        request::record_key(&key.id);
        Ok((key, provider))
    })
    .await;
    let mut reply = match admitted {
        Ok(((key, None), bytes)) => {
            if inspect::wanted(state, &key) {
                trace.capture = Some(Capture::new(head.method, head.target, head.headers.all()));
            }
            ingest::process(state, &mut trace, key, head.headers, head.target, bytes).await
        }
        Ok(((key, Some(provider)), bytes)) => {
            let headers = head.headers.all();
            if inspect::wanted(state, &key) {
                let mut capture = Capture::new(head.method, head.target, headers.clone());
                capture.provider = Some(&provider.name);
                trace.capture = Some(capture);
            }
            let native = NativeRequest {
                method: head.method,
                target: head.target,
                headers: &headers,
                body: bytes,
            };
            providers::process(state, &mut trace, key, provider, native, Mode::Live).await
        }
        Err(refused) => refused.answer(&state.config, |e| trace.fail(e)),
    };
    ingest::finish(state, &trace, &mut reply);
    inspect::keep(state, &trace, &reply);
    reply
}

/// Stages 1-2 from the headers alone: the key (and, on the native route, the provider).
async fn authenticate<H: Headers + Sync>(
    state: &AppState,
    trace: &mut Trace,
    head: &Head<'_, H>,
    route: Route<'_>,
) -> Result<(Arc<ApiKey>, Option<&'static Provider>), Reply> {
    match route {
        Route::Envelope => {
            let key = ingest::authenticate(state, trace, head.headers, head.content_length).await?;
            Ok((key, None))
        }
        Route::Native { provider, key_id } => {
            let (key, provider) =
                providers::authenticate(state, trace, provider, key_id, head.content_length)
                    .await?;
            Ok((key, Some(provider)))
        }
    }
}
