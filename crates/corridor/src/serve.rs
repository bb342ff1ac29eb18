//! `corridor serve`: the switch on one current-thread runtime.

use std::future::Future;

use anyhow::{Context, Result};
use corridor_config::Loaded;

/// Runs the switch described by `config` until `shutdown` completes, then drains and
/// returns.
///
/// # Errors
///
/// A listening address that cannot be bound.
pub async fn run(config: Loaded, shutdown: impl Future<Output = ()>) -> Result<()> {
    let switch = config.bind().await.context("cannot start the switch")?;
    switch.run(shutdown).await.context("switch failed")?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn signals() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt"),
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
