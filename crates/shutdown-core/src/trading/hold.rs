//! A hold on trading from outside the node.

use std::fmt;
use std::sync::Arc;

/// Something outside the node that forbids trading, such as a fleet halt: handed to the steps as
/// an extension, it keeps the start gate's `resume` from opening the trading gate while it holds.
#[derive(Clone)]
pub struct TradingHold(Arc<dyn Fn() -> Option<String> + Send + Sync>);

impl TradingHold {
    /// A hold that asks `why` each time: `Some(reason)` while trading is forbidden.
    pub fn new(why: impl Fn() -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(why))
    }

    /// Why trading is forbidden now, or `None`.
    pub fn why(&self) -> Option<String> {
        (self.0)()
    }
}

impl fmt::Debug for TradingHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TradingHold").field(&self.why()).finish()
    }
}
