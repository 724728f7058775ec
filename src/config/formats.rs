//! The string formats configuration values must have: AWS names, URLs, addresses.
//!
//! Each parser returns the message a user sees when the value is wrong.

use std::net::SocketAddr;

/// An AWS Region name such as `us-east-1` or `us-gov-west-1`.
pub(super) fn region(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts.iter().all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid AWS Region \"{text}\" (expected a name such as us-east-1)"
        ))
    }
}

/// An `http://` or `https://` URL with a host (http is for local emulators).
pub(super) fn http_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.contains(char::is_whitespace) =>
        {
            Ok(text.to_owned())
        }
        _ => Err(format!(
            "invalid URL \"{text}\" (expected http://host[:port] or https://host[:port])"
        )),
    }
}

/// An SNS topic ARN: `arn:<partition>:sns:<region>:<account>:<name>`.
pub(super) fn topic_arn(text: &str) -> Result<String, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let well_formed = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && region(parts[3]).is_ok()
        && account_id(parts[4]).is_ok()
        && !parts[5].is_empty();
    if well_formed {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid SNS topic ARN \"{text}\" (expected arn:aws:sns:<region>:<12-digit account>:<topic>)"
        ))
    }
}

/// A 12-digit AWS account id.
pub(super) fn account_id(text: &str) -> Result<String, String> {
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid AWS account id \"{text}\" (expected 12 digits)"
        ))
    }
}

/// A CloudWatch Logs log group name (or prefix): 1–512 of `A-Za-z0-9_-/.#`.
pub(super) fn log_group(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-/.#".contains(c);
    if !text.is_empty() && text.len() <= 512 && text.chars().all(allowed) {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid log group name \"{text}\" (1 to 512 characters of letters, digits and _-/.#)"
        ))
    }
}

/// A name used in metric labels and state keys: 1–64 of `A-Za-z0-9_.-`, starting alphanumeric.
pub(super) fn component_name(text: &str) -> Result<String, String> {
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && text.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid name \"{text}\" (1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit)"
        ))
    }
}

/// A listening address such as `127.0.0.1:9898` or `[::1]:9898`.
pub(super) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        format!("invalid listen address \"{text}\" (expected IP:port such as 127.0.0.1:9898)")
    })
}

/// A non-empty string.
pub(super) fn non_empty(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// One of a fixed set of words, case-insensitive.
pub(super) fn one_of<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            format!(
                "invalid value \"{text}\" (expected one of: {})",
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names_and_refuses_near_misses() {
        for ok in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-4",
            "il-central-1",
        ] {
            assert!(region(ok).is_ok(), "{ok}");
        }
        for bad in ["us-east", "US-EAST-1", "useast1", "us--1", ""] {
            assert!(region(bad).is_err(), "{bad}");
        }
        assert!(topic_arn("arn:aws:sns:us-east-1:123456789012:alerts").is_ok());
        assert!(topic_arn("arn:aws:sqs:us-east-1:123456789012:alerts").is_err());
        assert!(topic_arn("arn:aws:sns:us-east-1:1234:alerts").is_err());
        assert!(http_url("http://127.0.0.1:5000").is_ok());
        assert!(http_url("ftp://x").is_err() && http_url("http://").is_err());
        assert!(log_group("/aws/cloudtrail/main").is_ok() && log_group("a b").is_err());
        assert!(component_name("trail-logs.1").is_ok() && component_name("-x").is_err());
        assert!(socket_addr("[::1]:9898").is_ok() && socket_addr("localhost:9898").is_err());
    }
}
