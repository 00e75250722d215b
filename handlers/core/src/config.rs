//! The planner's configuration: the settings of `docs/design.md` section 5 that shape the plan.
//!
//! Parsed once from a lookup function (the environment at the binary's edge, a map in tests),
//! so this crate never reads the environment itself. A bad value is an error naming the setting.
//!
//! Also the scope of section 5 ([`Scope`]): where spokes are discovered and written, read from
//! `HUBSPOKE_SUBSCRIPTIONS` and `HUBSPOKE_MANAGEMENT_GROUPS`.
use std::collections::BTreeSet;

use ipnet::Ipv4Net;

use crate::id::VnetId;

/// Which VNets peered with a hub are spokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrollment {
    /// Every VNet peered with a hub (the default).
    All,
    /// Only VNets tagged `hubspoke:enroll=true`.
    Tagged,
}

/// What the planner needs to know beyond the observed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanConfig {
    /// `HUBSPOKE_HUBS`.
    pub hubs: Vec<VnetId>,
    /// `HUBSPOKE_ENROLLMENT`.
    pub enrollment: Enrollment,
    /// `HUBSPOKE_EXCLUDE_SUBNETS`, lower-cased.
    pub exclude_subnets: BTreeSet<String>,
    /// `HUBSPOKE_CREATE_MISSING_PEERINGS`.
    pub create_missing_peerings: bool,
    /// `HUBSPOKE_MANAGED_TABLES_ONLY`.
    pub managed_tables_only: bool,
    /// `HUBSPOKE_ALLOW_OVER_DEFAULT_ROUTE`.
    pub allow_over_default_route: bool,
    /// `HUBSPOKE_SUMMARY_PREFIXES`.
    pub summary_prefixes: Vec<Ipv4Net>,
    /// `HUBSPOKE_DISABLE_BGP_PROPAGATION`, for the tables hubspoke creates.
    pub disable_bgp_propagation: bool,
    /// `HUBSPOKE_ROUTE_LIMIT`.
    pub route_limit: usize,
}

/// The published limit of routes per route table.
pub const DEFAULT_ROUTE_LIMIT: usize = 400;
/// The largest limit Azure has (tables managed by Azure Virtual Network Manager).
pub const MAX_ROUTE_LIMIT: usize = 1000;

/// A setting with a bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {setting}={value:?} is invalid: {reason}")]
pub struct SettingError {
    pub setting: &'static str,
    pub value: String,
    pub reason: String,
}

impl PlanConfig {
    /// The defaults of `docs/design.md` section 5 for the given hubs.
    pub fn new(hubs: Vec<VnetId>) -> Self {
        PlanConfig {
            hubs,
            enrollment: Enrollment::All,
            exclude_subnets: BTreeSet::new(),
            create_missing_peerings: true,
            managed_tables_only: false,
            allow_over_default_route: false,
            summary_prefixes: Vec::new(),
            disable_bgp_propagation: false,
            route_limit: DEFAULT_ROUTE_LIMIT,
        }
    }

