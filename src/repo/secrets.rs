//! Where passwords and tokens come from besides files and prompts: the environment, and a
//! command that prints one (a secret store: `pass show cairn/gw`, `vault kv get ...`).
//!
//! Secrets given in the environment (CAIRN_PASSWORD, CAIRN_NEW_PASSWORD,
//! CAIRN_FROM_PASSWORD, CAIRN_TOKEN, CAIRN_UI_TOKEN) are taken out of it when cairn starts
//! ([`take_from_environment`]), so no command cairn runs (a dump, a hook, a password
//! command, a drill's check) inherits them; cairn hands them on only to its own job steps.
//! Every copy is zeroized when dropped.

use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// The environment variables that hold a secret itself.
pub const SECRET_VARS: [&str; 5] =
    ["CAIRN_PASSWORD", "CAIRN_NEW_PASSWORD", "CAIRN_FROM_PASSWORD", "CAIRN_TOKEN", "CAIRN_UI_TOKEN"];

/// How long a password command may take, unless CAIRN_PASSWORD_COMMAND_TIMEOUT says.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The secret variables taken from the environment, by name.
type Taken = Mutex<HashMap<&'static str, Zeroizing<Vec<u8>>>>;

fn taken() -> &'static Taken {
    static TAKEN: OnceLock<Taken> = OnceLock::new();
    TAKEN.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Move the secret variables out of the process environment into cairn's own memory.
/// Call it first thing in `main`, while the process has one thread (changing the
/// environment is only safe then).
pub fn take_from_environment() {
    use std::os::unix::ffi::OsStringExt;
    let mut store = taken().lock().expect("secrets lock");
    for var in SECRET_VARS {
        if let Some(v) = std::env::var_os(var) {
            store.insert(var, Zeroizing::new(v.into_vec()));
            std::env::remove_var(var);
        }
    }
}

/// A secret variable's value: what [`take_from_environment`] took, else the environment
/// (for library users that never took it).
pub fn from_environment(var: &str) -> Option<Zeroizing<Vec<u8>>> {
    use std::os::unix::ffi::OsStringExt;
    if let Some(v) = taken().lock().expect("secrets lock").get(var) {
        return Some(v.clone());
    }
    std::env::var_os(var).map(|v| Zeroizing::new(v.into_vec()))
}

/// The first line of what `command` (run by `sh -c`) prints. It gets no input and none
/// of the secret variables; a failure, a hang past the time limit (killed with everything
/// it started) or an empty answer is one clear error (CommandFailed, exit 6).
pub fn from_command(command: &str) -> Result<Zeroizing<Vec<u8>>> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let timeout = std::env::var("CAIRN_PASSWORD_COMMAND_TIMEOUT")
        .ok()
        .and_then(|v| crate::units::parse_duration(&v).ok())
        .map_or(COMMAND_TIMEOUT, Duration::from_secs);
    let failed = |what: String| {
        Error::new(ErrorKind::CommandFailed, format!("the password command `{command}` {what}"))
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    // At most 64 KiB of answer and 4 KiB of complaint are kept.
    let reader = std::thread::spawn(move || {
        let mut b = Zeroizing::new(Vec::new());
        let _ = (&mut out).take(64 << 10).read_to_end(&mut b);
        b
    });
    let complaint = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = (&mut err).take(4 << 10).read_to_end(&mut b);
        b
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                // The whole group: a shell's children would otherwise keep the pipes open.
                if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return Err(failed(format!(
                    "gave no password within {} s and was stopped (CAIRN_PASSWORD_COMMAND_TIMEOUT sets the limit)",
                    timeout.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(failed(format!("could not be waited for: {e}"))),
        }
    };
    let answer = reader.join().unwrap_or_default();
    let complaint = complaint.join().unwrap_or_default();
    if !status.success() {
        let said = String::from_utf8_lossy(&complaint);
        let said = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
        let code = status.code().map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
        return Err(failed(if said.is_empty() {
            format!("failed (exit {code})")
        } else {
            format!("failed (exit {code}): {said}")
        }));
    }
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(failed("printed no password: it must print the password on its first line".into()));
    }
    Ok(Zeroizing::new(line.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_is_the_password_and_failures_are_clear() {
        assert_eq!(from_command("printf 'pw one\\nsecond line\\n'").unwrap().as_slice(), b"pw one");
        let e = from_command("echo 'vault: permission denied' >&2; exit 3").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::CommandFailed);
        assert!(
            e.to_string().contains("exit status 3") && e.to_string().contains("permission denied"),
            "{e}"
        );
        assert!(from_command("true").unwrap_err().to_string().contains("printed no password"));
        assert!(from_command("printf '\\n'").is_err());
    }
}
