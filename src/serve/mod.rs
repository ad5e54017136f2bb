//! `reason serve`: the reliability API and its web page over HTTP (axum on tokio).
//!
//! Requests are read and checked on the async side; images go through a bounded queue to the
//! model worker (`worker.rs`), which scores them in dynamic batches. Every error is one JSON
//! shape (`error.rs`), every answer is counted (`metrics.rs`). The server is an instrument
//! like the CLI and the dashboard: it imports the engine and nothing imports it but the CLI.

pub mod error;
pub mod load;
mod metrics;
mod worker;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tower_http::cors::CorsLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use error::{json_errors, ApiError};
use metrics::Metrics;
pub use worker::{Answer, BatchPolicy, Loaded, Loader, Timing};

/// The page at `/`, compiled into the binary (no CDN, no files to deploy).
const PAGE: &str = include_str!("page.html");

/// Longest image name echoed back (the upload's file name, or `?name=`).
const MAX_NAME: usize = 512;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub batch: BatchPolicy,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Longest time from a request's arrival to its answer (reading the upload included).
    pub request_timeout: Duration,
    /// The one origin allowed to call the API from a browser (`--cors`); none by default.
    pub cors: Option<HeaderValue>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            batch: BatchPolicy {
                max_batch: 16,
                wait: Duration::from_millis(5),
                capacity: 64,
            },
            body_limit: 16 << 20,
            request_timeout: Duration::from_secs(30),
            cors: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    queue: Arc<worker::Queue>,
    status: Arc<worker::Status>,
    metrics: Arc<Metrics>,
    /// Most images in one batch request: they must fit in the queue together.
    max_images: usize,
}

impl AppState {
    fn ready(&self) -> Result<(), ApiError> {
        if self.status.ready.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ApiError::unavailable(
                "not_ready",
                "the models are still loading; retry shortly",
            ))
        }
    }

    /// Scores named images; one result per image, in order.
    async fn score(
        &self,
        images: Vec<(String, Bytes)>,
    ) -> Result<Vec<Result<Answer, ApiError>>, ApiError> {
        let mut replies = Vec::with_capacity(images.len());
        let mut jobs = Vec::with_capacity(images.len());
        for (id, bytes) in images {
            let (reply, answer) = oneshot::channel();
            replies.push(answer);
            jobs.push(worker::Job {
                id,
                bytes,
                admitted: Instant::now(),
                reply,
            });
        }
        self.queue.submit(jobs)?;
        let mut out = Vec::with_capacity(replies.len());
        for answer in replies {
            out.push(answer.await.unwrap_or_else(|_| {
                Err(ApiError::internal("the model worker dropped the request"))
            }));
        }
        Ok(out)
    }
}

fn router(state: AppState, config: &ServeConfig) -> Router {
    let mut app = Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/model", get(model))
        .route("/v1/predict", post(predict))
        .route("/v1/predict/batch", post(predict_batch))
        .fallback(not_found)
        .with_state(state.clone())
        // The body limit is tower-http's (it refuses a too-long Content-Length before reading);
        // axum's own 2 MB default would otherwise apply to multipart uploads.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::record,
        ));
    if let Some(origin) = &config.cors {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origin.clone())
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE]),
        );
    }
    app
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    s.ready()?;
    Ok(Json(json!({ "status": "ready" })))
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn model(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    s.ready()?;
    Ok(Json(s.status.model.get().cloned().unwrap_or(Value::Null)))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route {} {} (see GET / for the page; the API is under /v1/)",
            request.method(),
            request.uri().path()
        ),
    )
}

#[derive(serde::Deserialize)]
struct NameQuery {
    /// The image's name for a raw-body upload (it names the answer and seeds MC dropout, as a
    /// file name does for `reason predict`).
    name: Option<String>,
}

/// `POST /v1/predict`: one image, as the raw body or the one file of a multipart form.
async fn predict(
    State(s): State<AppState>,
    query: Query<NameQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    s.ready()?;
    let mut images = read_images(request, query.0.name).await?;
    if images.len() != 1 {
        return Err(ApiError::bad_request(
            "one_image_expected",
            format!(
                "{} images in the request: /v1/predict takes one, /v1/predict/batch several",
                images.len()
            ),
        ));
    }
    let image = images.pop().expect("one image");
    let mut answer = s.score(vec![image]).await?.pop().expect("one answer")?;
    answer.timing.total_ms = ms(started.elapsed());
    Ok(json_text(answer.to_json()))
}

