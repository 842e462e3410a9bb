//! What the status page calls the parts of the service an incident can
//! touch ([`ComponentName`]) and the states they can be in
//! ([`ComponentStatus`]). Here, beside the incident, because commands name
//! them; the page's rules are in `crate::status`.

use std::fmt;

use super::Severity;

/// A component's state, from best to worst (`Ord` follows that order, so the
/// worst of several is their `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentStatus {
    Operational,
    UnderMaintenance,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl ComponentStatus {
    pub const ALL: [ComponentStatus; 5] = [
        ComponentStatus::Operational,
        ComponentStatus::UnderMaintenance,
        ComponentStatus::DegradedPerformance,
        ComponentStatus::PartialOutage,
        ComponentStatus::MajorOutage,
    ];

    /// The state an open incident of this severity puts a component in:
    /// P0 "complete service unavailability" → major outage, P1 "major
    /// functionality down" → partial outage, P2 and P3 → degraded performance
    /// (runbook 000's severity classes).
    pub fn from_severity(severity: Severity) -> Self {
        match severity {
            Severity::P0 => ComponentStatus::MajorOutage,
            Severity::P1 => ComponentStatus::PartialOutage,
            Severity::P2 | Severity::P3 => ComponentStatus::DegradedPerformance,
        }
    }

    /// Statuspage's value: `operational`, `degraded_performance` …
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "operational",
            ComponentStatus::UnderMaintenance => "under_maintenance",
            ComponentStatus::DegradedPerformance => "degraded_performance",
            ComponentStatus::PartialOutage => "partial_outage",
            ComponentStatus::MajorOutage => "major_outage",
        }
    }

    /// As a person reads it: "Partial outage".
    pub fn label(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::UnderMaintenance => "Under maintenance",
            ComponentStatus::DegradedPerformance => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
        }
    }

    /// Accepts Statuspage's value, with hyphens or spaces for the underscores.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let s = match s.as_str() {
            "degraded" => "degraded_performance",
            "maintenance" => "under_maintenance",
            "ok" | "up" => "operational",
            other => other,
        };
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The page's overall indicator (Statuspage's `status.indicator`):
    /// `none`, `maintenance`, `minor`, `major`, `critical`.
    pub fn indicator(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "none",
            ComponentStatus::UnderMaintenance => "maintenance",
            ComponentStatus::DegradedPerformance => "minor",
            ComponentStatus::PartialOutage => "major",
            ComponentStatus::MajorOutage => "critical",
        }
    }

    /// The page's headline for this overall state.
    pub fn headline(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "All systems operational",
            ComponentStatus::UnderMaintenance => "Scheduled maintenance in progress",
            ComponentStatus::DegradedPerformance => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
        }
    }
}

impl fmt::Display for ComponentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A component's name as commands and the config say it: 1–40 lowercase
/// letters, digits, `-` or `_` (`checkout`, `api-eu`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentName(String);

impl ComponentName {
    /// Case does not matter (`Checkout` is `checkout`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let lower = s.trim().to_ascii_lowercase();
        let s = lower.as_str();
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(ComponentName(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a component name: use 1–40 lowercase letters, digits, `-` or `_`"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ComponentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
