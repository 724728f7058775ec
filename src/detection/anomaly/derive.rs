//! The values anomaly detectors watch, read from an event: a field as it
//! is, or one of three transforms written like Sigma modifiers.
//!
//! - `userIdentity|principal`: who acted, stable across sessions: the role
//!   of an assumed-role session (its session names vary), else the ARN,
//!   else the principal id.
//! - `userAgent|family`: the tool, without its version and platform, so a
//!   new release of the CLI is not a new user agent.
//! - `sourceIPAddress|network`: the /24 of an IPv4 address or the /48 of an
//!   IPv6 one; a service name in that field gives no value.

use std::net::IpAddr;

use crate::detection::sigma::field::{Doc, FieldPath};

/// How a field's text becomes the watched value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The text as it is.
    Plain,
    /// The stable principal of a `userIdentity` object.
    Principal,
    /// The user agent's family.
    Family,
    /// The address's network.
    Network,
}

/// One `group-by` or `fields` entry, compiled.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    /// As written in the rule, for alerts.
    pub name: String,
    transform: Transform,
    path: FieldPath,
    /// For `principal`: `type`, `sessionContext.sessionIssuer.arn`, `arn`, `principalId`.
    principal: Option<[FieldPath; 4]>,
}

impl FieldSpec {
    /// Compiles `field` or `field|transform`.
    pub fn parse(text: &str) -> Result<FieldSpec, String> {
        let (field, transform) = match text.split_once('|') {
            None => (text, Transform::Plain),
            Some((field, "principal")) => (field, Transform::Principal),
            Some((field, "family")) => (field, Transform::Family),
            Some((field, "network")) => (field, Transform::Network),
            Some((_, other)) => {
                return Err(format!(
                    "unknown transform |{other} in {text} (expected |principal, |family or |network)"
                ));
            }
        };
        if field.is_empty() {
            return Err(format!("{text} names no field"));
        }
        let principal = (transform == Transform::Principal).then(|| {
            [
                FieldPath::new(&format!("{field}.type")),
                FieldPath::new(&format!("{field}.sessionContext.sessionIssuer.arn")),
                FieldPath::new(&format!("{field}.arn")),
                FieldPath::new(&format!("{field}.principalId")),
            ]
        });
        Ok(FieldSpec {
            name: text.to_owned(),
            transform,
            path: FieldPath::new(field),
            principal,
        })
    }

    /// The value in `doc`, appended to `out`; false when there is none.
    pub fn read(&self, doc: Doc<'_>, out: &mut String) -> bool {
        match self.transform {
            Transform::Plain => match self.path.first_text(doc) {
                Some(text) if !text.is_empty() => {
                    out.push_str(text);
                    true
                }
                _ => false,
            },
            Transform::Principal => {
                let Some([kind, issuer, arn, id]) = &self.principal else {
                    return false;
                };
                let role = (kind.first_text(doc) == Some("AssumedRole"))
                    .then(|| issuer.first_text(doc))
                    .flatten();
                let found = role
                    .or_else(|| arn.first_text(doc))
                    .or_else(|| id.first_text(doc))
                    .filter(|t| !t.is_empty());
                found.map(|t| out.push_str(t)).is_some()
            }
            Transform::Family => match self.path.first_text(doc) {
                Some(agent) if !agent.is_empty() => {
                    out.push_str(&family(agent));
                    true
                }
                _ => false,
            },
            Transform::Network => match self.path.first_text(doc).and_then(network) {
                Some(net) => {
                    out.push_str(&net);
                    true
                }
                None => false,
            },
        }
    }
}

