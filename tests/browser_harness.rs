//! The browser harness itself (tests/browser/mod.rs), against a tiny page served from this
//! test on 127.0.0.1: reading the DOM, clicks, typing, a confirm() dialog, a download, a
//! fetch() with the page's cookie, and a screenshot, in a real headless Chromium.

mod browser;

use browser::Browser;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const PAGE: &str = r#"<!doctype html>
<html><head><title>cairn harness</title></head><body>
<h1>Snapshots</h1>
<a id="next" href="/next">next page</a>
<button id="change" onclick="document.getElementById('out').textContent = 'clicked'">change</button>
<p id="out">waiting</p>
<button id="forget" onclick="document.getElementById('answer').textContent =
  confirm('Forget snapshot 1?') ? 'forgotten' : 'kept'">forget</button>
<p id="answer"></p>
<input id="name" value="">
<a id="download" href="/blob">download</a>
<p id="late"></p>
<script>setTimeout(() => { document.getElementById('late').innerHTML = '<b id="ready">ready</b>' }, 300)</script>
</body></html>"#;

/// Serves PAGE at /, a second page at /next, `blob` as an attachment at /blob, and the
/// request's Cookie header at /cookie; / sets a cookie. One thread per connection, since
/// Chromium opens connections it may never use.
fn serve(blob: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let port = listener.local_addr().unwrap().port();
    let blob = std::sync::Arc::new(blob);
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let blob = blob.clone();
            std::thread::spawn(move || answer(conn, &blob));
        }
    });
    port
}

fn answer(mut conn: TcpStream, blob: &[u8]) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let path = head.first().and_then(|l| l.split(' ').nth(1)).unwrap_or("/").to_string();
    let cookie = head.iter().find_map(|l| l.strip_prefix("Cookie: ")).unwrap_or("").trim().to_string();
    let html = "text/html; charset=utf-8";
    let (status, headers, body): (&str, Vec<String>, Vec<u8>) = match path.as_str() {
        "/" => (
            "200 OK",
            vec![format!("Content-Type: {html}"), "Set-Cookie: cairn_ui=s3cret; Path=/".into()],
            PAGE.into(),
        ),
        "/next" => {
            ("200 OK", vec![format!("Content-Type: {html}")], b"<title>next</title><p id=here>here".to_vec())
        }
        "/blob" => (
            "200 OK",
            vec![
                "Content-Type: application/octet-stream".into(),
                "Content-Disposition: attachment; filename=\"snapshot.bin\"".into(),
            ],
            blob.to_vec(),
        ),
        "/cookie" => ("200 OK", vec!["Content-Type: text/plain".into()], cookie.into_bytes()),
        _ => ("404 Not Found", vec![], Vec::new()),
    };
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for h in headers {
        out.push_str(&h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let _ = conn.write_all(out.as_bytes()).and_then(|()| conn.write_all(&body));
}

#[test]
fn harness_drives_a_real_chromium() {
    let mut blob = vec![0u8; 300_000];
    getrandom::fill(&mut blob).expect("random bytes");
    let port = serve(blob.clone());
    let site = format!("http://127.0.0.1:{port}");

    let started = Instant::now();
    let b = Browser::start();
    eprintln!("Browser::start took {:?}", started.elapsed());

    b.goto(&format!("{site}/"));
    assert_eq!(b.title(), "cairn harness");
    assert_eq!(b.url(), format!("{site}/"));
    assert_eq!(b.find("h1").text(), "Snapshots");
    assert!(b.page_source().contains("id=\"forget\""));
    assert_eq!(b.find_all("button").len(), 2);
    assert!(b.find_all("table").is_empty());
    assert_eq!(b.find("#next").attr("href").as_deref(), Some("/next"));
    assert_eq!(b.find("#next").attr("data-missing"), None);
    assert_eq!(b.wait_for("#ready", Duration::from_secs(5)).text(), "ready");

    // A click runs the page's script.
    b.find("#change").click();
    assert_eq!(b.find("#out").text(), "clicked");

    // Typing.
    let name = b.find("#name");
    name.send_keys("nightly");
    assert_eq!(b.execute("return arguments[0].value", &[name.as_arg()]), json!("nightly"));
    assert_eq!(b.execute("return arguments[0] + arguments[1]", &[json!(2), json!(3)]), json!(5));

    // confirm(): dismissed, then accepted.
    b.find("#forget").click();
    assert_eq!(b.alert_text(), "Forget snapshot 1?");
    b.dismiss_alert();
    assert_eq!(b.find("#answer").text(), "kept");
    b.find("#forget").click();
    b.accept_alert();
    assert_eq!(b.find("#answer").text(), "forgotten");

    // The page's cookie, seen by the driver and sent by fetch() from the page.
    let cookies = b.cookies();
    assert!(cookies.iter().any(|c| c["name"] == "cairn_ui" && c["value"] == "s3cret"), "{cookies:?}");
    let echoed = b.execute_async(
        "const done = arguments[arguments.length - 1];
         fetch('/cookie').then(r => r.text()).then(done, e => done('error: ' + e));",
        &[],
    );
    assert_eq!(echoed, json!("cairn_ui=s3cret"));

    // A download lands whole in the browser's folder.
    b.find("#download").click();
    let file = b.wait_for_download("snapshot.bin", Duration::from_secs(20));
    assert!(file.starts_with(b.download_dir()));
    assert!(std::fs::read(&file).unwrap() == blob, "the download differs from what was served");

    let shot = tempfile::NamedTempFile::new().unwrap();
    b.screenshot(shot.path());
    let png = std::fs::read(shot.path()).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG: {:?}", &png[..png.len().min(16)]);

    // Following a link.
    b.find("#next").click();
    assert_eq!(b.wait_for("#here", Duration::from_secs(5)).text(), "here");
    assert_eq!(b.title(), "next");
}

/// Whether process `pid` still runs (a zombie has ended).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

#[test]
fn a_missing_element_panics_and_drop_ends_chromium() {
    let port = serve(Vec::new());
    let b = Browser::start();
    b.goto(&format!("http://127.0.0.1:{port}/next"));
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.find("#nowhere");
    }))
    .expect_err("find of a missing element must panic");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("no element matches `#nowhere`"), "{message}");

    let pid = b.chromium_pid();
    assert!(pid != 0 && running(pid), "the driver reports Chromium's pid");
    drop(b);
    assert!(!running(pid), "Chromium {pid} outlived its Browser");
}
