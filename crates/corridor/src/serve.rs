//! `corridor serve`: the switch on one current-thread runtime.

use std::future::Future;

use anyhow::{Context, Result};
use corridor_engine::{Engine, WallClock};
use corridor_net::Switch;

use crate::config::Loaded;

/// Binds the switch described by `config` (inside a tokio runtime).
///
/// # Errors
///
/// A listening address that cannot be bound.
pub async fn bind(config: Loaded) -> Result<Switch> {
    let engine = Engine::new(config.engine, WallClock::now());
    Switch::bind(engine, config.net).await.context("cannot start the switch")
}

/// Runs the switch until `shutdown` completes, then drains and returns.
///
/// # Errors
///
/// As [`bind`].
pub async fn run(config: Loaded, shutdown: impl Future<Output = ()>) -> Result<()> {
    let switch = bind(config).await?;
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
