//! A step's options, written once. [`step_options!`](crate::step_options) makes, from one list of
//! fields (each with its doc comment, its type and its default), the options struct serde reads
//! (every key optional, unknown keys refused), its `Default`, and its documentation
//! ([`OptionDoc`]: name, type, default, meaning): `shutdownctl steps`, the man page, the generated
//! reference and validation all read that, so none of them can disagree with the code.

use std::borrow::Cow;
use std::path::PathBuf;

use serde::Serialize;

/// The documentation of one option of a step kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OptionDoc {
    /// Key in the step's TOML table.
    pub name: &'static str,
    /// Value type as written in TOML (`float`, `bool`, `integer`, `string`, `"a" | "b"`).
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Default, as written in TOML (`none` when the option is unset by default).
    pub default: Cow<'static, str>,
    /// What the option means.
    pub doc: Cow<'static, str>,
}

impl OptionDoc {
    /// An option documented by hand (for options not declared with `step_options!`).
    pub const fn new(
        name: &'static str,
        ty: &'static str,
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            ty,
            default: Cow::Borrowed(default),
            doc: Cow::Borrowed(doc),
        }
    }
}

/// How an option's type reads in its documentation.
///
/// An enum of choices says them: `"report" | "place_stop"`.
pub trait OptionType {
    /// The type as the documentation names it.
    const NAME: &'static str;
}

macro_rules! option_types {
    ($($name:literal: $($t:ty),+;)*) => {
        $($(impl OptionType for $t { const NAME: &'static str = $name; })+)*
    };
}

option_types! {
    "bool": bool;
    "integer": u8, u16, u32, u64, usize, i32, i64;
    "float": f64;
    "string": String, PathBuf;
    "decimal": rust_decimal::Decimal;
}

impl<T: OptionType> OptionType for Option<T> {
    const NAME: &'static str = T::NAME;
}

/// Each field's default, as TOML writes it, from the options' `Default` (what `step_options!`
/// documents): `8`, `true`, `0.5`, `"REDIS_URL"`, `"report"`; `none` for an unset optional value.
pub fn defaults_of<T: Serialize>(defaults: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(defaults) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => serde_json::Map::new(),
    }
}

/// The default of `field`, of type `ty` ([`OptionType::NAME`]), as documented.
pub fn shown_default(
    defaults: &serde_json::Map<String, serde_json::Value>,
    field: &str,
    ty: &str,
) -> Cow<'static, str> {
    Cow::Owned(match defaults.get(field) {
        None | Some(serde_json::Value::Null) => "none".to_owned(),
        // A decimal serialises as text; TOML takes it as a number.
        Some(serde_json::Value::String(s)) if ty == "decimal" => s.clone(),
        Some(serde_json::Value::Number(n)) => match n.as_f64() {
            // A float default reads as a float (`0.0`), as TOML wants it for a float option.
            Some(f) if n.is_f64() && f.fract() == 0.0 => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Some(value) => value.to_string(),
    })
}

/// A doc comment's lines as one paragraph.
pub fn doc_text(lines: &[&'static str]) -> Cow<'static, str> {
    Cow::Owned(
        lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Declare a step kind's options once: the struct, its `Default` and its documentation.
///
/// Every field has a doc comment (what the option means, as `shutdownctl steps` shows it), a type
/// with an [`OptionType`] and a default (`= value`). The struct reads
/// every key as optional and refuses unknown keys; `Type::option_docs()` documents it for
/// [`register_step!`](crate::register_step). Needs `serde` (with `derive`) in the calling crate.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// shutdown_core::step_options! {
///     /// Options of `archive`.
///     pub struct ArchiveOptions {
///         /// Where to post.
///         pub channel: String = "#ops".into(),
///         /// Entries a batch.
///         pub batch: usize = 100,
///     }
/// }
///
/// let docs = ArchiveOptions::option_docs();
/// assert_eq!((docs[0].name, docs[0].ty, &*docs[0].default), ("channel", "string", "\"#ops\""));
/// assert_eq!((docs[1].name, &*docs[1].default, &*docs[1].doc), ("batch", "100", "Entries a batch."));
/// assert_eq!(ArchiveOptions::default().batch, 100);
/// ```
#[macro_export]
macro_rules! step_options {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $fvis:vis $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(deny_unknown_fields, default)]
        $vis struct $name {
            $( $(#[doc = $doc])+ $fvis $field: $ty, )*
        }

        impl ::core::default::Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $name {
            /// Every option: its name, type, default and meaning, from the declaration.
            pub fn option_docs() -> ::std::vec::Vec<$crate::OptionDoc> {
                let defaults = $crate::__private::defaults_of(&<Self as ::core::default::Default>::default());
                ::std::vec![$(
                    $crate::OptionDoc {
                        name: ::core::stringify!($field),
                        ty: <$ty as $crate::OptionType>::NAME,
                        default: $crate::__private::shown_default(
                            &defaults,
                            ::core::stringify!($field),
                            <$ty as $crate::OptionType>::NAME,
                        ),
                        doc: $crate::__private::doc_text(&[$($doc),+]),
                    },
                )*]
            }
        }
    };
}