/// Tools recognised anywhere in a user agent, most specific first: an
/// agent often names several (Terraform runs the Go SDK).
const FAMILIES: [(&str, &str); 22] = [
    ("terraform", "terraform"),
    ("pulumi", "pulumi"),
    ("cloudformation", "cloudformation"),
    ("aws-cdk", "aws-cdk"),
    ("kali", "kali"),
    ("parrot", "parrot"),
    ("pentoo", "pentoo"),
    ("pacu", "pacu"),
    ("aws-cli", "aws-cli"),
    ("aws-sam-cli", "aws-sam-cli"),
    ("boto3", "boto3"),
    ("botocore", "boto3"),
    ("aws-sdk-go", "aws-sdk-go"),
    ("aws-sdk-java", "aws-sdk-java"),
    ("aws-sdk-js", "aws-sdk-js"),
    ("aws-sdk-nodejs", "aws-sdk-js"),
    ("aws-sdk-rust", "aws-sdk-rust"),
    ("aws-sdk-dotnet", "aws-sdk-dotnet"),
    ("aws-sdk-ruby", "aws-sdk-ruby"),
    ("aws-sdk-php", "aws-sdk-php"),
    ("aws-powershell", "aws-powershell"),
    ("python-requests", "python-requests"),
];

/// The family of a user agent: a known tool it names, `console` for
/// browsers and the console's own agents, else its first token without
/// version, lowercase.
pub fn family(agent: &str) -> String {
    let lower = agent.to_ascii_lowercase();
    if let Some((_, family)) = FAMILIES.iter().find(|(marker, _)| lower.contains(marker)) {
        return (*family).to_owned();
    }
    if lower.starts_with("mozilla/")
        || lower.contains("console.amazonaws.com")
        || lower.contains("signin.amazonaws.com")
        || lower.contains("console.aws.amazon.com")
    {
        return "console".to_owned();
    }
    if lower.starts_with("aws internal") || lower.contains("aws-internal") {
        return "aws-internal".to_owned();
    }
    let first = lower
        .trim_start_matches(['[', '(', ' '])
        .split([' ', '/', ',', ';', '(', '['])
        .next()
        .unwrap_or_default();
    if first.is_empty() {
        "unknown".to_owned()
    } else {
        first.to_owned()
    }
}

/// The /24 (IPv4) or /48 (IPv6) network of an address, or `None` for a
/// text that is not an address (a service's name).
pub fn network(text: &str) -> Option<String> {
    match text.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            Some(format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_ignore_versions_and_platforms() {
        assert_eq!(
            family("aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0 exe/x86_64.ubuntu.22"),
            "aws-cli"
        );
        assert_eq!(family("aws-cli/1.29.0 Python/3.9 botocore/1.31"), "aws-cli");
        assert_eq!(family("Boto3/1.34.1 md/Botocore#1.34.1 ua/2.0"), "boto3");
        assert_eq!(
            family(
                "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.40.0 aws-sdk-go-v2/1.25.2"
            ),
            "terraform"
        );
        assert_eq!(
            family("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"),
            "console"
        );
        assert_eq!(family("console.amazonaws.com"), "console");
        assert_eq!(family("AWS Internal"), "aws-internal");
        assert_eq!(
            family("aws-cli/2.13 Python/3.11 Linux/6.1.0-kali7-amd64"),
            "kali"
        );
        assert_eq!(family("[S3Console/0.4, aws-internal/3]"), "aws-internal");
        assert_eq!(family("curl/8.4.0"), "curl");
    }

    #[test]
    fn networks_of_addresses_and_none_of_names() {
        assert_eq!(network("198.51.100.23").as_deref(), Some("198.51.100.0/24"));
        assert_eq!(
            network("2001:db8:85a3::8a2e:370:7334").as_deref(),
            Some("2001:db8:85a3::/48")
        );
        assert_eq!(network("ec2.amazonaws.com"), None);
        assert_eq!(network("AWS Internal"), None);
    }

    #[test]
    fn transforms_are_named_or_refused() {
        assert!(FieldSpec::parse("userIdentity|principal").is_ok());
        let err = FieldSpec::parse("userAgent|version").unwrap_err();
        assert!(err.contains("|version"), "{err}");
        assert!(FieldSpec::parse("|family").is_err());
    }
}
