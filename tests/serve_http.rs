//! `reason serve` over real HTTP on an ephemeral loopback port: every endpoint, every error
//! the API promises, the same JSON as `reason predict --json`, readiness, load shedding and
//! graceful shutdown. Seeded random weights and generated images, so it runs on every clone;
//! `serve_real.rs` repeats the JSON comparison on the real model and data.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::serve::{self as s, Models};
use reason::serve::load::{abandon_upload, bomb_png, raw};
use reason::serve::{RunningServer, ServeConfig};
use serde_json::Value;

/// One trained synthetic model for the whole file.
fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(s::synthetic_models)
}

/// The shared server: default settings but a 1 MiB body limit.
fn server() -> &'static RunningServer {
    static SERVER: OnceLock<RunningServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        s::start(
            ServeConfig {
                body_limit: 1 << 20,
                ..Default::default()
            },
            s::loader(models()),
        )
    })
}

/// Status, body and content type of a GET on the shared server.
fn get(path: &str) -> (u16, String, String) {
    let response = match ureq::get(&server().url(path)).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{path}: {e}"),
    };
    let status = response.status();
    let content_type = response.content_type().to_string();
    (status, response.into_string().unwrap(), content_type)
}

fn image_bytes(i: usize) -> (String, Vec<u8>) {
    let path = &models().images[i];
    (
        path.file_name().unwrap().to_string_lossy().into_owned(),
        std::fs::read(path).unwrap(),
    )
}

