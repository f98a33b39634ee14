//! `cairn ui` for the dashboard tests: started on a free port of 127.0.0.1 by
//! scripts/servers/cairn-ui.sh, with an HTTP client that keeps what a test asserts on
//! (status, headers, body) and never follows redirects on its own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The login token every test dashboard gets (CAIRN_UI_TOKEN).
pub const TOKEN: &str = "test-token-0123456789abcdef";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/servers/cairn-ui.sh")
}

pub struct Dashboard {
    pub dir: tempfile::TempDir,
    pub port: u16,
    agent: ureq::Agent,
}

/// One answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl Dashboard {
    /// Start `cairn ui ARGS` with `env` (passwords) added to this process's environment.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Dashboard {
        let dir = tempfile::Builder::new().prefix("cairn-ui-").tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cmd = Command::new("bash");
        cmd.arg(script()).arg("start").arg(dir.path()).arg(port.to_string()).args(args);
        cmd.env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn")).env("CAIRN_UI_TOKEN", TOKEN);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run cairn-ui.sh");
        assert!(
            out.status.success(),
            "cairn-ui.sh could not start the dashboard:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(std::time::Duration::from_secs(120)))
            .build();
        Dashboard { dir, port, agent: ureq::Agent::new_with_config(config) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the dashboard printed (its first line is the login URL).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        let mut r = r.expect("the dashboard answers");
        let headers = r
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let status = r.status().as_u16();
        let body = r.body_mut().with_config().limit(1 << 30).read_to_vec().expect("read the body");
        Answer { status, headers, body }
    }

    /// GET with these extra headers.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.agent.get(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::answer(req.call())
    }

    /// GET with the bearer token.
    pub fn api(&self, path: &str) -> Answer {
        self.get_with(path, &[("authorization", &format!("Bearer {TOKEN}"))])
    }

    /// POST a form with these headers.
    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Answer {
        let mut req = self.agent.post(self.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::answer(req.send_form(form.iter().copied()))
    }

    /// Log in through the login URL; the session cookie (`name=value`).
    pub fn login(&self) -> String {
        let a = self.get_with(&format!("/?token={TOKEN}"), &[]);
        assert_eq!(a.status, 303, "login: {}", a.text());
        let cookie = a.header("set-cookie").expect("a session cookie").to_string();
        cookie.split(';').next().unwrap().to_string()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(script()).arg("stop").arg(self.dir.path()).output();
    }
}
