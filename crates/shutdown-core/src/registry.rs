//! The step registry: kinds submitted through `inventory`, looked up by name when a pipeline is built.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;

use crate::fields::{closest, unknown_message};
use crate::step::{ShutdownStep, StepDefaults};
use crate::trading::roles::{MissingRole, Node, Role};

use crate::options::OptionDoc;

/// A step kind's validated options, ready to build the step for a node.
pub trait StepConfig: std::any::Any + Send + Sync + fmt::Debug {
    /// Build the step; fails when the node lacks a role the step needs.
    fn build(&self, node: &Node) -> Result<Box<dyn ShutdownStep>, MissingRole>;

    /// Check the values' ranges once the types are right (a rate above 0, a percentage below 100):
    /// every problem, each naming its key. Called when the config is validated, so that a value
    /// that would fail at shutdown fails at `validate` instead.
    fn validate(&self) -> Vec<OptionError> {
        Vec::new()
    }
}

/// A problem when `value` of `key` is not within `min..=max` (and, for floats, finite).
///
/// ```
/// use shutdown_core::out_of_range;
/// assert!(out_of_range("retries", 3, 0, 100).is_none());
/// let e = out_of_range("rate_per_sec", f64::NAN, 0.0, 1e6).unwrap();
/// assert_eq!(e.message, "must be a finite number from 0 to 1000000, found NaN");
/// let e = out_of_range("rate_per_sec", 1e-300, 0.01, 1e6).unwrap();
/// assert_eq!(e.message, "must be a finite number from 0.01 to 1000000, found 1e-300");
/// ```
pub fn out_of_range<T>(key: &str, value: T, min: T, max: T) -> Option<OptionError>
where
    T: PartialOrd + fmt::Display + fmt::Debug + Copy,
{
    // NaN is in no range: every comparison with it is false.
    let within = value >= min && value <= max;
    let number = if std::any::type_name::<T>().starts_with('f') {
        "a finite number"
    } else {
        "a whole number"
    };
    (!within).then(|| OptionError {
        key: Some(key.to_owned()),
        message: format!("must be {number} from {min} to {max}, found {value:?}"),
    })
}

/// Options of a step table, less the keys common to every step.
#[derive(Debug, Clone, Default)]
pub struct StepOptions {
    pub(crate) table: config::Map<String, config::Value>,
}

impl StepOptions {
    pub(crate) fn new(table: config::Map<String, config::Value>) -> Self {
        Self { table }
    }

    /// Options from key/value pairs (for building pipelines in code and for tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, OptionValue)>) -> Self {
        let table = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_config()))
            .collect();
        Self { table }
    }

    /// The keys present.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.table.keys().map(String::as_str)
    }
}

/// A plain option value, for [`StepOptions::from_pairs`].
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// String.
    Str(String),
}

impl OptionValue {
    fn into_config(self) -> config::Value {
        let kind = match self {
            OptionValue::Bool(b) => config::ValueKind::Boolean(b),
            OptionValue::Int(i) => config::ValueKind::I64(i),
            OptionValue::Float(f) => config::ValueKind::Float(f),
            OptionValue::Str(s) => config::ValueKind::String(s),
        };
        config::Value::new(None, kind)
    }
}

/// A problem with one option of a step.
pub type OptionError = crate::fields::FieldError;

/// Parse a step's options into `T`, gathering one error per offending key: a key not in `docs` is
/// unknown (with a did-you-mean), and each key of the wrong type or value is named.
pub(crate) fn parse_options<T: DeserializeOwned>(
    options: &StepOptions,
    docs: &[OptionDoc],
) -> Result<T, Vec<OptionError>> {
    let known: Vec<&str> = docs.iter().map(|d| d.name).collect();
    crate::fields::deserialize_all(options.table.clone(), &known, "option").map_err(|errors| {
        errors
            .into_iter()
            .map(|mut e| {
                // serde names an enum's Rust type; the documented type lists the choices.
                let doc = docs.iter().find(|d| Some(d.name) == e.key.as_deref());
                if let (Some(doc), true) = (doc, e.message.contains("variant")) {
                    let found = (options.table.get(doc.name))
                        .map(|v| format!("{:?}", v.to_string()))
                        .unwrap_or_default();
                    e.message = format!("expected one of {}, found {found}", doc.ty);
                }
                e
            })
            .collect()
    })
}

