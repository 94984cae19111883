//! HTTP: the router, the JSON body rules, the same-origin rule for the API, and the
//! security headers every answer carries.

pub mod api;
pub mod error;
mod pages;
pub mod qr;
pub mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::App;
use error::error_response;

/// The whole application's routes.
pub fn router(app: App) -> Router {
    let router = Router::new()
        .nest("/api/v1", api::routes())
        .merge(pages::routes())
        .route("/api/openapi.json", get(api::openapi))
        .layer(middleware::from_fn_with_state(app.clone(), same_origin_only))
        .layer(middleware::from_fn_with_state(app.clone(), known_host_only))
        // Load balancers check health by address, whatever the Host.
        .route("/healthz", get(|| async { "ok" }));
    // Over TLS, browsers are told to come back over TLS only.
    let router = match app.config.secure_cookies() {
        true => router.layer(header_layer(header::STRICT_TRANSPORT_SECURITY, "max-age=63072000")),
        false => router,
    };
    router
        .layer(header_layer(header::CACHE_CONTROL, "no-store"))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(header_layer(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .layer(header_layer(header::REFERRER_POLICY, "no-referrer"))
        .layer(header_layer(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header_layer(header::X_FRAME_OPTIONS, "DENY"))
        .with_state(app)
}

/// No inline script or style, nothing from elsewhere, never in a frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; img-src 'self' data:; style-src 'self'; \
    script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn header_layer(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

/// Serves until `shutdown` resolves, then lets the requests under way finish. A client gets
/// `http_read_timeout_secs` to send its headers (and as long again for its body), and at
/// most `http_max_connections` are served at once: a slow or stalled client cannot hold the
/// server's connections.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt;

    let read_timeout = std::time::Duration::from_secs(app.config.http_read_timeout_secs);
    let slots = Arc::new(Semaphore::new(app.config.http_max_connections));
    let router = router(app).layer(tower_http::timeout::RequestBodyTimeoutLayer::new(read_timeout));
    let mut connections = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    connections
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, remote, slot)) = accepted else {
            continue;
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(
            connections
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            // A client that goes away or times out is its own business, not an error.
            let _ = connection.await;
            drop(slot);
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// The next connection, once a slot is free; `None` when accepting failed (logged).
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(tokio::net::TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, remote)) => Some((stream, remote, slot)),
        Err(error) => {
            tracing::warn!(%error, "could not accept a connection");
            // Out of file descriptors, say: give the system a moment.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            None
        }
    }
}

/// Without `public_url`, answers only requests addressed to a loopback name or to the
/// address Twofold listens on: a page on another site whose name was made to resolve to this
/// server (DNS rebinding) gets nothing. With `public_url`, the reverse proxy in front decides.
async fn known_host_only(
    axum::extract::State(app): axum::extract::State<App>,
    request: Request,
    next: Next,
) -> Response {
    if app.config.public_url.is_some() {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|host| url::Url::parse(&format!("http://{host}")).ok())
        .and_then(|url| url.host().map(|h| h.to_owned()));
    let known = match host {
        None => request.headers().get(header::HOST).is_none(),
        Some(url::Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || std::net::IpAddr::V4(ip) == app.config.listen.ip(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || std::net::IpAddr::V6(ip) == app.config.listen.ip(),
    };
    if !known {
        tracing::warn!(host = ?request.headers().get(header::HOST), "refused a request for another host name");
        return error_response(
            StatusCode::MISDIRECTED_REQUEST,
            "unknown_host",
            "This server answers to its own address only. Set public_url to the address users reach it by.".into(),
        );
    }
    next.run(request).await
}

/// Refuses state-changing calls (API and forms) made by another site's page (CSRF): browsers send
/// `Sec-Fetch-Site` (and `Origin`) with every such request. Clients that are not browsers
/// send neither and are not affected.
async fn same_origin_only(
    axum::extract::State(app): axum::extract::State<App>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let fetch_site = headers
        .get(HeaderName::from_static("sec-fetch-site"))
        .and_then(|v| v.to_str().ok());
    let cross_site = match fetch_site {
        Some(site) => !matches!(site, "same-origin" | "none"),
        None => match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            None => false,
            Some(origin) => !origin_allowed(&app, origin, headers.get(header::HOST).and_then(|v| v.to_str().ok())),
        },
    };
    if cross_site {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "refused a cross-origin API call");
        return error_response(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "Cross-origin requests are not allowed.".into(),
        );
    }
    next.run(request).await
}

fn origin_allowed(app: &App, origin: &str, host: Option<&str>) -> bool {
    let Ok(origin) = url::Url::parse(origin) else {
        return false;
    };
    let origin = origin.origin();
    if let Some(public) = app.config.public_url.as_deref().and_then(|u| url::Url::parse(u).ok()) {
        return origin == public.origin();
    }
    let Some(host) = host else { return false };
    ["http", "https"]
        .iter()
        .filter_map(|scheme| url::Url::parse(&format!("{scheme}://{host}")).ok())
        .any(|candidate| candidate.origin() == origin)
}

/// Whether the body was cut off by the read timeout (see `serve`).
fn body_timed_out(rejection: &axum::extract::rejection::JsonRejection) -> bool {
    let mut source = std::error::Error::source(rejection);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// A JSON body: only `application/json` is accepted; malformed bodies are a 400 with the
/// reason, never a 500.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(error_response(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as application/json.".into(),
            ));
        }
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) if body_timed_out(&rejection) => Err(error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "The request's body did not arrive in time.".into(),
            )),
            Err(rejection) => Err(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                rejection.body_text(),
            )),
        }
    }
}

/// A JSON body that may be left out entirely (no content type, no content): then `T`'s
/// default. Anything sent is held to [`ApiJson`]'s rules.
pub struct ApiJsonOrEmpty<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for ApiJsonOrEmpty<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let headers = request.headers();
        let empty = !headers.contains_key(header::CONTENT_TYPE)
            && headers
                .get(header::CONTENT_LENGTH)
                .is_none_or(|length| length.as_bytes() == b"0");
        if empty {
            return Ok(ApiJsonOrEmpty(T::default()));
        }
        ApiJson::from_request(request, state)
            .await
            .map(|ApiJson(value)| ApiJsonOrEmpty(value))
    }
}

/// The client's IP address (see `session::remote_addr`), for the audit log.
pub struct Remote(pub Option<String>);

impl FromRequestParts<App> for Remote {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, app: &App) -> Result<Self, Self::Rejection> {
        Ok(Remote(session::remote_addr(app, parts)))
    }
}
