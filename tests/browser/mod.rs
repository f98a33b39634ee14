//! A real headless Chromium for the tests of the web dashboard (`cairn ui`), driven through
//! a small W3C WebDriver client. Each [`Browser`] is its own Debian chromedriver on a free
//! 127.0.0.1 port (scripts/servers/chromedriver.sh), one Chromium, one session, with its own
//! profile and download folder, so tests run in parallel.
//!
//! The browser must reach nothing beyond this machine: Google's services, updates and
//! name resolution are off (see `chromium_args`). A browser that cannot start fails the
//! test with the driver's log: these tests must never pass without a browser.
//!
//! Included by a test file with `mod browser;`.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The browser itself, not Debian's /usr/bin/chromium: that wrapper sources /etc/chromium.d,
/// which exports Google API keys and turns remote extensions on.
const CHROMIUM: &str = "/usr/lib/chromium/chromium";

/// The JSON key of an element reference (W3C WebDriver, "web element identifier").
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Page loads and async scripts give up after this; the HTTP client waits a little longer,
/// so the driver's own timeout error is the one a test sees.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// An error the driver answered: the W3C error code ("no such element") and its message.
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

/// One chromedriver with one Chromium session; dropping it ends both.
pub struct Browser {
    agent: ureq::Agent,
    /// http://127.0.0.1:PORT
    driver: String,
    /// Empty until the session exists.
    session: String,
    /// The script's state (pid, server.log), and profile/ and downloads/.
    dir: tempfile::TempDir,
    downloads: PathBuf,
    /// Chromium's main process, as the driver reports it.
    chromium_pid: u32,
}

/// An element of the current page, valid until the page changes.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    l.local_addr().expect("local address").port()
}

/// Runs chromedriver.sh; its output when it fails.
fn run_script(args: &[&str]) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/servers/chromedriver.sh");
    let out = Command::new("bash").arg(script).args(args).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn chromium_args(profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        // Tests run as root, where Chromium's sandbox refuses to start.
        "--no-sandbox",
        "--disable-gpu",
        // Containers often have a small /dev/shm; a full one crashes the renderer.
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--lang=en-US",
        "--no-first-run",
        "--no-default-browser-check",
        // Nothing calls home: no updates, sync, metrics, safe browsing lists or pings.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-breakpad",
        "--no-pings",
        "--metrics-recording-only",
        "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,\
         AutofillServerCommunication,CertificateTransparencyComponentUpdater,\
         NetworkTimeServiceQuerying,InterestFeedContentSuggestions",
        // And should something still try: no proxy from the environment, and every host
        // but 127.0.0.1 and localhost fails to resolve (the rules apply to IP addresses too).
        "--no-proxy-server",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ]
    .map(String::from)
    .into();
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

