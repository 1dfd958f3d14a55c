//! Words for the one-line summaries the steps give a person.

/// `1 stop`, `2 stops`: a count and its noun, plural by `s`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(super::count(1, "stop"), "1 stop");
        assert_eq!(super::count(0, "stop"), "0 stops");
        assert_eq!(super::count(12, "position"), "12 positions");
    }
}
