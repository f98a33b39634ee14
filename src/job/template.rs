//! Snapshot names from a template such as
//! "{application}-{environment}-{time:%Y%m%d-%H%M}-{kind}": `{job}`, `{host}`, `{kind}`
//! (`files`, or the dump's name), `{type}` (the job's `type`, else `files`; `dump` for
//! dumps), `{time}` or `{time:FORMAT}` (strftime, in the job's `name-time-zone`, else
//! local time), and any of the job's label keys. A name that an earlier snapshot already
//! has gets a counter when the snapshot is saved (see `ops::backup`).

/// What a name is made from.
pub struct NameParts<'a> {
    pub job: &'a str,
    pub host: &'a str,
    pub kind: &'a str,
    pub snapshot_type: &'a str,
    pub time: &'a jiff::ZonedDateTime,
    pub labels: &'a [(String, String)],
}

/// The name `template` gives for `parts`, or what is wrong with the template.
pub fn expand(template: &str, parts: &NameParts<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close =
            rest[open..].find('}').ok_or_else(|| format!("'{{' without '}}' in \"{template}\""))? + open;
        let field = &rest[open + 1..close];
        out.push_str(&field_value(field, parts)?);
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("'}}' without '{{' in \"{template}\""));
    }
    out.push_str(rest);
    if out.is_empty() || out.contains('/') || out.chars().any(char::is_whitespace) {
        return Err(format!(
            "\"{template}\" gives \"{out}\": a name must be non-empty, without '/' or spaces"
        ));
    }
    Ok(out)
}

fn field_value(field: &str, p: &NameParts<'_>) -> Result<String, String> {
    let (name, format) = match field.split_once(':') {
        Some((n, f)) => (n, Some(f)),
        None => (field, None),
    };
    match (name, format) {
        ("time", f) => jiff::fmt::strtime::format(f.unwrap_or("%Y%m%d-%H%M%S"), p.time)
            .map_err(|e| format!("{{{field}}}: {e}")),
        ("job", None) => Ok(p.job.to_string()),
        ("host", None) => Ok(p.host.to_string()),
        ("kind", None) => Ok(p.kind.to_string()),
        ("type", None) => Ok(p.snapshot_type.to_string()),
        (label, None) => p.labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()).ok_or_else(|| {
            let keys: Vec<&str> = p.labels.iter().map(|(k, _)| k.as_str()).collect();
            format!(
                "unknown placeholder {{{label}}}: use {{job}}, {{host}}, {{kind}}, {{type}}, {{time:%Y%m%d}} or a label key ({})",
                if keys.is_empty() { "this job has no labels".to_string() } else { keys.join(", ") }
            )
        }),
        _ => Err(format!("{{{field}}}: only {{time:FORMAT}} takes a format")),
    }
}

/// Check a template against a job's labels.
pub fn check(template: &str, labels: &[(String, String)]) -> Result<(), String> {
    let time = jiff::Timestamp::UNIX_EPOCH.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    let parts =
        NameParts { job: "job", host: "host", kind: "files", snapshot_type: "files", time: &time, labels };
    expand(template, &parts).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_bad_ones_say_why() {
        let time = "2026-11-24T08:05:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC);
        let labels =
            vec![("application".to_string(), "apigw".to_string()), ("environment".into(), "prod".into())];
        let parts = NameParts {
            job: "gw",
            host: "h1",
            kind: "files",
            snapshot_type: "config",
            time: &time,
            labels: &labels,
        };
        let t = "{application}-{environment}-{time:%Y%m%d-%H%M}-{kind}";
        assert_eq!(expand(t, &parts).unwrap(), "apigw-prod-20261124-0805-files");
        assert_eq!(expand("{job}@{host}-{time}", &parts).unwrap(), "gw@h1-20261124-080500");
        assert_eq!(expand("{job}-{type}", &parts).unwrap(), "gw-config");
        assert!(expand("{owner}-x", &parts).unwrap_err().contains("application, environment"));
        assert!(expand("{job", &parts).is_err());
        assert!(expand("a b", &parts).is_err());
        assert!(expand("{job:%Y}", &parts).is_err());
        assert!(check("{time:%@}", &labels).is_err(), "an unknown strftime directive is refused");
    }
}
