//! A timer trigger's schedule: six-field NCRONTAB with seconds (`{second} {minute} {hour} {day}
//! {month} {day-of-week}`, UTC), parsed with `croner`. Checked when `function.json` is read (a
//! schedule that does not parse is an error naming it) and parsed again when the timer starts.
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Parses an NCRONTAB expression with seconds. Day of month and day of week must both match
/// when both are restricted (NCrontab's reading).
pub fn parse_schedule(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(text)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn ncrontab_has_six_fields_with_seconds() {
        assert!(parse_schedule("0 */15 * * * *").is_ok());
        assert!(
            parse_schedule("*/5 * * * *").is_err(),
            "five fields are refused"
        );
        let every_second = parse_schedule("* * * * * *").unwrap();
        let now = Utc::now();
        let next = every_second.find_next_occurrence(&now, false).unwrap();
        assert!(next - now <= chrono::Duration::seconds(1));
    }
}