    /// Reads the settings through `lookup` (`HUBSPOKE_HUBS` is required). Unset and empty
    /// values take their defaults.
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let hubs_text = get("HUBSPOKE_HUBS").ok_or_else(|| SettingError {
            setting: "HUBSPOKE_HUBS",
            value: String::new(),
            reason: "it is required: a comma-separated list of hub VNet resource ids".into(),
        })?;
        let mut config = PlanConfig::new(parse_hubs(&hubs_text)?);
        if let Some(value) = get("HUBSPOKE_ENROLLMENT") {
            config.enrollment = parse_enrollment(value)?;
        }
        if let Some(value) = get("HUBSPOKE_EXCLUDE_SUBNETS") {
            config.exclude_subnets = value
                .split(',')
                .map(|name| name.trim().to_ascii_lowercase())
                .filter(|name| !name.is_empty())
                .collect();
        }
        let flag = |name: &'static str, default: bool| -> Result<bool, SettingError> {
            match get(name) {
                None => Ok(default),
                Some(value) => parse_bool(&value).ok_or_else(|| SettingError {
                    setting: name,
                    value,
                    reason: "expected true or false".into(),
                }),
            }
        };
        config.create_missing_peerings = flag("HUBSPOKE_CREATE_MISSING_PEERINGS", true)?;
        config.managed_tables_only = flag("HUBSPOKE_MANAGED_TABLES_ONLY", false)?;
        config.allow_over_default_route = flag("HUBSPOKE_ALLOW_OVER_DEFAULT_ROUTE", false)?;
        config.disable_bgp_propagation = flag("HUBSPOKE_DISABLE_BGP_PROPAGATION", false)?;
        if let Some(value) = get("HUBSPOKE_SUMMARY_PREFIXES") {
            config.summary_prefixes = parse_summary_prefixes(&value)?;
        }
        if let Some(value) = get("HUBSPOKE_ROUTE_LIMIT") {
            config.route_limit = parse_route_limit(value)?;
        }
        Ok(config)
    }
}

/// `HUBSPOKE_HUBS`: hub VNet ids, comma-separated, none twice.
fn parse_hubs(hubs_text: &str) -> Result<Vec<VnetId>, SettingError> {
    let error = |reason: String| SettingError {
        setting: "HUBSPOKE_HUBS",
        value: hubs_text.to_owned(),
        reason,
    };
    let mut hubs: Vec<VnetId> = Vec::new();
    for item in hubs_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let hub: VnetId = item
            .parse()
            .map_err(|id_error: crate::id::IdError| error(id_error.to_string()))?;
        if hubs.contains(&hub) {
            return Err(error(format!("hub {hub} is listed twice")));
        }
        hubs.push(hub);
    }
    Ok(hubs)
}

/// `HUBSPOKE_ENROLLMENT`: `all` or `tagged`.
fn parse_enrollment(value: String) -> Result<Enrollment, SettingError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "all" => Ok(Enrollment::All),
        "tagged" => Ok(Enrollment::Tagged),
        _ => Err(SettingError {
            setting: "HUBSPOKE_ENROLLMENT",
            value,
            reason: "expected \"all\" or \"tagged\"".into(),
        }),
    }
}

/// `HUBSPOKE_SUMMARY_PREFIXES`: IPv4 prefixes without host bits, comma-separated; sorted and
/// deduplicated.
fn parse_summary_prefixes(value: &str) -> Result<Vec<Ipv4Net>, SettingError> {
    let error = |reason: String| SettingError {
        setting: "HUBSPOKE_SUMMARY_PREFIXES",
        value: value.to_owned(),
        reason,
    };
    let mut prefixes = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net: Ipv4Net = item
            .parse()
            .map_err(|_| error(format!("{item:?} is not an IPv4 prefix in CIDR notation")))?;
        if net.trunc() != net {
            return Err(error(format!(
                "{item} has host bits set; did you mean {}?",
                net.trunc()
            )));
        }
        prefixes.push(net);
    }
    prefixes.sort();
    prefixes.dedup();
    Ok(prefixes)
}

/// `HUBSPOKE_ROUTE_LIMIT`: a whole number from 1 to [`MAX_ROUTE_LIMIT`].
fn parse_route_limit(value: String) -> Result<usize, SettingError> {
    value
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|limit| (1..=MAX_ROUTE_LIMIT).contains(limit))
        .ok_or_else(|| SettingError {
            setting: "HUBSPOKE_ROUTE_LIMIT",
            value,
            reason: format!("expected a whole number from 1 to {MAX_ROUTE_LIMIT}"),
        })
}

