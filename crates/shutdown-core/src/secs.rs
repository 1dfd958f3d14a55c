//! How a duration is written in every message: seconds, at most three decimals.

/// Seconds as the report words them: at most three decimals, no trailing zeros (`0.2s`, `8s`,
/// `2.895s`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(shutdown_core::secs(Duration::from_secs_f64(2.8945791610000002)), "2.895s");
/// assert_eq!(shutdown_core::secs(Duration::from_millis(200)), "0.2s");
/// assert_eq!(shutdown_core::secs(Duration::from_secs(8)), "8s");
/// ```
pub fn secs(d: std::time::Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64());
    format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
}