/// Parses a step's options (the `parse` of a [`StepRegistration`]).
pub type ParseFn = fn(&StepOptions) -> Result<Box<dyn StepConfig>, Vec<OptionError>>;

/// Register a step kind. Submit one with `inventory::submit!` (see the crate docs).
#[derive(Debug)]
pub struct StepRegistration {
    /// The kind, as written in `[[steps]] kind = "..."`: short snake_case.
    pub kind: &'static str,
    /// One line saying what the step does.
    pub summary: &'static str,
    /// The step's own options, documented.
    pub options: fn() -> Vec<OptionDoc>,
    /// Roles the step needs from the node.
    pub requires: &'static [Role],
    /// Timeout and criticality when the config sets none (the step's own
    /// [`crate::ShutdownStep::defaults`]).
    pub defaults: StepDefaults,
    /// Parse and validate the options (no I/O).
    pub parse: ParseFn,
    /// The fields of the options struct, as serde reads them (to check `options` against).
    pub fields: fn() -> &'static [&'static str],
}

inventory::collect!(StepRegistration);

/// Parse options into `T` and box it: the usual `parse` function of a registration.
pub fn parse_boxed<T: StepConfig + DeserializeOwned>(
    options: &StepOptions,
    docs: &[OptionDoc],
) -> Result<Box<dyn StepConfig>, Vec<OptionError>> {
    let config = parse_options::<T>(options, docs)?;
    let problems = config.validate();
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Box::new(config))
}

/// Submit a step kind to the registry. The options are the config's own, declared once with
/// [`step_options!`](crate::step_options); the defaults are the step's ([`crate::StepDefaults`]).
///
/// ```ignore
/// shutdown_core::register_step! {
///     kind: "notify",
///     summary: "Post a message to the operators' channel.",
///     config: NotifyConfig,
///     requires: [],
///     defaults: DEFAULTS,
/// }
/// ```
///
/// A config documented by hand names its `options: &[OptionDoc]`; `critical:` and
/// `default_timeout_secs:` may stand for `defaults:`.
#[macro_export]
macro_rules! register_step {
    (
        kind: $kind:expr,
        summary: $summary:expr,
        config: $config:ty,
        requires: [$($role:ident),* $(,)?],
        defaults: $defaults:expr $(,)?
    ) => {
        $crate::register_step! {
            kind: $kind,
            summary: $summary,
            config: $config,
            options: &<$config>::option_docs(),
            requires: [$($role),*],
            defaults: $defaults,
        }
    };
    (
        kind: $kind:expr,
        summary: $summary:expr,
        config: $config:ty,
        options: $options:expr,
        requires: [$($role:ident),* $(,)?],
        defaults: $defaults:expr $(,)?
    ) => {
        $crate::__private::inventory::submit! {
            $crate::StepRegistration {
                kind: $kind,
                summary: $summary,
                options: || $options.to_vec(),
                requires: &[$($crate::node::Role::$role),*],
                defaults: $defaults,
                parse: |options| $crate::__private::parse_boxed::<$config>(options, $options),
                fields: || $crate::__private::field_names::<$config>(),
            }
        }
    };
    (
        kind: $kind:expr,
        summary: $summary:expr,
        config: $config:ty,
        options: $options:expr,
        requires: [$($role:ident),* $(,)?],
        critical: $critical:expr,
        default_timeout_secs: $timeout:expr $(,)?
    ) => {
        $crate::register_step! {
            kind: $kind,
            summary: $summary,
            config: $config,
            options: $options,
            requires: [$($role),*],
            defaults: $crate::StepDefaults::new($timeout, $critical),
        }
    };
}