/// Where spokes are discovered and written (`docs/design.md` section 5). The hubs' own
/// subscriptions are always in scope, whatever the variant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Scope {
    /// Neither setting: the hubs' subscriptions and every subscription their peerings reach. A
    /// spoke peered from its own side only, in another subscription, is not found.
    #[default]
    Reached,
    /// `HUBSPOKE_SUBSCRIPTIONS=a,b`: exactly these subscriptions (and the hubs'), each listed every
    /// pass. Ids as given, without duplicates (compared ignoring case).
    Listed(Vec<String>),
    /// `HUBSPOKE_SUBSCRIPTIONS=*`: every subscription the identity can read (`GET /subscriptions`),
    /// a subscription vended after the deployment included.
    Readable,
    /// `HUBSPOKE_MANAGEMENT_GROUPS=a,b`: every subscription under these management groups, at any
    /// depth, present and future. Ids as given, without duplicates (compared ignoring case).
    ManagementGroups(Vec<String>),
}

/// The most subscriptions or management groups a scope setting may name: far more than one
/// deployment needs, and a bound on the queries built from them.
pub const MAX_SCOPE_ITEMS: usize = 10_000;

impl Scope {
    /// Reads `HUBSPOKE_SUBSCRIPTIONS` and `HUBSPOKE_MANAGEMENT_GROUPS` through `lookup` (empty
    /// values count as unset). Both at once are refused: the scope would be ambiguous.
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        match (
            get("HUBSPOKE_SUBSCRIPTIONS"),
            get("HUBSPOKE_MANAGEMENT_GROUPS"),
        ) {
            (None, None) => Ok(Scope::Reached),
            (Some(subscriptions), Some(_)) => Err(SettingError {
                setting: "HUBSPOKE_MANAGEMENT_GROUPS",
                value: String::new(),
                reason: format!(
                    "HUBSPOKE_SUBSCRIPTIONS is also set ({subscriptions:?}): set \
                     HUBSPOKE_SUBSCRIPTIONS (a list, or * for every readable subscription) or \
                     HUBSPOKE_MANAGEMENT_GROUPS, not both"
                ),
            }),
            (Some(value), None) => parse_subscriptions(&value),
            (None, Some(value)) => parse_management_groups(&value).map(Scope::ManagementGroups),
        }
    }

    /// Whether spokes are discovered beyond a fixed list (Resource Graph, and the subscriptions
    /// of the tenant or the management groups): `Readable` and `ManagementGroups`.
    pub fn discovers(&self) -> bool {
        matches!(self, Scope::Readable | Scope::ManagementGroups(_))
    }

    /// The scope in a few words, for messages: which setting says it.
    pub fn describe(&self) -> String {
        match self {
            Scope::Reached => {
                "the hubs' subscriptions and those their peerings reach (HUBSPOKE_SUBSCRIPTIONS unset)"
                    .to_string()
            }
            Scope::Listed(_) => "HUBSPOKE_SUBSCRIPTIONS".to_string(),
            Scope::Readable => "every subscription hubspoke can read (HUBSPOKE_SUBSCRIPTIONS=*)".to_string(),
            Scope::ManagementGroups(groups) => {
                format!("HUBSPOKE_MANAGEMENT_GROUPS ({})", groups.join(", "))
            }
        }
    }
}

/// `HUBSPOKE_SUBSCRIPTIONS`: `*` alone, or subscription ids, comma-separated.
fn parse_subscriptions(value: &str) -> Result<Scope, SettingError> {
    let error = |reason: String| SettingError {
        setting: "HUBSPOKE_SUBSCRIPTIONS",
        value: value.to_owned(),
        reason,
    };
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.contains(&"*") {
        return if items.len() == 1 {
            Ok(Scope::Readable)
        } else {
            Err(error(
                "* means every subscription hubspoke can read and stands alone: not with ids"
                    .into(),
            ))
        };
    }
    let mut subscriptions: Vec<String> = Vec::new();
    for item in items {
        // Subscription ids are GUIDs; anything that could change a URL path is refused.
        if !item.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(error(format!(
                "{item:?} is not a subscription id (a comma-separated list of subscription GUIDs, \
                 or * for every subscription hubspoke can read, is expected)"
            )));
        }
        if !subscriptions.iter().any(|s| s.eq_ignore_ascii_case(item)) {
            subscriptions.push(item.to_string());
        }
    }
    if subscriptions.len() > MAX_SCOPE_ITEMS {
        return Err(error(format!(
            "{} subscriptions: at most {MAX_SCOPE_ITEMS}; use HUBSPOKE_MANAGEMENT_GROUPS or * instead",
            subscriptions.len()
        )));
    }
    Ok(Scope::Listed(subscriptions))
}

