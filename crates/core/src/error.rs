//! Errors as the logs show them.

/// An error and every cause under it, `outer: cause: root`. Client libraries (tokio-postgres,
/// reqwest) print only their outermost kind ("error sending request", "db error"); the cause
/// says what went wrong (refused, an untrusted certificate).
pub fn chain(e: &(dyn std::error::Error + '_)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_named() {
        let e = Outer(std::io::Error::other("root"));
        assert_eq!(super::chain(&e), "outer: root");
        assert_eq!(super::chain(&std::io::Error::other("alone")), "alone");
    }
}
