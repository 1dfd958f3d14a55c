//! How a field of the configuration is read, for the pipeline's keys and every step's options alike:
//! typed values (seconds, names, signals, choices) that serde reads with messages a person
//! understands, [`deserialize_all`], which keeps every error of a table instead of the first, and
//! the did-you-mean of an unknown name.
//!
//! A value read from the environment is a string; a string that reads as the number or the boolean
//! expected is taken as one, in the file as in the environment.

use std::fmt;
use std::time::Duration;

use config::{Map, Value, ValueKind};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::pipeline::OnError;
use crate::signal::Signal;

/// The most seconds any timeout may be: a day.
pub(crate) const MAX_SECONDS: f64 = 86_400.0;
/// The longest name (step, trader id, job): longer ones only make unreadable lines.
pub(crate) const MAX_NAME_LEN: usize = 64;

/// Whatever a config value is, before it is given its type: what messages say was found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<Raw>),
    Table,
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Bool(b) => write!(f, "boolean {b}"),
            Raw::Int(i) => write!(f, "integer {i}"),
            Raw::Float(x) => write!(f, "float {x}"),
            Raw::Str(s) => write!(f, "string {:?}", shorten(s)),
            Raw::List(_) => f.write_str("an array"),
            Raw::Table => f.write_str("a table"),
        }
    }
}

/// `s`, cut to a length that fits in a message.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    match s.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}… ({} characters)", &s[..at], s.chars().count()),
        None => s.to_owned(),
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
                i128::try_from(v).map(Raw::Int).map_err(E::custom)
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Str(String::new()))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Raw>()? {
                    items.push(item);
                }
                Ok(Raw::List(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Raw::Table)
            }
        }
        d.deserialize_any(RawVisitor)
    }
}

impl Raw {
    fn number(&self) -> Option<f64> {
        match self {
            Raw::Int(i) => Some(*i as f64),
            Raw::Float(x) => Some(*x),
            Raw::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn text(self) -> Result<String, String> {
        match self {
            Raw::Str(s) => Ok(s),
            other => Err(format!("expected a string, found {other}")),
        }
    }
}

/// A number of seconds: finite, above 0, at most a day.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct Seconds(pub(crate) Duration);

impl TryFrom<Raw> for Seconds {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        match raw.number() {
            Some(s) if s.is_finite() && s > 0.0 && s <= MAX_SECONDS => {
                Ok(Seconds(Duration::from_secs_f64(s)))
            }
            Some(s) => Err(format!(
                "must be a finite number of seconds greater than 0 and at most {MAX_SECONDS}, found {s}"
            )),
            None => Err(format!("expected a number of seconds, found {raw}")),
        }
    }
}

/// `true` or `false` (`"true"`, `"false"`, `"1"`, `"0"` from the environment).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct Flag(pub(crate) bool);

impl TryFrom<Raw> for Flag {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        match &raw {
            Raw::Bool(b) => Ok(Flag(*b)),
            Raw::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Flag(true)),
                "false" | "0" => Ok(Flag(false)),
                _ => Err(format!("expected true or false, found {raw}")),
            },
            _ => Err(format!("expected true or false, found {raw}")),
        }
    }
}

/// A name: 1 to 64 characters of letters, digits, `-`, `_` or `.` (a trader id, a metrics job).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct Id(pub(crate) String);

impl TryFrom<Raw> for Id {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        let s = raw.text()?;
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !s.is_empty() && s.len() <= MAX_NAME_LEN && s.chars().all(ok) {
            Ok(Id(s))
        } else {
            Err(format!(
                "must be 1 to {MAX_NAME_LEN} characters of letters, digits, `-`, `_` or `.`, found {:?}",
                shorten(&s)
            ))
        }
    }
}

/// A step's name: 1 to 64 printable characters, not only spaces.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct StepName(pub(crate) String);

impl TryFrom<Raw> for StepName {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        let s = raw.text()?;
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else if s.chars().count() > MAX_NAME_LEN || s.chars().any(char::is_control) {
            Err(format!(
                "must be at most {MAX_NAME_LEN} printable characters, found {:?}",
                shorten(&s)
            ))
        } else {
            Ok(StepName(s))
        }
    }
}

