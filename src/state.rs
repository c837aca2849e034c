//! The state every request handler shares, behind an `Arc`: built at start-up by
//! [`crate::app`], handed down by the HTTP edge to the pipeline, the REST API and the console.

use std::sync::Arc;

use crate::config::Config;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::ratelimit::RateLimits;
use crate::store::Store;
use crate::validate::Schemas;
use crate::verify::VerifySettings;

/// Everything a request handler needs.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub keys: Keys,
    pub(crate) limits: RateLimits,
    pub(crate) schemas: Arc<Schemas>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) outbound: Arc<Outbound>,
    pub(crate) verify_settings: VerifySettings,
    /// Signed-in sessions of the console at `/admin`.
    pub(crate) console: crate::admin::Sessions,
    /// Native provider intake's loaded mappings and the clock its signatures are held to.
    pub providers: crate::providers::Providers,
}

impl AppState {
    /// Moves the retry queue's clock forward by `by` and wakes the delivery worker: what tests
    /// do instead of sleeping through a retry schedule.
    pub fn advance_retry_clock(&self, by: std::time::Duration) {
        self.outbound.retry_clock.advance(by);
        self.outbound.wake.notify_one();
    }
}
