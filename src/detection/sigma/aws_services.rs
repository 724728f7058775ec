//! Sigma `service` names of AWS services, and the CloudTrail `eventSource`
//! of each.
//!
//! SigmaHQ writes CloudTrail rules as `product: aws, service: cloudtrail`,
//! but other community rule sets name the AWS service the events come from
//! (`service: iam`, `ec2`, `s3`, ...), meaning "CloudTrail events of that
//! service". Such a rule applies to CloudTrail records whose `eventSource`
//! is that service's endpoint. Most endpoints are the service name followed
//! by `.amazonaws.com`; the table below holds the ones that are not, and
//! the names that mean more than one endpoint. This is the one place that
//! knows them.

/// Services whose endpoint is not `NAME.amazonaws.com`, or that have
/// several: (Sigma service name, event sources).
const EXCEPTIONS: &[(&str, &[&str])] = &[
    ("cloudwatch", &["monitoring.amazonaws.com"]),
    ("monitoring", &["monitoring.amazonaws.com"]),
    ("cloudwatchlogs", &["logs.amazonaws.com"]),
    ("cloudwatch_logs", &["logs.amazonaws.com"]),
    ("eventbridge", &["events.amazonaws.com"]),
    ("elb", &["elasticloadbalancing.amazonaws.com"]),
    ("alb", &["elasticloadbalancing.amazonaws.com"]),
    ("efs", &["elasticfilesystem.amazonaws.com"]),
    ("emr", &["elasticmapreduce.amazonaws.com"]),
    ("opensearch", &["es.amazonaws.com"]),
    ("elasticsearch", &["es.amazonaws.com"]),
    ("stepfunctions", &["states.amazonaws.com"]),
    ("macie", &["macie2.amazonaws.com", "macie.amazonaws.com"]),
    (
        "inspector",
        &["inspector2.amazonaws.com", "inspector.amazonaws.com"],
    ),
    (
        "waf",
        &[
            "waf.amazonaws.com",
            "wafv2.amazonaws.com",
            "waf-regional.amazonaws.com",
        ],
    ),
    (
        "sso",
        &[
            "sso.amazonaws.com",
            "sso-directory.amazonaws.com",
            "identitystore.amazonaws.com",
        ],
    ),
    (
        "identitycenter",
        &[
            "sso.amazonaws.com",
            "sso-directory.amazonaws.com",
            "identitystore.amazonaws.com",
        ],
    ),
    ("signin", &["signin.amazonaws.com"]),
    ("console", &["signin.amazonaws.com"]),
    (
        "cognito",
        &[
            "cognito-idp.amazonaws.com",
            "cognito-identity.amazonaws.com",
        ],
    ),
    (
        "route53",
        &["route53.amazonaws.com", "route53domains.amazonaws.com"],
    ),
    ("ses", &["ses.amazonaws.com", "email.amazonaws.com"]),
    (
        "bedrock",
        &["bedrock.amazonaws.com", "bedrock-agent.amazonaws.com"],
    ),
    ("guardduty", &["guardduty.amazonaws.com"]),
    ("s3", &["s3.amazonaws.com", "s3-outposts.amazonaws.com"]),
];

/// Services that are not a source of CloudTrail events but the trail
/// itself: rules with these names read every CloudTrail record.
const WHOLE_TRAIL: &[&str] = &["cloudtrail"];

/// The event sources a rule with `product: aws, service: SERVICE` reads, or
/// `None` when it reads every CloudTrail record (`cloudtrail`).
pub fn event_sources(service: &str) -> Option<Vec<String>> {
    let service = service.trim().to_ascii_lowercase();
    if WHOLE_TRAIL.contains(&service.as_str()) {
        return None;
    }
    if let Some((_, sources)) = EXCEPTIONS.iter().find(|(name, _)| *name == service) {
        return Some(sources.iter().map(|s| (*s).to_owned()).collect());
    }
    // Already an endpoint (`iam.amazonaws.com`): taken as written.
    if service.ends_with(".amazonaws.com") {
        return Some(vec![service]);
    }
    Some(vec![format!("{service}.amazonaws.com")])
}

/// Whether a rule's `product` and `service` name an AWS service whose
/// CloudTrail events it reads (not the whole trail).
pub fn is_service_of_trail(product: Option<&str>, service: Option<&str>) -> bool {
    product.is_some_and(|p| p.eq_ignore_ascii_case("aws"))
        && service.is_some_and(|s| event_sources(s).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_services_are_their_name_and_the_exceptions_are_known() {
        assert_eq!(event_sources("iam").unwrap(), ["iam.amazonaws.com"]);
        assert_eq!(
            event_sources("SecretsManager").unwrap(),
            ["secretsmanager.amazonaws.com"]
        );
        assert_eq!(
            event_sources("cloudwatch").unwrap(),
            ["monitoring.amazonaws.com"]
        );
        assert!(
            event_sources("sso")
                .unwrap()
                .contains(&"sso.amazonaws.com".to_owned())
        );
        assert_eq!(
            event_sources("iam.amazonaws.com").unwrap(),
            ["iam.amazonaws.com"]
        );
        assert_eq!(event_sources("cloudtrail"), None);
        assert!(is_service_of_trail(Some("aws"), Some("ec2")));
        assert!(!is_service_of_trail(Some("aws"), Some("cloudtrail")));
        assert!(!is_service_of_trail(Some("windows"), Some("security")));
    }
}