/// `HUBSPOKE_MANAGEMENT_GROUPS`: management group ids (not display names), comma-separated. An
/// id is up to 90 letters, digits, hyphens, underscores, periods and parentheses, and does not
/// end with a period (Learn, "Create management groups": "Management group ID"); anything else
/// is refused, so that no id can change the paths and queries built from it.
fn parse_management_groups(value: &str) -> Result<Vec<String>, SettingError> {
    let error = |reason: String| SettingError {
        setting: "HUBSPOKE_MANAGEMENT_GROUPS",
        value: value.to_owned(),
        reason,
    };
    let mut groups: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')');
        if item.len() > 90 || !item.chars().all(allowed) || item.ends_with('.') {
            return Err(error(format!(
                "{item:?} is not a management group id (up to 90 letters, digits, -, _, ., ( and ), \
                 not ending with a period; the id, not the display name)"
            )));
        }
        if !groups.iter().any(|g| g.eq_ignore_ascii_case(item)) {
            groups.push(item.to_string());
        }
    }
    if groups.is_empty() {
        return Err(error("no management group id".into()));
    }
    if groups.len() > MAX_SCOPE_ITEMS {
        return Err(error(format!(
            "at most {MAX_SCOPE_ITEMS} management groups"
        )));
    }
    Ok(groups)
}

