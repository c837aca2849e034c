//! The shared local webhook receiver (`tests/support/receiver.rs`), and what only these tests
//! add to it: waiting through the tests' retry schedule.

use std::time::Duration;

pub use crate::support::receiver::*;

impl Receiver {
    /// Waits until at least `n` events arrived (or 10 s), moving `app`'s retry clock a step of
    /// the tests' schedule forward at every look: a retry comes as soon as the worker recorded
    /// the failure before it, without waiting through the schedule.
    pub async fn wait_retried(&self, app: &hookgate::app::AppState, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.events();
            if got.len() >= n {
                return got;
            }
            app.advance_retry_clock(crate::helpers::RETRY_STEP);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.events()
    }
}
