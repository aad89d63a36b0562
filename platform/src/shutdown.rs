//! Graceful shutdown: one cancellation token that every task holds. On
//! SIGTERM or SIGINT the token is cancelled; tasks stop taking work, finish
//! what they hold, commit, and return.

use tokio_util::sync::CancellationToken;

/// Cancels the returned token on SIGTERM or SIGINT.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown signal received; draining");
        trigger.cancel();
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs one life of a processing loop after another until it returns `Ok`
/// or `shutdown` is cancelled. A failed life is logged and followed, after a
/// backoff (0.5 s doubling to 10 s), by a new one, which recreates every
/// client and reloads state: the way to treat fatal client errors.
pub async fn supervise<F, Fut>(loop_name: &str, shutdown: &CancellationToken, mut life: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = std::time::Duration::from_millis(500);
    while !shutdown.is_cancelled() {
        match life().await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), retry_in = ?backoff, "{loop_name} loop failed; restarting it");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
        }
    }
}
