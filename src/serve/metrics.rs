//! `/metrics` in the Prometheus text format, through the `prometheus` crate: it owns the
//! exposition format (escaping, histogram buckets, `+Inf`) that hand-formatting would have to
//! get right, and costs no extra dependency tree (default features off).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

use super::error::ErrorKind;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    errors: IntCounterVec,
    pub queue_depth: IntGauge,
    pub batch_size: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "reason_http_requests_total",
                "HTTP requests by route and status",
            ),
            &["route", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "reason_http_request_duration_seconds",
                "Time from request to response, by route",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "reason_errors_total",
                "Error answers by kind (per image inside batch answers too)",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let queue_depth = IntGauge::new(
            "reason_queue_depth",
            "Images admitted and waiting for the model worker",
        )
        .expect("valid metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "reason_batch_size",
                "Images per backbone pass formed by the worker",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        )
        .expect("valid metric");
        for m in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(errors.clone()),
            Box::new(queue_depth.clone()),
            Box::new(batch_size.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Self {
            registry,
            requests,
            latency,
            errors,
            queue_depth,
            batch_size,
        }
    }

    pub fn error(&self, kind: &str) {
        self.errors.with_label_values(&[kind]).inc();
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        String::from_utf8(out).unwrap_or_default()
    }
}

/// Middleware: counts every answer by route (the route pattern, never the raw path, so a
/// scanner cannot blow up the label set) and status, its latency, and error kinds.
pub async fn record(
    State(metrics): State<std::sync::Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    metrics
        .requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    metrics
        .latency
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    if let Some(ErrorKind(kind)) = response.extensions().get::<ErrorKind>() {
        metrics.error(kind);
    }
    response
}