/// Parses the boolean spellings app settings use.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const HUB: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/hub";

    fn read(pairs: &[(&str, &str)]) -> Result<PlanConfig, SettingError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PlanConfig::from_settings(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let config = read(&[("HUBSPOKE_HUBS", HUB)]).expect("valid");
        assert_eq!(config, PlanConfig::new(vec![HUB.parse().expect("hub")]));
        assert_eq!(config.route_limit, 400);
        assert!(config.create_missing_peerings);
    }

    #[test]
    fn every_setting_is_read() {
        let config = read(&[
            ("HUBSPOKE_HUBS", &format!("{HUB}, {HUB}2")),
            ("HUBSPOKE_ENROLLMENT", "Tagged"),
            ("HUBSPOKE_EXCLUDE_SUBNETS", "Legacy, dmz"),
            ("HUBSPOKE_CREATE_MISSING_PEERINGS", "false"),
            ("HUBSPOKE_MANAGED_TABLES_ONLY", "true"),
            ("HUBSPOKE_ALLOW_OVER_DEFAULT_ROUTE", "1"),
            ("HUBSPOKE_SUMMARY_PREFIXES", "10.0.0.0/8,172.16.0.0/12"),
            ("HUBSPOKE_DISABLE_BGP_PROPAGATION", "yes"),
            ("HUBSPOKE_ROUTE_LIMIT", "1000"),
        ])
        .expect("valid");
        assert_eq!(config.hubs.len(), 2);
        assert_eq!(config.enrollment, Enrollment::Tagged);
        assert!(config.exclude_subnets.contains("legacy"));
        assert!(!config.create_missing_peerings);
        assert!(config.managed_tables_only && config.allow_over_default_route);
        assert!(config.disable_bgp_propagation);
        assert_eq!(config.summary_prefixes.len(), 2);
        assert_eq!(config.route_limit, 1000);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases: &[(&str, &str)] = &[
            ("HUBSPOKE_ENROLLMENT", "some"),
            ("HUBSPOKE_CREATE_MISSING_PEERINGS", "maybe"),
            ("HUBSPOKE_SUMMARY_PREFIXES", "10.0.0.1/8"),
            ("HUBSPOKE_SUMMARY_PREFIXES", "fd00::/8"),
            ("HUBSPOKE_ROUTE_LIMIT", "0"),
            ("HUBSPOKE_ROUTE_LIMIT", "1001"),
            ("HUBSPOKE_HUBS", "/subscriptions/s/resourceGroups/g"),
        ];
        for (setting, value) in cases {
            let mut pairs = vec![("HUBSPOKE_HUBS", HUB)];
            pairs.retain(|(name, _)| name != setting);
            pairs.push((setting, value));
            let error = read(&pairs).expect_err(value);
            assert_eq!(error.setting, *setting);
            assert!(error.to_string().contains(setting), "{error}");
        }
        assert_eq!(read(&[]).expect_err("required").setting, "HUBSPOKE_HUBS");
        assert_eq!(
            read(&[("HUBSPOKE_HUBS", &format!("{HUB},{HUB}"))])
                .expect_err("twice")
                .setting,
            "HUBSPOKE_HUBS"
        );
    }

    fn scope(pairs: &[(&str, &str)]) -> Result<Scope, SettingError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Scope::from_settings(|name| map.get(name).cloned())
    }

    #[test]
    fn the_scope_is_read_from_either_setting() {
        assert_eq!(scope(&[]), Ok(Scope::Reached));
        assert_eq!(
            scope(&[("HUBSPOKE_SUBSCRIPTIONS", "  ")]),
            Ok(Scope::Reached)
        );
        assert_eq!(
            scope(&[("HUBSPOKE_SUBSCRIPTIONS", " a-1, B-2 ,A-1")]),
            Ok(Scope::Listed(vec!["a-1".into(), "B-2".into()]))
        );
        assert_eq!(
            scope(&[("HUBSPOKE_SUBSCRIPTIONS", " * ")]),
            Ok(Scope::Readable)
        );
        assert_eq!(
            scope(&[(
                "HUBSPOKE_MANAGEMENT_GROUPS",
                "mg-landing-zones, Corp_(EU).1,mg-landing-zones"
            )]),
            Ok(Scope::ManagementGroups(vec![
                "mg-landing-zones".into(),
                "Corp_(EU).1".into()
            ]))
        );
        assert!(Scope::Readable.discovers());
        assert!(Scope::ManagementGroups(vec!["m".into()]).discovers());
        assert!(!Scope::Listed(vec![]).discovers() && !Scope::Reached.discovers());
    }

    #[test]
    fn a_bad_scope_names_its_setting() {
        for (setting, value) in [
            ("HUBSPOKE_SUBSCRIPTIONS", "a/../b"),
            ("HUBSPOKE_SUBSCRIPTIONS", "a b"),
            ("HUBSPOKE_SUBSCRIPTIONS", "*,a-1"),
            ("HUBSPOKE_SUBSCRIPTIONS", "?"),
            ("HUBSPOKE_MANAGEMENT_GROUPS", "mg/../x"),
            ("HUBSPOKE_MANAGEMENT_GROUPS", "ends."),
            ("HUBSPOKE_MANAGEMENT_GROUPS", "with space"),
            ("HUBSPOKE_MANAGEMENT_GROUPS", "quote'd"),
            ("HUBSPOKE_MANAGEMENT_GROUPS", ","),
        ] {
            let error = scope(&[(setting, value)]).expect_err(value);
            assert_eq!(error.setting, setting, "{value}");
            assert!(error.to_string().contains(setting), "{error}");
        }
        let long = "m".repeat(91);
        assert!(scope(&[("HUBSPOKE_MANAGEMENT_GROUPS", &long)]).is_err());
    }

    #[test]
    fn both_scope_settings_at_once_are_refused_naming_both() {
        for subscriptions in ["a-1", "*"] {
            let error = scope(&[
                ("HUBSPOKE_SUBSCRIPTIONS", subscriptions),
                ("HUBSPOKE_MANAGEMENT_GROUPS", "mg"),
            ])
            .expect_err("both");
            let text = error.to_string();
            assert!(
                text.contains("HUBSPOKE_SUBSCRIPTIONS")
                    && text.contains("HUBSPOKE_MANAGEMENT_GROUPS"),
                "{text}"
            );
        }
    }
}
