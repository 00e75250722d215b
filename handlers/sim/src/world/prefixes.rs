//! Address prefixes: parsing, canonical form and overlaps.

use std::str::FromStr;

use ipnet::IpNet;

/// Parses a prefix and tells whether it is canonical (host bits zero).
pub(super) fn parse_prefix(text: &str) -> Option<(IpNet, bool)> {
    let net = IpNet::from_str(text.trim()).ok()?;
    Some((net, net.trunc() == net))
}

pub(super) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    match (a, b) {
        (IpNet::V4(_), IpNet::V4(_)) | (IpNet::V6(_), IpNet::V6(_)) => {
            a.contains(&b.network()) || b.contains(&a.network())
        }
        _ => false,
    }
}

pub(super) fn nets(prefixes: &[String]) -> Vec<IpNet> {
    prefixes
        .iter()
        .filter_map(|p| IpNet::from_str(p).ok())
        .collect()
}

pub(super) fn overlap_between(a: &[String], b: &[String]) -> Option<String> {
    let (an, bn) = (nets(a), nets(b));
    for x in &an {
        for y in &bn {
            if overlaps(x, y) {
                let inner = if x.prefix_len() >= y.prefix_len() {
                    x
                } else {
                    y
                };
                return Some(inner.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_prefixes_are_recognised() {
        assert_eq!(parse_prefix("10.0.0.0/16").map(|p| p.1), Some(true));
        assert_eq!(parse_prefix("10.0.0.1/16").map(|p| p.1), Some(false));
        assert!(parse_prefix("banana").is_none());
    }

    #[test]
    fn overlap_is_reported_with_the_inner_prefix() {
        let a = vec!["10.0.0.0/16".to_string()];
        let b = vec!["10.0.1.0/24".to_string(), "192.168.0.0/24".to_string()];
        assert_eq!(overlap_between(&a, &b).as_deref(), Some("10.0.1.0/24"));
        assert_eq!(overlap_between(&a, &["10.1.0.0/16".to_string()]), None);
    }
}
