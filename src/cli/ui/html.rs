//! HTML building blocks: escaping, the page frame with its navigation, tables, forms.
//! Every text that came from a repository or a request goes through [`esc`].

use std::fmt::Write;

/// Text made safe for an HTML element or a quoted attribute.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query string value, percent-encoded.
pub fn q(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The pages of the navigation bar: path and title.
const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/snapshots", "Snapshots"),
    ("/browse", "Browse"),
    ("/diff", "Diff"),
    ("/plots", "Plots"),
    ("/log", "Activity log"),
    ("/actions", "Actions"),
];

/// A whole page: title, navigation (links keep the repository chosen), the repository
/// picker, and `body`.
pub fn page(title: &str, current: &str, repo: usize, repos: &[String], body: &str) -> String {
    let mut nav = String::new();
    for (path, name) in NAV {
        let class = if path == current { " class=\"current\"" } else { "" };
        let _ = write!(nav, "<a href=\"{path}?repo={repo}\"{class}>{name}</a>");
    }
    let mut picker = String::new();
    if repos.len() > 1 && current != "/" {
        let _ = write!(picker, "<form method=\"get\" action=\"{current}\" class=\"picker\"><select name=\"repo\" id=\"repo-picker\">");
        for (i, r) in repos.iter().enumerate() {
            let sel = if i == repo { " selected" } else { "" };
            let _ = write!(picker, "<option value=\"{i}\"{sel}>{}</option>", esc(r));
        }
        picker.push_str("</select><button type=\"submit\">Show</button></form>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>cairn · {t}</title><link rel=\"stylesheet\" href=\"/static/ui.css\">\
         <script src=\"/static/ui.js\" defer></script></head>\
         <body><header><span class=\"brand\">cairn</span><nav>{nav}</nav>{picker}</header>\
         <main><h1>{t}</h1>{body}</main></body></html>\n",
        t = esc(title)
    )
}

/// A table with a header row; cells are HTML already.
pub fn table(id: &str, header: &[&str], rows: &[String]) -> String {
    let mut out = format!("<table id=\"{id}\"><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table>");
    out
}

/// A POST form with one button that starts an action (the CSRF token in it).
pub fn action_button(csrf: &str, kind: &str, repo: usize, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/actions\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"kind\" value=\"{kind}\">\
         <input type=\"hidden\" name=\"repo\" value=\"{repo}\">\
         <button type=\"submit\" data-action=\"{kind}-{repo}\">{}</button></form>",
        esc(csrf),
        esc(label)
    )
}

/// An error shown in the page.
pub fn problem(text: &str) -> String {
    format!("<p class=\"problem\">{}</p>", esc(text))
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_names_is_shown_not_run() {
        assert_eq!(super::esc("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
        assert_eq!(super::q("/a b&c"), "%2Fa+b%26c");
    }
}
