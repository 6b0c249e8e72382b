//! The one loop of the hub's background passes (server polling, the culler): a pass every period until shutdown.

use std::future::Future;
use std::time::Duration;

/// Calls `pass` every `period` (the first call one period from now, a slow pass delaying the next rather than
/// bunching them) until `shutdown` resolves: the loop of the supervisor and the culler.
pub(crate) async fn every<F: Future<Output = ()>>(
    period: Duration,
    shutdown: impl Future<Output = ()>,
    mut pass: impl FnMut() -> F,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => pass().await,
        }
    }
}