/// The lookup table of registered step kinds, built once.
#[derive(Debug)]
pub struct Registry {
    kinds: BTreeMap<&'static str, &'static StepRegistration>,
}

/// A step kind that is not registered in this program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind {
    /// The kind asked for.
    pub kind: String,
    /// Every registered kind, sorted.
    pub known: Vec<&'static str>,
}

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&unknown_message("step kind", &self.kind, &self.known))?;
        if closest(&self.kind, &self.known).is_none() {
            // The usual cause: the crate that registers it is a dependency no code names.
            f.write_str("; a kind from another crate is registered only when the program links that crate: name it once, as in `extern crate my_steps as _;`")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownKind {}

/// The registry could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two registrations share a kind.
    #[error(
        "step kind `{kind}` is registered more than once (summaries: {summaries:?}); registered kinds: {known}"
    )]
    Duplicate {
        /// The kind.
        kind: &'static str,
        /// The summaries of the clashing registrations.
        summaries: Vec<&'static str>,
        /// Every registered kind, sorted.
        known: String,
    },
}

impl Registry {
    /// Build a registry from registrations; a kind registered twice is an error.
    pub fn from_registrations(
        regs: impl IntoIterator<Item = &'static StepRegistration>,
    ) -> Result<Registry, RegistryError> {
        let mut kinds: BTreeMap<&'static str, &'static StepRegistration> = BTreeMap::new();
        let mut duplicate = None;
        for reg in regs {
            if let Some(prev) = kinds.insert(reg.kind, reg) {
                duplicate.get_or_insert((reg.kind, vec![prev.summary, reg.summary]));
            }
        }
        match duplicate {
            Some((kind, summaries)) => Err(RegistryError::Duplicate {
                kind,
                summaries,
                known: kinds.keys().copied().collect::<Vec<_>>().join(", "),
            }),
            None => Ok(Registry { kinds }),
        }
    }