impl Browser {
    /// Starts chromedriver and a Chromium session; panics with the driver's output if
    /// either cannot start.
    pub fn start() -> Browser {
        let dir = tempfile::Builder::new().prefix("cairn-browser-").tempdir().expect("temp dir");
        let port = free_port();
        let state = dir.path().to_str().expect("a UTF-8 temp dir").to_string();
        if let Err(out) = run_script(&["start", &state, &port.to_string()]) {
            panic!("Browser::start: chromedriver could not start (apt-get install chromium chromium-driver):\n{out}");
        }
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                // The driver's errors come as JSON with a 4xx/5xx status: read them.
                .http_status_as_error(false)
                // Only 127.0.0.1 is ever asked; a proxy from the environment must not be.
                .proxy(None)
                .timeout_global(Some(COMMAND_TIMEOUT + Duration::from_secs(30)))
                .build(),
        );
        let (profile, downloads) = (dir.path().join("profile"), dir.path().join("downloads"));
        let driver = format!("http://127.0.0.1:{port}");
        // Built before the session, so that a panic below still stops the driver in Drop.
        let mut browser = Browser {
            agent,
            driver,
            session: String::new(),
            dir,
            downloads: downloads.clone(),
            chromium_pid: 0,
        };
        std::fs::create_dir(&profile).expect("create the profile folder");
        std::fs::create_dir(&downloads).expect("create the download folder");
        let ms = COMMAND_TIMEOUT.as_millis() as u64;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "timeouts": {"implicit": 0, "pageLoad": ms, "script": ms},
            // A dialog nobody expected stays open and fails the next command, rather than
            // being answered behind the test's back.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": chromium_args(&profile),
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                    "safebrowsing.enabled": false,
                },
            },
        }}});
        let url = format!("{}/session", browser.driver);
        match send(&browser.agent, "POST", &url, Some(&capabilities)) {
            Ok(v) => {
                browser.session = v["sessionId"].as_str().expect("a session id").to_string();
                browser.chromium_pid = v["capabilities"]["goog:processID"].as_u64().unwrap_or(0) as u32;
            }
            Err(e) => {
                let log = std::fs::read_to_string(browser.dir.path().join("server.log")).unwrap_or_default();
                let why = format!("{}: {}", e.error, e.message);
                panic!("Browser::start: chromedriver could not start Chromium: {why}\nchromedriver's log:\n{log}");
            }
        }
        browser
    }

    /// Runs one command of the session (`path` after /session/ID); panics on an error.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {}: {}", e.error, e.message))
    }

    fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        let url = format!("{}/session/{}{path}", self.driver, self.session);
        send(&self.agent, method, &url, body.as_ref())
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn url(&self) -> String {
        string(self.cmd("GET", "/url", None))
    }

    pub fn title(&self) -> String {
        string(self.cmd("GET", "/title", None))
    }

    /// The first element `css` matches; panics when there is none.
    pub fn find(&self, css: &str) -> Element<'_> {
        match self.try_cmd("POST", "/element", Some(json!({"using": "css selector", "value": css}))) {
            Ok(v) => self.element(&v),
            Err(e) if e.error == "no such element" => panic!("no element matches `{css}` on {}", self.url()),
            Err(e) => panic!("find `{css}`: {}: {}", e.error, e.message),
        }
    }

    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        let found = self.cmd("POST", "/elements", Some(json!({"using": "css selector", "value": css})));
        found.as_array().expect("a list of elements").iter().map(|v| self.element(v)).collect()
    }

    /// The first element `css` matches, once one does (pages that render from scripts).
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let start = Instant::now();
        loop {
            if let Some(e) = self.find_all(css).into_iter().next() {
                return e;
            }
            if start.elapsed() > timeout {
                panic!("no element matched `{css}` within {timeout:?} on {}", self.url());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn element(&self, v: &Value) -> Element<'_> {
        let id = v[ELEMENT].as_str().unwrap_or_else(|| panic!("not an element: {v}"));
        Element { browser: self, id: id.to_string() }
    }

    /// Runs `js` as a function body in the page (`arguments[i]` are `args`); what it returns.
    pub fn execute(&self, js: &str, args: &[Value]) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({"script": js, "args": args})))
    }

    /// Like [`Browser::execute`], but the result is what the script passes to its last
    /// argument, a callback: for `fetch()` from the page, with the page's cookies.
    /// `const done = arguments[arguments.length - 1]; fetch('/x').then(r => r.text()).then(done);`
    pub fn execute_async(&self, js: &str, args: &[Value]) -> Value {
        self.cmd("POST", "/execute/async", Some(json!({"script": js, "args": args})))
    }

    pub fn page_source(&self) -> String {
        string(self.cmd("GET", "/source", None))
    }

    /// Saves a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(string(self.cmd("GET", "/screenshot", None)))
            .expect("the screenshot is base64");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The cookies of the current page, as the driver gives them ({"name", "value", ...}).
    pub fn cookies(&self) -> Vec<Value> {
        self.cmd("GET", "/cookie", None).as_array().expect("a list of cookies").clone()
    }

    /// Chromium's main process (0 if the driver did not say), to check it is gone after drop.
    pub fn chromium_pid(&self) -> u32 {
        self.chromium_pid
    }

    pub fn download_dir(&self) -> &Path {
        &self.downloads
    }

    /// The downloaded file `file_name`, once it is complete: Chromium writes to a
    /// `.crdownload` file and renames it at the end.
    pub fn wait_for_download(&self, file_name: &str, timeout: Duration) -> PathBuf {
        let (dir, start) = (self.download_dir(), Instant::now());
        let path = dir.join(file_name);
        loop {
            let partial = std::fs::read_dir(dir)
                .expect("read the download folder")
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".crdownload")));
            if path.exists() && !partial {
                return path;
            }
            if start.elapsed() > timeout {
                let names: Vec<_> =
                    std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name()).collect();
                panic!("no complete download {file_name} within {timeout:?}; the folder holds {names:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The message of the open alert(), confirm() or prompt(); panics when none is open.
    pub fn alert_text(&self) -> String {
        string(self.cmd("GET", "/alert/text", None))
    }

    /// OK to the open dialog (confirm() returns true).
    pub fn accept_alert(&self) {
        self.cmd("POST", "/alert/accept", Some(json!({})));
    }

    /// Cancel to the open dialog (confirm() returns false).
    pub fn dismiss_alert(&self) {
        self.cmd("POST", "/alert/dismiss", Some(json!({})));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Chromium quits; the script then ends whatever is left of its process group.
            let _ = self.try_cmd("DELETE", "", None);
        }
        let _ = run_script(&["stop", self.dir.path().to_str().unwrap()]);
    }
}

impl Element<'_> {
    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        self.browser.cmd(method, &format!("/element/{}{what}", self.id), body)
    }

    /// The rendered text, as the user sees it.
    pub fn text(&self) -> String {
        string(self.cmd("GET", "/text", None))
    }

    /// The attribute `name`, or None when the element has none.
    pub fn attr(&self, name: &str) -> Option<String> {
        self.cmd("GET", &format!("/attribute/{name}"), None).as_str().map(str::to_string)
    }

    pub fn click(&self) {
        self.cmd("POST", "/click", Some(json!({})));
    }

    /// Types `text` into the element, as keystrokes.
    pub fn send_keys(&self, text: &str) {
        self.cmd("POST", "/value", Some(json!({"text": text})));
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ELEMENT: self.id})
    }
}

fn string(v: Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_string()
}

/// One HTTP request to the driver: the answer's `value`, or the error it reports.
fn send(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> Result<Value, WebDriverError> {
    let sent = match (method, body) {
        ("POST", Some(b)) => agent.post(url).header("Content-Type", "application/json").send(b.to_string()),
        ("GET", None) => agent.get(url).call(),
        ("DELETE", None) => agent.delete(url).call(),
        _ => panic!("send: {method} with body {body:?}"),
    };
    let failed = |error: &str, message: String| WebDriverError { error: error.to_string(), message };
    let mut answer = sent.map_err(|e| failed("transport", format!("{method} {url}: {e}")))?;
    let status = answer.status();
    // Screenshots and page sources pass ureq's default 10 MB limit on large pages.
    let text = answer
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .map_err(|e| failed("transport", format!("{method} {url}: {e}")))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| failed("bad answer", format!("{status} {e}: {text}")))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(value);
    }
    let error = value["error"].as_str().unwrap_or("unknown error");
    Err(failed(error, value["message"].as_str().unwrap_or(&text).to_string()))
}