fn error_kind(v: &Value) -> &str {
    v["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("no error kind in {v}"))
}

#[test]
fn health_readiness_model_metrics_and_page_answer() {
    let (status, body, _) = get("/healthz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body, _) = get("/readyz");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ready"}"#));

    let (status, body, _) = get("/v1/model");
    assert_eq!(status, 200);
    let model: Value = serde_json::from_str(&body).unwrap();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(models().artifacts.join("manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(model["backbone"], "tf_efficientnet_lite0");
    assert_eq!(
        model["weights"]["sha256"].as_str().unwrap(),
        reason::model::backbone::weights::sha256_file(&models().weights).unwrap()
    );
    assert_eq!(model["classes"].as_array().unwrap().len(), 3);
    assert_eq!(model["classes"][0]["class"], manifest["classes"][0]);
    assert_eq!(model["layout"], manifest["layout"]);
    let threshold = |v: &Value| v.as_f64().unwrap() as f32;
    assert_eq!(
        threshold(&model["threshold"]),
        threshold(&manifest["calibration"]["threshold"])
    );
    assert!(model["certificate"]["statement"]
        .as_str()
        .unwrap()
        .contains("P(correct)"));
    assert_eq!(model["serving"]["max_batch"], 16);

    let (status, page, content_type) = get("/");
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/html"));
    assert!(page.contains("<title>REASON"));
    // Self-contained: nothing loaded from elsewhere.
    for external in ["src=\"http", "href=\"http", "@import", "src=\"//"] {
        assert!(!page.contains(external), "the page loads {external}…");
    }

    // One request of each kind, then the metrics count them.
    let (name, bytes) = image_bytes(0);
    assert_eq!(s::post_raw(server(), &name, &bytes).0, 200);
    assert_eq!(s::post_raw(server(), "x.png", b"not an image").0, 422);
    let (status, text, content_type) = get("/metrics");
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain"));
    for line in [
        "reason_http_requests_total{route=\"/v1/predict\",status=\"200\"}",
        "reason_http_requests_total{route=\"/v1/predict\",status=\"422\"}",
        "reason_http_request_duration_seconds_bucket{route=\"/v1/predict\",le=\"+Inf\"}",
        "reason_errors_total{kind=\"not_an_image\"}",
        "reason_batch_size_bucket{le=\"1\"}",
        "reason_queue_depth",
    ] {
        assert!(text.contains(line), "/metrics lacks {line}:\n{text}");
    }
}

/// Every value of `a` equals `b`'s, numbers to a relative `tol`; the paths say where not.
fn assert_same(a: &Value, b: &Value, tol: f64, at: &str) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<_> = x.keys().collect();
            let ky: Vec<_> = y.keys().collect();
            assert_eq!(kx, ky, "keys differ at {at}");
            for (k, v) in x {
                assert_same(v, &y[k], tol, &format!("{at}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "lengths differ at {at}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                assert_same(v, w, tol, &format!("{at}[{i}]"));
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= tol * x.abs().max(y.abs()).max(1e-3),
                "{at}: {x} vs {y}"
            );
        }
        _ => assert_eq!(a, b, "at {at}"),
    }
}

#[test]
fn predict_answers_exactly_what_predict_json_prints_raw_or_multipart() {
    for i in [0, 3] {
        let path = &models().images[i];
        let (name, bytes) = image_bytes(i);
        let cli = s::predict_json(models(), path);
        let (status, raw) = s::post_raw(server(), &name, &bytes);
        assert_eq!(status, 200, "{raw}");
        for key in [
            "queue_ms",
            "decode_ms",
            "model_ms",
            "total_ms",
            "batch_size",
        ] {
            assert!(
                raw["timing"][key].is_number(),
                "timing.{key} missing: {raw}"
            );
        }
        // One image, one batch of one, as `predict` on one file: the same numbers, bit for bit.
        assert_same(&s::without_timing(raw.clone()), &cli, 0.0, "raw");
        assert!(cli["reliability"]["meta"].as_object().unwrap().len() > 40);

        let (status, form) =
            s::post_multipart(server(), "/v1/predict", &[("image", &name, &bytes)]);
        assert_eq!(status, 200, "{form}");
        assert_same(&s::without_timing(form), &cli, 0.0, "multipart");
    }
}

#[test]
fn batch_answers_each_image_in_order_with_its_own_errors() {
    let (n0, b0) = image_bytes(0);
    let (n1, b1) = image_bytes(1);
    let (status, v) = s::post_multipart(
        server(),
        "/v1/predict/batch",
        &[
            ("image", &n0, &b0),
            ("image", "junk.jpg", b"junk"),
            ("image", &n1, &b1),
        ],
    );
    assert_eq!(status, 200, "{v}");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(v["timing"]["total_ms"].is_number());
    assert_eq!(results[0]["path"], n0.as_str());
    assert_eq!(results[2]["path"], n1.as_str());
    assert_eq!(error_kind(&results[1]), "not_an_image");
    assert_eq!(results[1]["path"], "junk.jpg");
    // Batched with others, an image scores as it does alone (to float rounding: the batch
    // shares GEMMs).
    for (i, r) in [(0, &results[0]), (1, &results[2])] {
        let (name, bytes) = image_bytes(i);
        let (_, alone) = s::post_raw(server(), &name, &bytes);
        assert_same(
            &s::without_timing(r.clone()),
            &s::without_timing(alone),
            1e-3,
            "batch",
        );
    }
    let (status, v) = s::post_multipart(server(), "/v1/predict/batch", &[]);
    assert_eq!((status, error_kind(&v)), (400, "no_image"));
}

#[test]
fn bad_requests_get_json_errors_with_the_right_status() {
    let srv = server();
    // Not an image, an image bomb, a broken image.
    let (status, v) = s::post_raw(srv, "a.txt", b"hello, this is text");
    assert_eq!((status, error_kind(&v)), (422, "not_an_image"));
    let (status, v) = s::post_raw(srv, "bomb.png", &bomb_png());
    assert_eq!((status, error_kind(&v)), (422, "image_too_large"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("decompression bomb"));
    let (_, png) = image_bytes(0);
    let (status, v) = s::post_raw(srv, "cut.png", &png[..png.len() / 2]);
    assert_eq!((status, error_kind(&v)), (422, "undecodable_image"), "{v}");
    // Empty body.
    let (status, v) = s::post_raw(srv, "none", b"");
    assert_eq!((status, error_kind(&v)), (400, "no_image"));
    // Over the body limit (1 MiB here), raw or multipart: refused from its Content-Length
    // before the body is read. (Sent as headers alone: a client still writing a body the
    // server refused can see its connection reset before it reads the answer.)
    for path in ["/v1/predict", "/v1/predict/batch"] {
        let mut stream = TcpStream::connect(srv.addr).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            (1 << 20) + 1
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer.contains(r#"{"error":{"kind":"body_too_large","#),
            "{answer}"
        );
    }
    assert_eq!(
        raw(srv.addr, "POST", "/v1/predict", b"", Some(50 << 20)),
        Some(413)
    );
    // Two images where one is expected.
    let (status, v) = s::post_multipart(
        srv,
        "/v1/predict",
        &[("image", "a", &png), ("image", "b", &png)],
    );
    assert_eq!((status, error_kind(&v)), (400, "one_image_expected"));
    // Wrong path, wrong method: JSON too, and 405 says what is allowed.
    let (status, v) = s::read(ureq::get(&srv.url("/v2/nothing")).call());
    assert_eq!((status, error_kind(&v)), (404, "not_found"));
    let answer = ureq::get(&srv.url("/v1/predict")).call();
    let Err(ureq::Error::Status(405, response)) = answer else {
        panic!("GET /v1/predict: {answer:?}")
    };
    assert_eq!(response.header("allow"), Some("POST"));
    let v: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    assert_eq!(error_kind(&v), "method_not_allowed");
    let (status, v) = s::read(ureq::request("DELETE", &srv.url("/healthz")).call());
    assert_eq!((status, error_kind(&v)), (405, "method_not_allowed"));
    // No CORS unless asked for.
    let r = ureq::get(&srv.url("/healthz"))
        .set("Origin", "http://evil.example")
        .call()
        .unwrap();
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn a_client_that_hangs_up_mid_upload_does_not_hurt_the_server() {
    for _ in 0..5 {
        abandon_upload(server().addr);
    }
    std::thread::sleep(Duration::from_millis(200));
    let (name, bytes) = image_bytes(0);
    assert_eq!(s::post_raw(server(), &name, &bytes).0, 200);
    assert_eq!(
        ureq::get(&server().url("/healthz"))
            .call()
            .unwrap()
            .status(),
        200
    );
}

/// A second server with short limits: a slow upload times out (408), a full queue sheds
/// load (503 + Retry-After), and CORS is on for one origin.
#[test]
fn slow_uploads_time_out_a_full_queue_answers_503_and_cors_is_opt_in() {
    let srv = s::start(
        ServeConfig {
            request_timeout: Duration::from_secs(2),
            cors: Some("http://notebook.example".parse().unwrap()),
            batch: reason::serve::BatchPolicy {
                max_batch: 1,
                wait: Duration::from_millis(1),
                capacity: 2,
            },
            ..Default::default()
        },
        s::loader(models()),
    );
    // Headers promise 1000 bytes, 10 come, the client waits: 408 after the timeout.
    let started = Instant::now();
    let mut stream = TcpStream::connect(srv.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""kind":"request_timeout""#), "{answer}");
    assert!(started.elapsed() >= Duration::from_secs(2));

    // 16 clients at once against room for 2 waiting images: some are turned away at once.
    let (name, bytes) = image_bytes(0);
    let statuses: Vec<(u16, Option<String>, Value)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..16)
            .map(|_| {
                scope.spawn(|| {
                    let answer = ureq::post(&srv.url("/v1/predict"))
                        .query("name", &name)
                        .send_bytes(&bytes);
                    let r = match answer {
                        Ok(r) => r,
                        Err(ureq::Error::Status(_, r)) => r,
                        Err(e) => panic!("{e}"),
                    };
                    let retry = r.header("retry-after").map(str::to_string);
                    (
                        r.status(),
                        retry,
                        serde_json::from_str(&r.into_string().unwrap()).unwrap(),
                    )
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let shed: Vec<_> = statuses.iter().filter(|(st, _, _)| *st == 503).collect();
    assert!(!shed.is_empty(), "no request was shed: {statuses:?}");
    assert!(statuses.iter().all(|(st, _, _)| *st == 200 || *st == 503));
    for (_, retry, v) in shed {
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(error_kind(v), "queue_full");
    }
    // A batch larger than the queue can never fit: 413, not 503.
    let (status, v) = s::post_multipart(
        &srv,
        "/v1/predict/batch",
        &[
            ("image", "a", &bytes),
            ("image", "b", &bytes),
            ("image", "c", &bytes),
        ],
    );
    assert_eq!((status, error_kind(&v)), (413, "too_many_images"));

    let r = ureq::get(&srv.url("/healthz"))
        .set("Origin", "http://notebook.example")
        .call()
        .unwrap();
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://notebook.example")
    );
    srv.stop().unwrap();
}

#[test]
fn not_ready_until_loaded_then_graceful_shutdown_finishes_requests_in_flight() {
    let (release, wait) = mpsc::channel::<()>();
    let inner = s::loader(models());
    let srv = RunningServer::start(
        ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        Box::new(move || {
            wait.recv().unwrap();
            inner()
        }),
    )
    .unwrap();
    let (status, v) = s::read(ureq::get(&srv.url("/readyz")).call());
    assert_eq!((status, error_kind(&v)), (503, "not_ready"));
    assert_eq!(
        ureq::get(&srv.url("/healthz")).call().unwrap().status(),
        200
    );
    let (name, bytes) = image_bytes(0);
    let (status, v) = s::post_raw(&srv, &name, &bytes);
    assert_eq!((status, error_kind(&v)), (503, "not_ready"));
    release.send(()).unwrap();
    s::wait_ready(&srv);

    // A batch in flight when the server is told to stop still gets its answer.
    let parts: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| image_bytes(i % models().images.len()))
        .collect();
    let form: Vec<(&str, &str, &[u8])> = parts
        .iter()
        .map(|(n, b)| ("image", n.as_str(), b.as_slice()))
        .collect();
    let (content_type, body) = s::multipart(&form);
    let url = srv.url("/v1/predict/batch");
    let in_flight = std::thread::spawn(move || {
        s::read(
            ureq::post(&url)
                .set("Content-Type", &content_type)
                .send_bytes(&body),
        )
    });
    std::thread::sleep(Duration::from_millis(150));
    let addr = srv.addr;
    srv.stop().unwrap();
    let (status, v) = in_flight.join().unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 6);
    assert!(v["results"][5]["reliability"]["p_correct"].is_number());
    // And then nothing listens there.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn a_model_that_fails_to_load_stops_the_server_with_the_error() {
    let srv = RunningServer::start(
        ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        },
        Box::new(|| anyhow::bail!("no artifacts in /nowhere")),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(srv.addr).is_ok() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let error = format!("{:#}", srv.stop().unwrap_err());
    assert!(error.contains("no artifacts in /nowhere"), "{error}");
}

/// The binary: `reason serve` says where it listens (and that a non-loopback address is one),
/// answers, and stops cleanly on SIGTERM.
#[test]
fn the_binary_serves_and_stops_on_sigterm() {
    use std::io::BufRead;
    let cache = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reason"))
        .args([
            "serve",
            "--addr",
            "0.0.0.0:0",
            "--device",
            "cpu",
            "--artifacts",
        ])
        .arg(&models().artifacts)
        .arg("--weights")
        .arg(&models().weights)
        .env("REASON_CACHE", cache.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("NOT loopback"), "{line}");
    let port: u16 = line
        .split("http://0.0.0.0:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line}"));
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while ureq::get(&format!("{url}/readyz")).call().is_err() {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (name, bytes) = image_bytes(0);
    let answer = ureq::post(&format!("{url}/v1/predict"))
        .query("name", &name)
        .send_bytes(&bytes)
        .unwrap();
    assert_eq!(answer.status(), 200);
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "exit {status}: {rest}");
    assert!(rest.contains("stopped"), "{rest}");
}
