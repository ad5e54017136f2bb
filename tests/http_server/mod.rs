//! A small HTTP file server on 127.0.0.1 for the download tests (no internet needed): serves
//! byte strings at paths, honours or ignores `Range`, can cut a body short, logs requests, and
//! imitates the Hugging Face hub's file endpoint.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use tiny_http::{Header as HttpHeader, Response, Server, StatusCode};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Honour `Range` requests with 206 + Content-Range.
    Ranges,
    /// Ignore `Range` and always send the whole file with 200.
    NoRanges,
    /// Announce the full length but send only this many bytes, then close.
    Truncate(usize),
}

#[derive(Clone)]
struct Route {
    body: Vec<u8>,
    mode: Mode,
    headers: Vec<(String, String)>,
}

/// Requests seen: (path, value of the Range header).
type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;

pub struct TestServer {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    log: Log,
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0"));
        let port = server.server_addr().to_ip().expect("ip address").port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let log: Log = Arc::default();
        let thread = {
            let (server, routes, log) = (server.clone(), routes.clone(), log.clone());
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    let range = request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Range"))
                        .map(|h| h.value.to_string());
                    let path = request.url().to_string();
                    log.lock().unwrap().push((path.clone(), range.clone()));
                    let route = routes.lock().unwrap().get(&path).cloned();
                    let _ = match route {
                        None => request.respond(Response::empty(404)),
                        Some(route) => request.respond(answer(&route, range.as_deref())),
                    };
                }
            })
        };
        Self {
            base: format!("http://127.0.0.1:{port}"),
            routes,
            log,
            server,
            thread: Some(thread),
        }
    }

    pub fn serve(&self, path: &str, body: &[u8], mode: Mode) {
        self.serve_with_headers(path, body, mode, Vec::new());
    }

    pub fn serve_with_headers(
        &self,
        path: &str,
        body: &[u8],
        mode: Mode,
        headers: Vec<(String, String)>,
    ) {
        let route = Route {
            body: body.to_vec(),
            mode,
            headers,
        };
        self.routes.lock().unwrap().insert(path.to_string(), route);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Serves `bytes` as `filename` of hub repository `hub_id`, with the headers hf-hub's sync
    /// client reads: ETag (blob name), X-Repo-Commit (snapshot folder) and, from its
    /// `Range: bytes=0-0` probe, Content-Range (size).
    pub fn serve_hub_file(&self, hub_id: &str, filename: &str, bytes: &[u8]) {
        let sha: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let headers = vec![
            ("ETag".to_string(), format!("\"{sha}\"")),
            (
                "X-Repo-Commit".to_string(),
                "0123456789abcdef0123456789abcdef01234567".to_string(),
            ),
        ];
        let path = format!("/{hub_id}/resolve/main/{filename}");
        self.serve_with_headers(&path, bytes, Mode::Ranges, headers);
    }

    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn header(name: &str, value: &str) -> HttpHeader {
    HttpHeader::from_bytes(name.as_bytes(), value.as_bytes()).unwrap()
}

/// Builds the reply for `route` to a request with the given `Range` header.
fn answer(route: &Route, range: Option<&str>) -> Response<Cursor<Vec<u8>>> {
    let len = route.body.len();
    // "bytes=START-" or "bytes=START-END"
    let range = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .map(|(start, end)| {
            let start: usize = start.parse().unwrap();
            let end: usize = end
                .parse()
                .map_or(len.saturating_sub(1), |e: usize| e.min(len - 1));
            (start, end)
        });
    let (status, body, mut headers) = match (route.mode, range) {
        (Mode::Ranges | Mode::Truncate(_), Some((start, _))) if start >= len => (
            416,
            Vec::new(),
            vec![header("Content-Range", &format!("bytes */{len}"))],
        ),
        (Mode::Ranges | Mode::Truncate(_), Some((start, end))) => (
            206,
            route.body[start..=end].to_vec(),
            vec![header(
                "Content-Range",
                &format!("bytes {start}-{end}/{len}"),
            )],
        ),
        _ => (200, route.body.clone(), Vec::new()),
    };
    headers.extend(route.headers.iter().map(|(k, v)| header(k, v)));
    let announced = body.len();
    let sent = match route.mode {
        Mode::Truncate(n) => body[..n.min(announced)].to_vec(),
        _ => body,
    };
    // Never chunked: the length is announced up front, as file servers do, so a short body
    // is detectably short.
    Response::new(
        StatusCode(status),
        headers,
        Cursor::new(sent),
        Some(announced),
        None,
    )
    .with_chunked_threshold(usize::MAX)
}

/// A port that accepts connections and closes them at once: the network is there but nothing
/// answers. The listener lives as long as the test process, so no other program can take the
/// port. Returns `http://127.0.0.1:PORT`.
pub fn hang_up_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            drop(connection);
        }
    });
    format!("http://127.0.0.1:{port}")
}
