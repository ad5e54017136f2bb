//! The load benchmark and soak behind `reason serve-bench`: concurrent clients posting real
//! images to a server on loopback, bounded in requests and time, optionally with hostile
//! requests mixed in. Plain threads and blocking HTTP (ureq), so the clients measure the
//! server and not an async client's scheduling.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub clients: usize,
    /// Requests each client sends (fewer when `max_time` runs out first).
    pub requests_per_client: usize,
    pub max_time: Duration,
    /// Also send a stream of hostile requests (the soak).
    pub hostile: bool,
    /// The server's body limit, for the over-limit hostile request.
    pub body_limit: usize,
}

#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub clients: usize,
    /// Scored images answered with 200.
    pub ok: usize,
    /// Every other outcome of a well-formed request: status (0: no answer) → count.
    pub errors: BTreeMap<u16, usize>,
    pub seconds: f64,
    /// Latencies of the 200 answers, sorted, in ms.
    pub latencies_ms: Vec<f64>,
    /// Hostile requests sent, and those answered otherwise than expected.
    pub hostile_sent: usize,
    pub hostile_unexpected: Vec<String>,
}

impl LoadReport {
    pub fn throughput(&self) -> f64 {
        self.ok as f64 / self.seconds.max(1e-9)
    }

    /// The `q` quantile of the latencies (nearest rank), in ms.
    pub fn percentile(&self, q: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return f64::NAN;
        }
        let rank = (q * self.latencies_ms.len() as f64).ceil() as usize;
        self.latencies_ms[rank.clamp(1, self.latencies_ms.len()) - 1]
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }
}