/// `POST /v1/predict/batch`: several images in a multipart form; one entry per image, in
/// order, each the predict object or its own `{"path", "error"}`.
async fn predict_batch(State(s): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    s.ready()?;
    let images = read_images(request, None).await?;
    if images.is_empty() {
        return Err(ApiError::bad_request("no_image", "no image in the request"));
    }
    if images.len() > s.max_images {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_images",
            format!(
                "{} images; at most {} per request",
                images.len(),
                s.max_images
            ),
        ));
    }
    let names: Vec<String> = images.iter().map(|(n, _)| n.clone()).collect();
    let answers = s.score(images).await?;
    let total_ms = ms(started.elapsed());
    let results: Vec<String> = answers
        .into_iter()
        .zip(names)
        .map(|(answer, name)| match answer {
            Ok(mut a) => {
                a.timing.total_ms = total_ms;
                a.to_json()
            }
            Err(e) => {
                s.metrics.error(e.kind);
                let mut v = e.body();
                v["path"] = json!(name);
                v.to_string()
            }
        })
        .collect();
    // Spliced as text, like each answer (see `Answer::prediction`).
    Ok(json_text(format!(
        "{{\"results\":[{}],\"timing\":{}}}",
        results.join(","),
        json!({ "total_ms": total_ms })
    )))
}

fn json_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The images of a request with their names: the files of a multipart form, or the raw body.
async fn read_images(
    request: Request,
    name: Option<String>,
) -> Result<Vec<(String, Bytes)>, ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !multipart {
        // A body that stops early (the client went away) or runs over the limit is a
        // rejection; `json_errors` turns it into the JSON error.
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    kind_of_body_error(rejection.status()),
                    rejection.body_text(),
                )
            })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "no_image",
                "empty body: send the image's bytes, or a multipart form",
            ));
        }
        return Ok(vec![(clean_name(name.as_deref()), bytes)]);
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|r| ApiError::bad_request("bad_multipart", r.body_text()))?;
    let mut images = Vec::new();
    loop {
        let field = form.next_field().await.map_err(|e| {
            ApiError::new(e.status(), kind_of_body_error(e.status()), e.body_text())
        })?;
        let Some(field) = field else { break };
        // Text fields of a form are not images.
        if field.file_name().is_none() && field.name() != Some("image") {
            continue;
        }
        let name = clean_name(field.file_name());
        let bytes = field.bytes().await.map_err(|e| {
            ApiError::new(e.status(), kind_of_body_error(e.status()), e.body_text())
        })?;
        images.push((name, bytes));
    }
    Ok(images)
}

fn kind_of_body_error(status: StatusCode) -> &'static str {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        "body_too_large"
    } else {
        "bad_body"
    }
}

/// The name an image is answered under: the client's, without control characters and capped.
fn clean_name(name: Option<&str>) -> String {
    let name: String = name
        .unwrap_or("upload")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    if name.is_empty() {
        "upload".into()
    } else {
        name
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Serves on `listener` until `shutdown` resolves, then finishes the requests in flight. A
/// model load failure stops the server and is the error returned.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: ServeConfig,
    loader: Loader,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let status = Arc::new(worker::Status::default());
    let (failed_tx, failed_rx) = oneshot::channel();
    let (queue, model_thread) = worker::start(
        loader,
        config.batch,
        metrics.clone(),
        status.clone(),
        failed_tx,
    );
    let state = AppState {
        queue: Arc::new(queue),
        status,
        metrics,
        max_images: config.batch.capacity,
    };
    let app = router(state, &config);
    let failure = Arc::new(Mutex::new(None));
    let stop = {
        let failure = failure.clone();
        async move {
            tokio::select! {
                _ = shutdown => tracing::info!("shutting down: finishing the requests in flight"),
                Ok(e) = failed_rx => { *failure.lock().expect("failure slot") = Some(e); }
            }
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    // The router (and with it the queue's sender) is gone: the worker drains and stops.
    tokio::task::spawn_blocking(move || model_thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the model thread panicked"))?;
    let failed = failure.lock().expect("failure slot").take();
    match failed {
        Some(e) => Err(e.context("loading the models")),
        None => Ok(()),
    }
}

/// Binds `addr` (a loopback address unless the caller chose otherwise).
pub fn bind(addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// A server running on its own thread and runtime (tests, the load benchmark).
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl RunningServer {
    /// Binds `config.addr` (port 0 picks a free one) and serves until [`RunningServer::stop`].
    pub fn start(config: ServeConfig, loader: Loader) -> anyhow::Result<Self> {
        let listener = bind(config.addr)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("reason-serve".into())
            .spawn(move || {
                let runtime = tokio::runtime::Runtime::new()?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    serve(listener, config, loader, async {
                        let _ = stopped.await;
                    })
                    .await
                })
            })?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, finishes the requests in flight, and returns how the server ended.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