    /// The registry of every kind submitted through `inventory` in this binary.
    pub fn global() -> Result<&'static Registry, RegistryError> {
        static GLOBAL: OnceLock<Result<Registry, RegistryError>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Registry::from_registrations(inventory::iter::<StepRegistration>))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Look a kind up; the error lists the known kinds and the closest one.
    pub fn get(&self, kind: &str) -> Result<&'static StepRegistration, UnknownKind> {
        self.kinds.get(kind).copied().ok_or_else(|| UnknownKind {
            kind: kind.to_owned(),
            known: self.kind_names(),
        })
    }

    /// Check at start that every kind this program relies on is registered (its crate linked): the
    /// first missing one, with the linking hint, rather than a config error at the first use.
    ///
    /// ```
    /// use shutdown_core::Registry;
    /// let registry = Registry::global().unwrap();
    /// let missing = registry.require(&["no-such-kind"]).unwrap_err();
    /// assert!(missing.to_string().contains("extern crate"));
    /// ```
    pub fn require(&self, kinds: &[&str]) -> Result<(), UnknownKind> {
        kinds.iter().try_for_each(|k| self.get(k).map(|_| ()))
    }

    /// Every registered kind, sorted.
    pub fn kind_names(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// Every registration, sorted by kind.
    pub fn registrations(&self) -> impl Iterator<Item = &'static StepRegistration> + '_ {
        self.kinds.values().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_ignores_strangers() {
        let known = ["cancel", "close", "flush", "halt", "verify"];
        assert_eq!(closest("cancle", &known), Some("cancel"));
        assert_eq!(closest("veryfy", &known), Some("verify"));
        assert_eq!(closest("archive", &known), None);
    }

    #[test]
    fn unknown_message_lists_sorted_known_names() {
        let msg = unknown_message("step kind", "hlat", &["verify", "halt", "cancel"]);
        assert_eq!(
            msg,
            "unknown step kind `hlat`; did you mean `halt`? (known: cancel, halt, verify)"
        );
    }

    static A: StepRegistration = StepRegistration {
        kind: "a",
        summary: "first",
        options: Vec::new,
        requires: &[],
        defaults: crate::StepDefaults::new(1.0, false),
        parse: |_| Err(vec![]),
        fields: || &[],
    };
    static A2: StepRegistration = StepRegistration {
        kind: "a",
        summary: "second",
        options: Vec::new,
        requires: &[],
        defaults: crate::StepDefaults::new(1.0, false),
        parse: |_| Err(vec![]),
        fields: || &[],
    };

    #[test]
    fn a_kind_registered_twice_is_an_error_naming_it() {
        let err = Registry::from_registrations([&A, &A2]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`a` is registered more than once"), "{msg}");
        assert!(msg.contains("first") && msg.contains("second"), "{msg}");
    }

    #[test]
    fn parse_options_names_every_bad_key() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Opts {
            #[serde(default)]
            rate: f64,
            #[serde(default)]
            retries: u32,
        }
        const DOCS: &[OptionDoc] = &[
            OptionDoc::new("rate", "float", "1.0", ""),
            OptionDoc::new("retries", "integer", "3", ""),
        ];
        let options = StepOptions::from_pairs([
            ("rate", OptionValue::Str("fast".into())),
            ("retries", OptionValue::Str("many".into())),
            ("retires", OptionValue::Int(2)),
        ]);
        let errors = parse_options::<Opts>(&options, DOCS).unwrap_err();
        let keys: Vec<_> = errors.iter().filter_map(|e| e.key.clone()).collect();
        assert_eq!(keys, ["rate", "retires", "retries"], "{errors:?}");
        assert!(errors[1].message.contains("did you mean `retries`"));
    }

    #[allow(unreachable_pub)] // what step_options! declares is public, as in a step crate
    mod declared {
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Mode {
            Quick,
            Thorough,
        }

        impl crate::OptionType for Mode {
            const NAME: &'static str = "\"quick\" | \"thorough\"";
        }

        crate::step_options! {
            /// Options of a test kind.
            pub struct Declared {
                /// Requests in flight.
                /// At most this many.
                pub max_in_flight: usize = 8,
                /// Per second; 0 for no pacing.
                pub rate: f64 = 0.0,
                /// How.
                pub mode: Mode = Mode::Quick,
                /// Where, if anywhere.
                pub url: Option<String> = None,
                /// The variable.
                pub url_env: String = "REDIS_URL".into(),
            }
        }
    }

    #[test]
    fn declared_options_are_documented_from_their_declaration() {
        let docs = declared::Declared::option_docs();
        let shown: Vec<(&str, &str, &str, &str)> = (docs.iter())
            .map(|d| (d.name, d.ty, &*d.default, &*d.doc))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "max_in_flight",
                    "integer",
                    "8",
                    "Requests in flight. At most this many."
                ),
                ("rate", "float", "0.0", "Per second; 0 for no pacing."),
                ("mode", "\"quick\" | \"thorough\"", "\"quick\"", "How."),
                ("url", "string", "none", "Where, if anywhere."),
                ("url_env", "string", "\"REDIS_URL\"", "The variable."),
            ]
        );
        // What is documented is what an empty table gives, and every key is a field serde reads.
        let empty: declared::Declared = parse_options(&StepOptions::default(), &docs).unwrap();
        assert_eq!(empty.max_in_flight, 8);
        assert_eq!(empty.mode, declared::Mode::Quick);
        let unknown = StepOptions::from_pairs([("max_inflight", OptionValue::Int(2))]);
        let errors = parse_options::<declared::Declared>(&unknown, &docs).unwrap_err();
        assert!(
            errors[0].message.contains("did you mean `max_in_flight`"),
            "{errors:?}"
        );
    }
}
