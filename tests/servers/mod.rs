//! Real storage servers on 127.0.0.1 for the backend tests, started and stopped through
//! scripts/servers/: s3s-fs (S3) and Debian's sshd (SFTP). Each test gets its own server
//! on a free port, so tests run in parallel and one may kill its server.
//!
//! A server that cannot start fails the test with the script's message: these tests must
//! never pass without having talked to a server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/servers").join(name)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    l.local_addr().expect("local address").port()
}

fn run_script(name: &str, args: &[&str]) {
    let out = Command::new("bash")
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {} failed; the test server could not be started:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One server process with its state folder.
pub struct Server {
    script: &'static str,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Environment a cairn run needs to reach it (credentials, ssh command).
    pub env: Vec<(String, String)>,
}

impl Server {
    pub fn s3() -> Server {
        Self::start("s3.sh")
    }

    pub fn sftp() -> Server {
        Self::start("sshd.sh")
    }

    fn start(script: &'static str) -> Server {
        let dir = tempfile::Builder::new().prefix("cairn-server-").tempdir().expect("temp dir");
        let port = free_port();
        let mut s = Server { script, dir, port, env: Vec::new() };
        s.restart();
        s
    }

    /// Start (again) on the same port and state.
    pub fn restart(&mut self) {
        run_script(self.script, &["start", self.dir.path().to_str().unwrap(), &self.port.to_string()]);
        self.env = if self.script == "s3.sh" {
            let text = std::fs::read_to_string(self.dir.path().join("env")).expect("server env");
            let mut env: Vec<(String, String)> = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .filter(|(k, _)| k.starts_with("AWS_"))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            // The HTTP client honours proxy settings: test traffic must stay on this machine.
            for k in ["NO_PROXY", "no_proxy"] {
                env.push((k.to_string(), "127.0.0.1,localhost".to_string()));
            }
            env
        } else {
            let config = self.dir.path().join("ssh_config");
            vec![("CAIRN_SSH_COMMAND".into(), format!("ssh -F {}", config.display()))]
        };
    }

    pub fn stop(&self) {
        run_script(self.script, &["stop", self.dir.path().to_str().unwrap()]);
    }

    /// A repository location on this server; `name` makes it unique. For SFTP the
    /// location uses the ssh config's Host alias, so the config is what makes it work.
    pub fn location(&self, name: &str) -> String {
        if self.script == "s3.sh" {
            format!("s3:http://127.0.0.1:{}/cairn-test/{name}", self.port)
        } else {
            format!("sftp:cairn-test{}/{name}", self.dir.path().display())
        }
    }

    /// Where the server keeps a repository's files on disk.
    pub fn storage(&self, name: &str) -> PathBuf {
        if self.script == "s3.sh" {
            self.dir.path().join("store/cairn-test").join(name)
        } else {
            self.dir.path().join(name)
        }
    }

    pub fn env_map(&self) -> HashMap<String, String> {
        self.env.iter().cloned().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script(self.script))
            .args(["stop", self.dir.path().to_str().unwrap()])
            .output();
    }
}
