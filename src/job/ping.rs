//! Pings to a monitor (healthchecks-style URLs): a POST with a one-line summary, given
//! up after a timeout so a dead monitor never holds up a backup.

use std::time::Duration;

/// POST `body` to `url`; any answer other than 2xx, or no answer in `timeout_secs`, is an
/// error the caller reports as a warning.
pub fn send(url: &str, body: &str, timeout_secs: u64) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(timeout_secs.max(1))))
        .http_status_as_error(true)
        .build()
        .into();
    agent.post(url).send(body.as_bytes()).map(|_| ()).map_err(|e| e.to_string())
}
