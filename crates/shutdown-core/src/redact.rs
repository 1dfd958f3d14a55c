//! One redaction for every URL the product prints: a password in a URL (user info, or a `pass` or
//! `password` query parameter) never reaches a log line, an error or a report.

/// The password written in a URL, if any (userinfo or `pass=`/`password=` query).
pub fn password_in(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, p)) = userinfo.split_once(':')
    {
        return Some(p.to_owned());
    }
    let query = &url[url.find('?')? + 1..];
    query.split('&').find_map(|kv| match kv.split_once('=') {
        Some(("pass" | "password", v)) => Some(v.to_owned()),
        _ => None,
    })
}

/// `redis://user:secret@host/0` -> `redis://user:***@host/0`, `https://u:pw@gw:9091` ->
/// `https://u:***@gw:9091`; `?pass=` and `?password=` too.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            let user = userinfo.split(':').next().unwrap_or("");
            if userinfo.contains(':') {
                out = format!(
                    "{}{user}:***{}",
                    &out[..rest_start],
                    &out[rest_start + at..]
                );
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k == "pass" || k == "password" => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

/// `text` with every occurrence of the password of `url` (if it has one) replaced by `***`: for
/// error messages of libraries that quote a URL as they received it.
pub fn scrub(text: &str, url: &str) -> String {
    match password_in(url) {
        Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("https://ops:s3cret@pushgateway:9091/"),
            "https://ops:***@pushgateway:9091/"
        );
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?db=1&pass=s3cret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
        assert_eq!(
            scrub(
                "connect to http://u:s3cret@h failed: s3cret",
                "http://u:s3cret@h"
            ),
            "connect to http://u:***@h failed: ***"
        );
    }
}