/// One of a few words, matched ignoring case.
fn one_of<T: Copy>(raw: Raw, choices: &[(&str, T)]) -> Result<T, String> {
    let expected = || {
        let quoted: Vec<String> = choices.iter().map(|(w, _)| format!("\"{w}\"")).collect();
        quoted.join(", ")
    };
    let word = raw.text()?;
    choices
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(word.trim()))
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("expected one of {}, found {:?}", expected(), shorten(&word)))
}

/// `continue` or `abort`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct OnErrorValue(pub(crate) OnError);

impl TryFrom<Raw> for OnErrorValue {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        one_of(
            raw,
            &[("continue", OnError::Continue), ("abort", OnError::Abort)],
        )
        .map(OnErrorValue)
    }
}

/// `trace`, `debug`, `info`, `warn` or `error`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct LogLevel(pub(crate) Level);

/// A log level (`log_level`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl TryFrom<Raw> for LogLevel {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        let levels = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ];
        let choices: Vec<(&str, Level)> = levels.iter().map(|l| (l.as_str(), *l)).collect();
        one_of(raw, &choices).map(LogLevel)
    }
}

/// Signal names: an array, or one comma-separated string (from the environment); not empty.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct Signals(pub(crate) Vec<Signal>);

impl TryFrom<Raw> for Signals {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        let items = match raw {
            Raw::List(items) => items,
            Raw::Str(s) => s.split(',').map(|p| Raw::Str(p.to_owned())).collect(),
            other => return Err(format!("expected an array of signal names, found {other}")),
        };
        let mut signals = Vec::new();
        for item in items {
            let signal: Signal = (item.text())?.parse().map_err(|e| format!("{e}"))?;
            if !signals.contains(&signal) {
                signals.push(signal);
            }
        }
        if signals.is_empty() {
            return Err("must name at least one signal".into());
        }
        Ok(Signals(signals))
    }
}

/// An `http://` or `https://` URL, without its trailing `/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Raw")]
pub(crate) struct HttpUrl(pub(crate) String);

impl TryFrom<Raw> for HttpUrl {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        let url = raw.text()?;
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(HttpUrl(url.trim_end_matches('/').to_owned()))
        } else {
            Err(format!(
                "expected an http:// or https:// URL, found {:?}",
                crate::redact::redact_url(&shorten(&url))
            ))
        }
    }
}

/// One key's problem in a table of options or settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The key, when one is to blame.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Deserialize `table` into `T`, keeping one error per offending key: each bad key is named, taken
/// out, and the rest tried again. A key not in `known` is unknown (with a did-you-mean); `what`
/// says what a key is called in messages (`key`, `option`).
pub(crate) fn deserialize_all<T: DeserializeOwned>(
    mut table: Map<String, Value>,
    known: &[&str],
    what: &str,
) -> Result<T, Vec<FieldError>> {
    let mut errors = Vec::new();
    let unknown: Vec<String> = (table.keys())
        .filter(|k| !known.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        table.remove(&key);
        errors.push(FieldError {
            message: unknown_message(what, &key, known),
            key: Some(key),
        });
    }
    loop {
        match Value::new(None, ValueKind::Table(table.clone())).try_deserialize::<T>() {
            Ok(parsed) if errors.is_empty() => return Ok(parsed),
            Ok(_) => break,
            Err(e) => {
                let (key, message) = split_error(e);
                let removed = key.as_ref().and_then(|k| table.remove(k));
                errors.push(FieldError { key, message });
                if removed.is_none() {
                    break;
                }
            }
        }
    }
    errors.sort_by(|a, b| a.key.cmp(&b.key));
    Err(errors)
}

