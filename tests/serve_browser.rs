//! The page of `reason serve` in a real browser: headless Chromium (Debian's `chromium`) loads
//! `/`, scores a val image through the page's own upload code (`#auto=URL` feeds it the image
//! a file pick would), and the rendered verdict and bars are checked in the DOM; a screenshot
//! is saved in the test's output folder. Skipped, saying so, where no Chromium is installed.
//! Real model and data when present, else the seeded synthetic ones.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::serve as s;
use reason::serve::ServeConfig;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Serves `file` to the browser from a second loopback port, with CORS open (the page fetches
/// it as a picked file would be read), until the process ends.
fn serve_file(file: PathBuf) -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let port = server.server_addr().to_ip().unwrap().port();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let bytes = std::fs::read(&file).unwrap();
            let cors = tiny_http::Header::from_bytes("Access-Control-Allow-Origin", "*").unwrap();
            let _ = request.respond(tiny_http::Response::from_data(bytes).with_header(cors));
        }
    });
    format!("http://127.0.0.1:{port}/{name}")
}

/// Runs headless Chromium on `url` with `args`, killed after 180 s; its stdout.
fn chromium(url: &str, args: &[&str], profile: &Path) -> String {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            // Virtual time does not advance while a fetch is pending, so this waits for the
            // answer however long scoring takes, then gives the page time to render it.
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

/// The text between `start` and the next `<`.
fn text_after<'a>(dom: &'a str, start: &str) -> &'a str {
    let at = dom
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in the DOM"))
        + start.len();
    dom[at..].split('<').next().unwrap()
}

#[test]
fn the_page_scores_an_image_in_a_real_browser() {
    if !Path::new(CHROMIUM).is_file() {
        eprintln!(
            "SKIPPED the_page_scores_an_image_in_a_real_browser: no browser at {CHROMIUM} \
             (apt-get install chromium)"
        );
        return;
    }
    let models = s::real_models("the_page_scores_an_image_in_a_real_browser")
        .unwrap_or_else(s::synthetic_models);
    let server = s::start(ServeConfig::default(), s::loader(&models));
    let image = models.images[0].clone();
    let name = image.file_name().unwrap().to_string_lossy().into_owned();
    // What the API says about this image, to compare the page with.
    let (status, api) = s::post_raw(&server, &name, &std::fs::read(&image).unwrap());
    assert_eq!(status, 200);
    let image_url = serve_file(image);
    let url = format!("{}#auto={image_url}", server.url("/"));
    let profile = tempfile::tempdir().unwrap();

    let dom = chromium(&url, &["--dump-dom"], profile.path());
    assert!(
        dom.contains(r#"data-state="done""#),
        "the page did not finish:\n{dom}"
    );
    let verdict = api["reliability"]["verdict"].as_str().unwrap();
    assert!(dom.contains(&format!(r#"id="verdict" data-verdict="{verdict}""#)));
    assert_eq!(
        text_after(&dom, &format!(r#"data-verdict="{verdict}">"#)),
        verdict.to_uppercase()
    );
    let head = api["reliability"]["head_top5"].as_array().unwrap().len();
    let head_bars = text_section(&dom, r#"id="head-bars""#)
        .matches(r#"class="bar""#)
        .count();
    let imagenet_bars = text_section(&dom, r#"id="imagenet-bars""#)
        .matches(r#"class="bar""#)
        .count();
    assert_eq!((head_bars, imagenet_bars), (head, 5));
    let top = api["reliability"]["head_top5"][0]["name"].as_str().unwrap();
    assert!(text_after(&dom, r#"id="pcorrect" class="muted">"#).contains(top));
    let dims = api["reliability"]["meta"]
        .as_object()
        .unwrap()
        .len()
        .min(60);
    assert_eq!(
        dom.matches(r#"class="dim""#).count(),
        dims,
        "meta-vector bars"
    );

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve_page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400",
        ],
        profile.path(),
    );
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    println!("screenshot: {}", shot.display());
    server.stop().unwrap();
}

/// The DOM from `start` to the end of its element's section (the next `</section>`).
fn text_section<'a>(dom: &'a str, start: &str) -> &'a str {
    let at = dom
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in the DOM"));
    let end = dom[at..].find("</section>").map_or(dom.len(), |e| at + e);
    &dom[at..end]
}
