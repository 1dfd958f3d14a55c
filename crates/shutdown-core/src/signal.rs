//! The signals a shutdown answers to, by name and number: a leaf the handle's reasons and the
//! listener both use.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use signal_hook::consts::signal;

/// A signal that can trigger and escalate a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// `SIGHUP`.
    Hup,
    /// `SIGINT` (Ctrl+C).
    Int,
    /// `SIGQUIT`.
    Quit,
    /// `SIGTERM` (Kubernetes, `docker stop`, systemd).
    Term,
    /// `SIGUSR1`.
    Usr1,
    /// `SIGUSR2`.
    Usr2,
}

impl Signal {
    /// Every signal a config may name.
    pub const ALL: [Signal; 6] = [
        Signal::Hup,
        Signal::Int,
        Signal::Quit,
        Signal::Term,
        Signal::Usr1,
        Signal::Usr2,
    ];

    /// The name, as in `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Quit => "SIGQUIT",
            Signal::Term => "SIGTERM",
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
        }
    }

    /// The signal's number on this platform.
    pub fn number(self) -> i32 {
        match self {
            Signal::Hup => signal::SIGHUP,
            Signal::Int => signal::SIGINT,
            Signal::Quit => signal::SIGQUIT,
            Signal::Term => signal::SIGTERM,
            Signal::Usr1 => signal::SIGUSR1,
            Signal::Usr2 => signal::SIGUSR2,
        }
    }

    pub(crate) fn from_number(number: i32) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.number() == number)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of [`Signal::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signal {name:?} (known: SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2)")]
pub struct UnknownSignal {
    /// The name as given.
    pub name: String,
}

impl FromStr for Signal {
    type Err = UnknownSignal;

    /// `SIGTERM`, `sigterm` or `TERM`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        Signal::ALL
            .into_iter()
            .find(|sig| sig.name() == full)
            .ok_or(UnknownSignal { name: full })
    }
}

impl Serialize for Signal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signal_has_a_number_and_back_and_parses_from_its_name() {
        for signal in Signal::ALL {
            assert_eq!(Signal::from_number(signal.number()), Some(signal));
            assert_eq!(signal.name().parse::<Signal>(), Ok(signal));
        }
        assert_eq!("term".parse::<Signal>(), Ok(Signal::Term));
        assert_eq!(" SigInt ".parse::<Signal>(), Ok(Signal::Int));
        let err = "SIGBOGUS".parse::<Signal>().unwrap_err();
        assert!(err.to_string().contains("SIGBOGUS"), "{err}");
    }
}
