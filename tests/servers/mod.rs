//! Real storage servers on 127.0.0.1 for the backend tests, started and stopped through
//! scripts/servers/: s3s-fs (S3), Debian's sshd (SFTP) and cairn's own server. Each test gets its own server
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

static TOKENS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn run_script(name: &str, args: &[&str], serve_root: Option<&str>) {
    let mut cmd = Command::new("bash");
    if let Some(r) = serve_root {
        cmd.env("CAIRN_SERVE_ROOT", r);
    }
    let out = cmd
        .env("CAIRN_BIN", env!("CARGO_BIN_EXE_cairn"))
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
    /// Extra options of `cairn serve`.
    options: Vec<String>,
    /// Where `cairn serve` keeps repositories, when not in its folder.
    serve_root: Option<String>,
}

impl Server {
    pub fn s3() -> Server {
        Self::start("s3.sh")
    }

    /// An S3 server that enforces Object Lock (moto), with the bucket `cairn-locked`.
    pub fn s3_lock() -> Server {
        Self::start("s3-lock.sh")
    }

    pub fn sftp() -> Server {
        Self::start("sshd.sh")
    }

    /// `cairn serve` with these extra options; tokens come from [`Server::token`].
    /// Its env holds an admin token for the repository named "repo" (as the S3 and SFTP
    /// servers' env holds their credentials).
    pub fn cairn(options: &[&str]) -> Server {
        Self::cairn_at(None, options)
    }

    /// `cairn serve` whose repositories are at `root` (a bucket, say), its tokens in its
    /// state folder; the server gets this process's environment (S3 credentials).
    pub fn cairn_at(root: Option<&str>, options: &[&str]) -> Server {
        let mut s = Self::prepare("cairn-serve.sh");
        s.serve_root = root.map(str::to_string);
        s.options = options.iter().map(|o| o.to_string()).collect();
        s.restart();
        s.env = vec![("CAIRN_TOKEN".into(), s.token("repo", "admin"))];
        s
    }

    fn start(script: &'static str) -> Server {
        let mut s = Self::prepare(script);
        s.restart();
        s
    }

    fn prepare(script: &'static str) -> Server {
        let dir = tempfile::Builder::new().prefix("cairn-server-").tempdir().expect("temp dir");
        Server { script, dir, port: free_port(), env: Vec::new(), options: Vec::new(), serve_root: None }
    }

    /// Start (again) on the same port and state.
    pub fn restart(&mut self) {
        let mut args =
            vec!["start".to_string(), self.dir.path().to_str().unwrap().to_string(), self.port.to_string()];
        args.extend(self.options.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script(self.script, &args, self.serve_root.as_deref());
        if self.script == "cairn-serve.sh" {
            return;
        }
        self.env = if self.script == "s3.sh" || self.script == "s3-lock.sh" {
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
        run_script(self.script, &["stop", self.dir.path().to_str().unwrap()], None);
    }

    /// End the server at once (SIGKILL), as a crash or power cut of its host would.
    pub fn kill(&self) {
        let pid_file = self.dir.path().join("pid");
        let pid = std::fs::read_to_string(&pid_file).expect("the server's pid file");
        let status = Command::new("kill").args(["-9", pid.trim()]).status().expect("run kill");
        assert!(status.success(), "kill -9 {pid}");
        // Wait until it is gone, so a restart finds its port free.
        while Command::new("kill").args(["-0", pid.trim()]).status().is_ok_and(|s| s.success()) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(pid_file);
    }

    /// A repository location on this server; `name` makes it unique. For SFTP the
    /// location uses the ssh config's Host alias, so the config is what makes it work.
    pub fn location(&self, name: &str) -> String {
        if self.script == "cairn-serve.sh" {
            return format!("rest:http://127.0.0.1:{}/{name}", self.port);
        }
        if self.script == "s3-lock.sh" {
            format!("s3:http://127.0.0.1:{}/cairn-locked/{name}", self.port)
        } else if self.script == "s3.sh" {
            format!("s3:http://127.0.0.1:{}/cairn-test/{name}", self.port)
        } else {
            format!("sftp:cairn-test{}/{name}", self.dir.path().display())
        }
    }

    /// Where the server keeps a repository's files on disk.
    pub fn storage(&self, name: &str) -> PathBuf {
        if self.script == "cairn-serve.sh" {
            return self.root().join(name);
        }
        if self.script == "s3.sh" {
            self.dir.path().join("store/cairn-test").join(name)
        } else {
            self.dir.path().join(name)
        }
    }

    /// The root of a `cairn serve` server.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A new token of `role` for repository `repo` on a `cairn serve` server.
    pub fn token(&self, repo: &str, role: &str) -> String {
        let name = format!("{repo}-{role}-{}", TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args(["serve", "token", "add", &name, "--repo", repo, "--role", role, "--root"]);
        match &self.serve_root {
            Some(r) => cmd.arg(r).arg("--state").arg(self.dir.path().join("state")),
            None => cmd.arg(self.root()),
        };
        let out = cmd.output().expect("run cairn serve token add");
        assert!(out.status.success(), "token add: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
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