/// Runs `options.clients` clients against the server at `addr`, cycling through `images`
/// (name, bytes), each posting one image per request and waiting for its answer.
pub fn run(addr: SocketAddr, images: &[(String, Vec<u8>)], options: &LoadOptions) -> LoadReport {
    assert!(!images.is_empty(), "no images to send");
    let started = Instant::now();
    let deadline = started + options.max_time;
    let report = Mutex::new(LoadReport {
        clients: options.clients,
        ..Default::default()
    });
    let clients_done = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let hostile = options.hostile.then(|| {
            scope.spawn(|| {
                let mut sent = 0;
                let mut unexpected = Vec::new();
                while !clients_done.load(Ordering::SeqCst) && Instant::now() < deadline {
                    if let Some(problem) = hostile_request(addr, sent, options.body_limit) {
                        unexpected.push(problem);
                    }
                    sent += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                (sent, unexpected)
            })
        });
        let workers: Vec<_> = (0..options.clients)
            .map(|_| {
                scope.spawn(|| {
                    let agent = ureq::AgentBuilder::new()
                        .timeout(Duration::from_secs(60))
                        .build();
                    let mut latencies = Vec::new();
                    let mut errors: BTreeMap<u16, usize> = BTreeMap::new();
                    for _ in 0..options.requests_per_client {
                        if Instant::now() >= deadline {
                            break;
                        }
                        let (name, bytes) =
                            &images[next.fetch_add(1, Ordering::SeqCst) % images.len()];
                        let sent = Instant::now();
                        let answer = agent
                            .post(&format!("http://{addr}/v1/predict"))
                            .query("name", name)
                            .set("Content-Type", "application/octet-stream")
                            .send_bytes(bytes);
                        match answer {
                            Ok(r) if r.status() == 200 => {
                                // Read the whole answer: the client's time includes it.
                                let _ = r.into_string();
                                latencies.push(sent.elapsed().as_secs_f64() * 1e3);
                            }
                            Ok(r) => *errors.entry(r.status()).or_default() += 1,
                            Err(ureq::Error::Status(code, _)) => {
                                *errors.entry(code).or_default() += 1
                            }
                            Err(_) => *errors.entry(0).or_default() += 1,
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        for w in workers {
            let (latencies, errors) = w.join().expect("client thread");
            let mut r = report.lock().expect("report");
            r.ok += latencies.len();
            r.latencies_ms.extend(latencies);
            for (k, v) in errors {
                *r.errors.entry(k).or_default() += v;
            }
        }
        report.lock().expect("report").seconds = started.elapsed().as_secs_f64();
        clients_done.store(true, Ordering::SeqCst);
        if let Some(h) = hostile {
            let (sent, unexpected) = h.join().expect("hostile thread");
            let mut r = report.lock().expect("report");
            r.hostile_sent = sent;
            r.hostile_unexpected = unexpected;
        }
    });
    let mut report = report.into_inner().expect("report");
    report.latencies_ms.sort_by(f64::total_cmp);
    report
}

/// The `i`-th hostile request of the rotation; `Some(what went wrong)` when the server did not
/// answer as it should.
fn hostile_request(addr: SocketAddr, i: usize, body_limit: usize) -> Option<String> {
    let expect = |what: &str, status: Option<u16>, want: u16| match status {
        Some(s) if s == want => None,
        other => Some(format!("{what}: expected {want}, got {other:?}")),
    };
    match i % 6 {
        0 => expect(
            "garbage bytes",
            raw(addr, "POST", "/v1/predict", b"this is not an image", None),
            422,
        ),
        1 => expect(
            "body over the limit",
            raw(addr, "POST", "/v1/predict", b"", Some(body_limit + 1)),
            413,
        ),
        2 => expect(
            "unknown path",
            raw(addr, "GET", "/wp-login.php", b"", None),
            404,
        ),
        3 => expect(
            "wrong method",
            raw(addr, "DELETE", "/v1/predict", b"", None),
            405,
        ),
        4 => {
            // Headers promise 100 kB, 10 bytes come, then the client hangs up.
            abandon_upload(addr);
            None
        }
        _ => expect(
            "decompression bomb",
            raw(addr, "POST", "/v1/predict", &bomb_png(), None),
            422,
        ),
    }
}

/// A tiny PNG whose header claims 30000 × 30000 pixels (past the decoder's limits).
pub fn bomb_png() -> Vec<u8> {
    let mut png = Vec::new();
    image::RgbImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("PNG in memory");
    // IHDR's data starts at byte 16: width, height (big-endian), then its CRC at 29.
    png[16..20].copy_from_slice(&30_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&30_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&png[12..29]);
    png[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    png
}

/// Sends a request on a fresh connection and returns the answer's status (`None`: none came).
/// `content_length` overrides the header (to claim a body larger than the one sent).
pub fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    content_length: Option<usize>,
) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        content_length.unwrap_or(body.len())
    );
    stream.write_all(head.as_bytes()).ok()?;
    // The server may answer (413) and close before reading a body; that is not a failure.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Starts an upload and hangs up in the middle of the body.
pub fn abandon_upload(addr: SocketAddr) {
    if let Ok(mut stream) = TcpStream::connect(addr) {
        let head = format!(
            "POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\n0123456789"
        );
        let _ = stream.write_all(head.as_bytes());
    }
}

/// Resident memory of this process in MiB (Linux), for the soak's memory trace.
pub fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The batch-size histogram of the server's `/metrics`: (upper bound, cumulative count) and
/// the mean batch size.
pub fn batch_sizes(addr: SocketAddr) -> Option<(Vec<(String, u64)>, f64)> {
    let text = ureq::get(&format!("http://{addr}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    let value = |line: &str| line.rsplit(' ').next()?.parse::<f64>().ok();
    let mut buckets = Vec::new();
    let (mut sum, mut count) = (0.0, 0.0);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("reason_batch_size_bucket{le=\"") {
            let le = rest.split('"').next()?.to_string();
            buckets.push((le, value(line)? as u64));
        } else if line.starts_with("reason_batch_size_sum") {
            sum = value(line)?;
        } else if line.starts_with("reason_batch_size_count") {
            count = value(line)?;
        }
    }
    Some((buckets, sum / count.max(1.0)))
}
