//! Disappearing-message timers as people type them, in the CLI and the TUI alike: `30s`,
//! `90m`, `1h`, `7d`, or `off`.

/// Seconds, `None` for `off`. Zero is not a timer.
pub fn parse_timer(s: &str) -> Result<Option<u64>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match humantime::parse_duration(s) {
        Ok(d) if d.as_secs() > 0 => Ok(Some(d.as_secs())),
        Ok(_) => Err("not a duration of at least one second (e.g. 30s, 1h, 7d, off)".into()),
        Err(_) => Err(format!("not a duration: {s:?} (e.g. 30s, 1h, 7d, off)")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_timer;

    #[test]
    fn timers() {
        assert_eq!(parse_timer("30s"), Ok(Some(30)));
        assert_eq!(parse_timer("1h"), Ok(Some(3600)));
        assert_eq!(parse_timer("7d"), Ok(Some(7 * 86_400)));
        assert_eq!(parse_timer("OFF"), Ok(None));
        for bad in ["0s", "soon", "", "٣٠s", "-1s"] {
            assert!(
                parse_timer(bad).unwrap_err().contains("not a duration"),
                "{bad}"
            );
        }
    }
}
