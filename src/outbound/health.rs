//! A subscription's health as a state machine: active → failing after a failed attempt,
//! back to active after a success, disabled after `disable_after` consecutive failures or at
//! once when the receiver answers 410 Gone. Pure: the worker applies it and stores the result
//! only when it changed.

use crate::store::SubscriptionStatus;

/// What the subscription's state is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Health {
    pub status: SubscriptionStatus,
    pub consecutive_failures: u32,
    pub disabled_reason: Option<String>,
}

/// What an attempt said about the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Signal {
    Succeeded,
    Failed {
        reason: String,
    },
    /// 410 Gone: the receiver asks to stop.
    Gone,
}

impl Health {
    /// The state after `signal`; `disable_after` is the configured failure threshold. A
    /// disabled subscription stays disabled (only an operator enables it again).
    pub(super) fn after(&self, signal: &Signal, disable_after: u32) -> Health {
        if self.status == SubscriptionStatus::Disabled {
            return self.clone();
        }
        match signal {
            Signal::Succeeded => Health {
                status: SubscriptionStatus::Active,
                consecutive_failures: 0,
                disabled_reason: None,
            },
            Signal::Gone => Health {
                status: SubscriptionStatus::Disabled,
                consecutive_failures: self.consecutive_failures + 1,
                disabled_reason: Some("the receiver answered 410 Gone".into()),
            },
            Signal::Failed { reason } => {
                let failures = self.consecutive_failures + 1;
                if failures >= disable_after {
                    Health {
                        status: SubscriptionStatus::Disabled,
                        consecutive_failures: failures,
                        disabled_reason: Some(format!(
                            "{failures} consecutive failed deliveries; last: {reason}"
                        )),
                    }
                } else {
                    Health {
                        status: SubscriptionStatus::Failing,
                        consecutive_failures: failures,
                        disabled_reason: None,
                    }
                }
            }
        }
    }

    /// Whether this state disables a subscription that `before` left enabled.
    pub(super) fn disables(&self, before: &Health) -> bool {
        self.status == SubscriptionStatus::Disabled && before.status != SubscriptionStatus::Disabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active() -> Health {
        Health {
            status: SubscriptionStatus::Active,
            consecutive_failures: 0,
            disabled_reason: None,
        }
    }

    #[test]
    fn failures_make_it_failing_then_disabled_and_a_success_heals() {
        let failed = Signal::Failed {
            reason: "HTTP 500".into(),
        };
        let once = active().after(&failed, 3);
        assert_eq!(once.status, SubscriptionStatus::Failing);
        assert_eq!(once.after(&Signal::Succeeded, 3), active());
        let thrice = once.after(&failed, 3).after(&failed, 3);
        assert_eq!(thrice.status, SubscriptionStatus::Disabled);
        assert!(thrice.disabled_reason.unwrap().contains("3 consecutive"));
    }

    #[test]
    fn gone_disables_at_once_and_disabled_stays_disabled() {
        let gone = active().after(&Signal::Gone, 10);
        assert!(gone.disables(&active()));
        assert_eq!(gone.after(&Signal::Succeeded, 10), gone);
    }

    #[test]
    fn an_unchanged_state_is_equal() {
        assert_eq!(active().after(&Signal::Succeeded, 10), active());
    }
}