/// The key a `config` error is about (its first segment) and its message.
fn split_error(e: config::ConfigError) -> (Option<String>, String) {
    let first = |k: &str| k.split(['.', '[']).next().unwrap_or(k).to_owned();
    match e {
        config::ConfigError::Type {
            key,
            unexpected,
            expected,
            ..
        } => (
            key.as_deref().map(first),
            format!("expected {expected}, found {unexpected}"),
        ),
        config::ConfigError::At { error, key, .. } => {
            (key.as_deref().map(first), error.to_string())
        }
        // serde's own messages quote the field: "missing field `x`".
        config::ConfigError::Message(m) => {
            let quoted = m
                .find('`')
                .and_then(|s| m[s + 1..].find('`').map(|e| m[s + 1..s + 1 + e].to_owned()));
            (quoted, m)
        }
        other => (None, other.to_string()),
    }
}

/// The field names of a struct `T`, as serde sees them (for "known" lists that cannot drift).
pub fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Fields;
    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl fmt::Display for Found {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field names")
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Found(&[])
        }
    }
    impl<'de> Deserializer<'de> for Fields {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    match T::deserialize(Fields) {
        Err(Found(fields)) => fields,
        Ok(_) => &[],
    }
}

/// `unknown option `x`; did you mean `y`? (known: a, b, c)`.
pub(crate) fn unknown_message(what: &str, name: &str, known: &[&str]) -> String {
    let mut sorted: Vec<&str> = known.to_vec();
    sorted.sort_unstable();
    let mut msg = format!("unknown {what} `{name}`");
    if let Some(best) = closest(name, &sorted) {
        msg.push_str(&format!("; did you mean `{best}`?"));
    }
    if sorted.is_empty() {
        msg.push_str(&format!(" (this {what} takes none)"));
    } else {
        msg.push_str(&format!(" (known: {})", sorted.join(", ")));
    }
    msg
}

/// The known name closest to `name`, if any is close enough to be a likely typo.
pub(crate) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: Value) -> Raw {
        v.try_deserialize().unwrap()
    }

    #[test]
    fn values_say_what_they_are() {
        assert_eq!(raw(Value::from("soon")).to_string(), "string \"soon\"");
        assert_eq!(raw(Value::from(3_i64)).to_string(), "integer 3");
        assert_eq!(raw(Value::from(true)).to_string(), "boolean true");
        let long = "x".repeat(10_000);
        assert!(Raw::Str(long).to_string().len() < 120);
    }

    #[test]
    fn seconds_are_finite_positive_and_at_most_a_day() {
        assert_eq!(
            Seconds::try_from(Raw::Float(1.5)),
            Ok(Seconds(Duration::from_millis(1500)))
        );
        assert_eq!(
            Seconds::try_from(Raw::Str("2".into())),
            Ok(Seconds(Duration::from_secs(2)))
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e300] {
            let e = Seconds::try_from(Raw::Float(bad)).unwrap_err();
            assert!(e.starts_with("must be a finite number"), "{e}");
        }
        assert_eq!(
            Seconds::try_from(Raw::Bool(true)).unwrap_err(),
            "expected a number of seconds, found boolean true"
        );
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)] // read through serde only
    struct Two {
        secs: Option<Seconds>,
        flag: Option<Flag>,
    }

    #[test]
    fn every_bad_key_is_named_once() {
        let table: Map<String, Value> = [
            ("secs".to_owned(), Value::from("soon")),
            ("flag".to_owned(), Value::from("maybe")),
            ("sec".to_owned(), Value::from(1_i64)),
        ]
        .into_iter()
        .collect();
        let errors = deserialize_all::<Two>(table, field_names::<Two>(), "key").unwrap_err();
        let keys: Vec<_> = errors.iter().filter_map(|e| e.key.as_deref()).collect();
        assert_eq!(keys, ["flag", "sec", "secs"], "{errors:?}");
        assert!(
            errors[1].message.contains("did you mean `secs`"),
            "{errors:?}"
        );
        assert_eq!(
            errors[0].message,
            "expected true or false, found string \"maybe\""
        );
    }

    #[test]
    fn field_names_are_serdes() {
        assert_eq!(field_names::<Two>(), ["secs", "flag"]);
    }
}
