//! A fake account for unit tests: facts held in memory, and Regions that
//! fail as an outage or a denied call would.

use std::sync::Mutex;

use super::api::PostureApi;
use super::desired::{GroupSpec, RuleSpec, TrailSpec};
use super::facts::{AccountFacts, GroupFacts, TrailFacts, UserFacts};
use crate::aws::AwsError;
use crate::aws::retry::ErrorClass;

/// What the fake account holds.
#[derive(Default)]
pub struct FakeAccount {
    pub trails: Vec<TrailFacts>,
    pub groups: Vec<GroupFacts>,
    pub users: Vec<UserFacts>,
    pub account: AccountFacts,
    /// Regions whose calls fail.
    pub failing: Vec<String>,
    /// Whether IAM calls fail.
    pub iam_fails: bool,
    /// Calls made, by name.
    pub calls: Mutex<Vec<String>>,
}

/// The fake answers changes to the account with a refusal: the sweep tests
/// never make them, and one that did should fail on its result, not panic.
fn not_faked(operation: &'static str) -> AwsError {
    AwsError {
        service: "ec2",
        operation,
        code: "NotFaked".to_owned(),
        message: "the fake account does not make changes".to_owned(),
        class: ErrorClass::Permanent,
    }
}

fn failure(operation: &'static str) -> AwsError {
    AwsError {
        service: "ec2",
        operation,
        code: "RequestLimitExceeded".to_owned(),
        message: "slow down".to_owned(),
        class: ErrorClass::Throttled,
    }
}

impl FakeAccount {
    fn call(&self, name: String) {
        self.calls.lock().unwrap().push(name);
    }
}

impl PostureApi for FakeAccount {
    async fn account(&self) -> Result<String, AwsError> {
        Ok("111122223333".to_owned())
    }
    async fn regions(&self) -> Result<Vec<String>, AwsError> {
        Ok(vec!["eu-west-3".to_owned(), "us-east-1".to_owned()])
    }
    async fn trails(&self, region: &str) -> Result<Vec<TrailFacts>, AwsError> {
        self.call(format!("trails {region}"));
        if self.failing.iter().any(|r| r == region) {
            return Err(failure("DescribeTrails"));
        }
        Ok(self
            .trails
            .iter()
            .filter(|t| t.home_region == region)
            .cloned()
            .collect())
    }
    async fn trail_owned(&self, _region: &str, _arn: &str) -> Result<bool, AwsError> {
        Ok(false)
    }
    async fn groups(&self, region: &str) -> Result<Vec<GroupFacts>, AwsError> {
        self.call(format!("groups {region}"));
        if self.failing.iter().any(|r| r == region) {
            return Err(failure("DescribeSecurityGroups"));
        }
        Ok(self
            .groups
            .iter()
            .filter(|g| g.region == region)
            .cloned()
            .collect())
    }
    async fn users(&self, only: Option<&str>) -> Result<Vec<UserFacts>, AwsError> {
        self.call(format!("users {only:?}"));
        if self.iam_fails {
            return Err(failure("GetAccountAuthorizationDetails"));
        }
        Ok(self
            .users
            .iter()
            .filter(|u| only.is_none_or(|o| o == u.name))
            .cloned()
            .collect())
    }
    async fn account_facts(&self) -> Result<AccountFacts, AwsError> {
        self.call("account".to_owned());
        if self.iam_fails {
            return Err(failure("GetAccountSummary"));
        }
        Ok(self.account.clone())
    }
    async fn create_trail(&self, _: &str, _: &TrailSpec) -> Result<(), AwsError> {
        Err(not_faked("CreateTrail"))
    }
    async fn update_trail(&self, _: &str, _: &TrailSpec) -> Result<(), AwsError> {
        Err(not_faked("UpdateTrail"))
    }
    async fn start_logging(&self, _: &str, _: &str) -> Result<(), AwsError> {
        Err(not_faked("StartLogging"))
    }
    async fn record_management_events(&self, _: &str, _: &str) -> Result<(), AwsError> {
        Err(not_faked("PutEventSelectors"))
    }
    async fn create_group(&self, _: &str, _: &GroupSpec) -> Result<String, AwsError> {
        Err(not_faked("CreateSecurityGroup"))
    }
    async fn authorize(&self, _: &str, _: &str, _: bool, _: &[RuleSpec]) -> Result<(), AwsError> {
        Err(not_faked("AuthorizeSecurityGroupIngress"))
    }
    async fn revoke(&self, _: &str, _: &str, _: bool, _: &[RuleSpec]) -> Result<(), AwsError> {
        Err(not_faked("RevokeSecurityGroupIngress"))
    }
}
