//! Starting the hub: the router over every route (`/v1`, microsites, dashboard), serving it
//! over HTTP or HTTPS through the connection server (`server`) beside the analysis worker, and
//! the local servers tests start.

use std::future::Future;
use std::sync::Arc;

use crate::auth;
use crate::config::HubConfig;
use crate::dashboard;
use crate::error::{Error, Result};
use crate::front;
use crate::http;
use crate::hub::Hub;
use crate::insights;
use crate::microsite;
use crate::remote;
use crate::reqlog;
use crate::server;
use crate::tls;

impl Hub {
    /// Every `/v1` route, the microsite pages (`/m/…`), remote sessions (`/r/…`, ADR 0023)
    /// and the dashboard (`/dashboard`).
    /// The dashboard needs an operator (bearer operator token or a login session, `auth`).
    pub fn router(&self) -> axum::Router {
        let insights: Arc<dyn dashboard::DashboardSource> = Arc::new(insights::HubInsights::new(self.clone()));
        self.with_client(http::router(self.clone()))
            .merge(self.microsite_router())
            .merge(self.with_client(remote::router(self.clone())))
            .merge(self.dashboard_router(insights))
            .layer(axum::middleware::from_fn(reqlog::request_log))
    }

    /// The follow-up microsites (`/m/…`) alone (the browser test's fixture serves them beside
    /// its dashboard).
    pub fn microsite_router(&self) -> axum::Router {
        self.with_client(microsite::router(self.clone()))
    }

    /// `routes` behind the client middleware (client address, bad-credential brake, default CSP).
    fn with_client(&self, routes: axum::Router) -> axum::Router {
        routes.layer(axum::middleware::from_fn_with_state(self.clone(), front::middleware))
    }

    /// The dashboard over any source, behind this hub's operator login (`/dashboard/login`,
    /// bearer operator tokens or a session cookie). The browser test's fixture uses it.
    pub fn dashboard_router(&self, source: Arc<dyn dashboard::DashboardSource>) -> axum::Router {
        self.with_client(
            dashboard::router(source)
                .merge(auth::login_router(self.clone()))
                .layer(axum::middleware::from_fn_with_state(self.clone(), auth::dashboard_gate)),
        )
    }

    /// Serves plain HTTP until `shutdown` completes, then finishes in-flight requests.
    /// Meant for loopback (or behind a TLS-terminating proxy): see [`Hub::serve_tls`].
    /// Connections are bounded by [`Hub::server_limits`] (timeouts, connection caps).
    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        self.serve_on(listener, None, shutdown).await
    }

    /// Serves HTTPS (HTTP/1.1 over rustls, `tls` from [`tls::TlsFiles::load`]) until
    /// `shutdown` completes, then finishes in-flight requests. Same routes, limits and
    /// background analysis as [`Hub::serve`], plus the TLS handshake timeout.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: Arc<tls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        self.serve_on(listener, Some(tokio_rustls::TlsAcceptor::from(tls)), shutdown).await
    }

    async fn serve_on(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
        let limits = self.server_limits();
        tracing::info!(%addr, ?limits, "hub listening");
        let worker = tokio::spawn(self.clone().analysis_worker());
        let retention = tokio::spawn(self.clone().retention_worker());
        server::serve(listener, tls, self.router(), limits, shutdown).await;
        worker.abort();
        retention.abort();
        Ok(())
    }
}

/// The `/v1` routes alone (the dashboard's tests merge their own dashboard into them).
#[cfg(test)]
pub(crate) fn http_router_for_tests(hub: &Hub) -> axum::Router {
    http::router(hub.clone())
}

/// Test helper: a hub on 127.0.0.1:0 in a background tokio task; returns its base URL
/// (`"http://127.0.0.1:PORT"`), the hub, and the task (abort it to stop the server).
pub async fn spawn_local(config: HubConfig) -> Result<(String, Hub, tokio::task::JoinHandle<()>)> {
    let hub = Hub::open(config)?;
    let (url, task) = serve_local(hub.clone()).await?;
    Ok((url, hub, task))
}

/// Test helper: serves `hub` on 127.0.0.1:0 in a background tokio task; returns its base URL
/// and the task.
pub async fn serve_local(hub: Hub) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::Internal(format!("bind 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = hub.serve(listener, std::future::pending()).await {
            tracing::error!(error = %e, "local hub stopped");
        }
    });
    Ok((format!("http://{addr}"), task))
}

/// Test helper: serves `hub` over HTTPS (`tls` from [`tls::TlsFiles::load`]) on 127.0.0.1:0
/// in a background tokio task; returns its base URL (`"https://127.0.0.1:PORT"`) and the task.
pub async fn serve_local_tls(hub: Hub, tls: Arc<tls::ServerConfig>) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| Error::Internal(format!("bind 127.0.0.1:0: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Internal(format!("listener: {e}")))?;
    let task = tokio::spawn(async move {
        if let Err(e) = hub.serve_tls(listener, tls, std::future::pending()).await {
            tracing::error!(error = %e, "local hub stopped");
        }
    });
    Ok((format!("https://{addr}"), task))
}
