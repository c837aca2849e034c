//! Receiving request bodies, bounded three ways: in size (the limit is enforced while
//! streaming, not only from Content-Length), in time (a deadline for the whole body), and
//! together (a budget of body bytes in flight across all requests). Once shutdown begins, a
//! body that stops arriving is cut rather than allowed to hold the grace period.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::request::{BodyError, BodyReader, LimitedBuffer, TooLarge};

/// How long a body may pause once shutdown has begun before it is cut.
const STALL_AT_SHUTDOWN: Duration = Duration::from_secs(1);

/// How long a request waits for body budget before it is refused with 503.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// The budget is counted in KiB so that one reservation always fits the semaphore's `u32`.
const BUDGET_UNIT: usize = 1024;

/// When the body must be complete, and the error code to answer if it is not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub code: &'static str,
}

impl Deadline {
    /// The earlier of the two; ties go to `self`.
    pub(super) fn min(self, other: Deadline) -> Deadline {
        if other.at < self.at { other } else { self }
    }
}

/// Resolves once shutdown has begun (never, while it has not).
#[derive(Clone)]
pub(crate) struct ShutdownSignal(watch::Receiver<bool>);

impl ShutdownSignal {
    pub(super) fn new(receiver: watch::Receiver<bool>) -> ShutdownSignal {
        ShutdownSignal(receiver)
    }

    pub(super) async fn begun(&self) {
        let mut receiver = self.0.clone();
        if receiver.wait_for(|begun| *begun).await.is_err() {
            // The sender is gone only when the server is gone.
            std::future::pending::<()>().await;
        }
    }

    /// Resolves [`STALL_AT_SHUTDOWN`] after shutdown began (or after this call, if later).
    async fn stall_cut(&self) {
        self.begun().await;
        tokio::time::sleep(STALL_AT_SHUTDOWN).await;
    }
}

/// The budget of body bytes in flight, shared by every request.
#[derive(Clone)]
pub(crate) struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    pub(super) fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(Semaphore::new(bytes.div_ceil(BUDGET_UNIT))))
    }

    /// Reserves room for a body of `bytes`, waiting briefly (never past `deadline`) when the
    /// budget is used up. The reservation is released when the permit is dropped.
    async fn reserve(
        &self,
        bytes: usize,
        deadline: Deadline,
    ) -> Result<Option<OwnedSemaphorePermit>, BodyError> {
        let units = bytes.div_ceil(BUDGET_UNIT);
        if units == 0 {
            return Ok(None);
        }
        let units = u32::try_from(units).map_err(|_| BodyError::TooLarge)?;
        let wait_until = (Instant::now() + BUDGET_WAIT).min(deadline.at);
        match tokio::time::timeout_at(wait_until, self.0.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_closed)) => Err(BodyError::ShuttingDown),
            Err(_) if Instant::now() >= deadline.at => Err(BodyError::Timeout(deadline.code)),
            Err(_) => Err(BodyError::Busy),
        }
    }
}

/// A received body and its share of the budget, held while the request is handled.
struct Received {
    bytes: Bytes,
    reservation: Option<OwnedSemaphorePermit>,
}

/// Reserves budget for the body (its declared length, or `limit` when it declares none), then
/// reads it whole before `deadline`.
async fn receive(
    body: &mut Incoming,
    limit: usize,
    deadline: Deadline,
    budget: &BodyBudget,
    shutdown: &ShutdownSignal,
) -> Result<Received, BodyError> {
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let reserve = declared.map_or(limit, |n| n as usize);
    let reservation = budget.reserve(reserve, deadline).await?;
    let mut buf = LimitedBuffer::new(limit);
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            () = tokio::time::sleep_until(deadline.at) => return Err(BodyError::Timeout(deadline.code)),
            // Recreated for every frame: a body that keeps arriving is not cut.
            () = shutdown.stall_cut() => return Err(BodyError::ShuttingDown),
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| BodyError::Io(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            buf.push(&data).map_err(|TooLarge| BodyError::TooLarge)?;
        }
    }
    Ok(Received {
        bytes: buf.finish(),
        reservation,
    })
}

/// A hyper body as the handlers below read it: within the size they ask for, the body deadline,
/// the request deadline, the shared budget and shutdown.
pub(crate) struct HyperBody {
    incoming: Incoming,
    budget: BodyBudget,
    shutdown: ShutdownSignal,
    body_timeout: Duration,
    request: Deadline,
    /// The body's share of the budget, held until the request is answered.
    reservation: Option<OwnedSemaphorePermit>,
}

impl HyperBody {
    pub(super) fn new(
        incoming: Incoming,
        budget: BodyBudget,
        shutdown: ShutdownSignal,
        body_timeout: Duration,
        request_timeout: Duration,
    ) -> HyperBody {
        HyperBody {
            incoming,
            budget,
            shutdown,
            body_timeout,
            request: Deadline {
                at: Instant::now() + request_timeout,
                code: "request_timeout",
            },
            reservation: None,
        }
    }

    /// Keeps reading what the client still sends after an early answer (see
    /// [`drain_in_background`]).
    pub(super) fn drain(self, limit: usize) {
        drain_in_background(self.incoming, limit, self.shutdown);
    }
}

impl BodyReader for HyperBody {
    async fn read(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        let deadline = Deadline {
            at: Instant::now() + self.body_timeout,
            code: "body_timeout",
        }
        .min(self.request);
        let received = receive(
            &mut self.incoming,
            limit,
            deadline,
            &self.budget,
            &self.shutdown,
        )
        .await?;
        self.reservation = received.reservation;
        Ok(received.bytes)
    }

    fn deadline(&self) -> Instant {
        self.request.at
    }
}

/// Keeps reading (and discarding) what the client is still sending while the early answer is
/// written, so that it can read that answer instead of getting a connection reset. Bounded in
/// bytes and time so that a client cannot hold the connection open forever, and stopped when
/// shutdown begins.
fn drain_in_background(mut body: Incoming, limit: usize, shutdown: ShutdownSignal) {
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
        tokio::select! {
            _ = tokio::time::timeout(Duration::from_secs(10), drain) => {}
            () = shutdown.begun() => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budget_waits_briefly_then_refuses_and_frees_on_drop() {
        let budget = BodyBudget::new(4 * BUDGET_UNIT);
        let far = Deadline {
            at: Instant::now() + Duration::from_secs(30),
            code: "request_timeout",
        };
        let first = budget.reserve(3 * BUDGET_UNIT, far).await.unwrap();
        assert!(first.is_some());
        assert!(matches!(
            budget.reserve(2 * BUDGET_UNIT, far).await,
            Err(BodyError::Busy)
        ));
        let near = Deadline {
            at: Instant::now() + Duration::from_millis(50),
            code: "request_timeout",
        };
        assert!(matches!(
            budget.reserve(2 * BUDGET_UNIT, near).await,
            Err(BodyError::Timeout("request_timeout"))
        ));
        drop(first);
        assert!(
            budget
                .reserve(4 * BUDGET_UNIT, far)
                .await
                .unwrap()
                .is_some()
        );
        assert!(budget.reserve(0, far).await.unwrap().is_none());
    }
}
